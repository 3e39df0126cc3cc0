"""Benchmark: the anchoring decisions on the decision seeds (window-only vs anchored LCSC, guard, shrinkage, the
worst-space objective, DM searched at NFE 10 vs 5), on check noise in FD_digits, FD2 and FD3 against EMA*.

Needs finished demo folders (``lcsc demo --seed S -o runs/demo-seedS``) of decision seeds (lcsc.protocol); for each it
scores the demo's own searches (resumed from their journals) on *check* noise — never the demo's report noise — and
re-searches the final window with ``max:fd-digits,fd-digits2`` (both models) and, for the DM, at NFE 10. Resumable:
searches continue from their journals, finished seeds are reused.

Run:  python benchmarks/anchoring.py runs/demo-seed0 runs/demo-seed1 runs/demo-seed2 --out docs/demo
      (~3 min per seed on 2 CPU cores; ``--no-research``: the demo's own searches only, Alg. 1 vs gradient export). The last line printed is one JSON object: wins_vs_ema_star (variant →
      (seed, model, space) triples lower than EMA*), triples, beats_everywhere (variant → (seed, model) pairs lower in
      every space), chosen_export (the rule below), mean_gain_pct (variant → mean held-out gain over EMA*),
      search_seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from lcsc.analysis.anchoring import decision_rows, load_demo, wins
from lcsc.atomic import write_json, write_text
from lcsc.data import load_digits_data
from lcsc.errors import LCSCError
from lcsc.protocol import seed_role
from lcsc.spaces import SPACES

MODELS = ("dm", "cm-ct")
# The decision rule, fixed before any result: among these exports, the one lower than EMA* in the most (seed, model,
# space) triples of the decision seeds wins (ties: more (seed, model) pairs lower in every space, then the larger mean
# gain); the default stays unless another one wins strictly more triples. NFE 10 vs 5 is reported, not decided.
EXPORT_RULES = ("anchored + guard", "unguarded", "shrink 0.5", "shrink 0.75", "max + guard", "mean + guard",
                "gradient + guard")
DEFAULT_RULE = "anchored + guard"


def _seed(folder: Path, work: Path, data, research: bool = True) -> dict:
    done = work / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    cfg, report = load_demo(folder)
    if seed_role(cfg.seed) != "decision":
        raise LCSCError(f"{folder}: training seed {cfg.seed} is not a decision seed; decisions use seeds 0-2 only")
    out = {"seed": cfg.seed, "held_out_noise": "decision", "models": {}}
    for name in MODELS:
        out["models"][name] = decision_rows(folder, cfg, report, name, data, work / name, research)
    write_json(done, out)
    return out


def _table(results: list[dict]) -> str:
    lines = ["| Seed | Model | Variant | FD_digits | FD2 | FD3 | vs EMA* (FD_digits / FD2 / FD3) |",
             "|---|---|---|---|---|---|---|"]
    for res in results:
        for name, m in res["models"].items():
            for variant, r in m["rows"].items():
                base = m["rows"]["EMA* @ NFE 10" if "10" in variant else "EMA*"]
                vs = " / ".join(f"{100 * (r[k] / base[k] - 1):+.1f} %" for k in SPACES) if "EMA*" not in variant \
                    else "—"
                lines.append(f"| {res['seed']} | {name} | {variant} | {r['fd_mean']:.2f} | {r['fd2_mean']:.3f} | "
                             f"{r['fd3_mean']:.3f} | {vs} |")
    return "\n".join(lines)


def _figures(results: list[dict]) -> dict:
    triples, win, gain = 0, {}, {}
    for res in results:
        for m in res["models"].values():
            rows = m["rows"]
            at5 = {v: r for v, r in rows.items() if "10" not in v}
            at10 = {"EMA*": rows["EMA* @ NFE 10"], **{v: r for v, r in rows.items() if "10" in v and "EMA*" not in v}} \
                if "EMA* @ NFE 10" in rows else {}
            triples += len(SPACES)
            for group in (at5, at10):
                for v, n in wins(group).items():
                    win[v] = win.get(v, 0) + n
                    gain.setdefault(v, []).extend(100 * (1 - group[v][k] / group["EMA*"][k]) for k in SPACES)
    rules = [v for v in EXPORT_RULES if v in win]
    everywhere = {v: sum(all(m["rows"][v][k] < m["rows"]["EMA*"][k] for k in SPACES) for r in results
                         for m in r["models"].values() if v in m["rows"]) for v in rules}
    rank = {v: (win.get(v, 0), everywhere[v], float(np.mean(gain.get(v, [0.0])))) for v in rules}
    best = max(rules, key=lambda v: rank[v])
    chosen = best if rank[best][0] > rank[DEFAULT_RULE][0] else DEFAULT_RULE  # the default stays unless beaten
    return {"wins_vs_ema_star": win, "triples": triples, "beats_everywhere": everywhere, "chosen_export": chosen,
            "mean_gain_pct": {v: round(float(np.mean(g)), 2) for v, g in gain.items()},
            "search_seconds": {f"{r['seed']}/{n}/{v}": round(s, 1) for r in results for n, m in r["models"].items()
                               for v, s in m["seconds"].items()}}


def _markdown(results: list[dict], f: dict, command: str = "") -> str:
    seeds = ", ".join(str(r["seed"]) for r in results)
    wins = "; ".join(f"{v} {f['wins_vs_ema_star'][v]} of {f['triples']}" for v in EXPORT_RULES
                     if v in f["wins_vs_ema_star"])
    return "\n".join([
        "# Anchoring decisions on the decision seeds", "",
        f"Training seeds {seeds} (decision seeds, `lcsc.protocol`), the demo's runs, every row scored on *check* noise "
        "(3 seeds × 800 samples from the protocol's check-noise offset; never the demo's report noise, which the "
        "demo's tables use). Made with `" + (command or "python benchmarks/anchoring.py runs/demo-seed0 "
                                            "runs/demo-seed1 runs/demo-seed2 --out docs/demo") + "`.", "",
        "**Rule** (written in issue 24 after the demo's report-noise rows of seeds 0 and 1 had been seen; re-applied "
        "here on check noise, which no decision had seen): among the exports " + ", ".join(EXPORT_RULES) + ", the "
        "one lower than EMA* in the most (seed, model, space) triples wins (ties: more (seed, model) pairs lower in "
        f"every space, then the larger mean gain); the default ({DEFAULT_RULE}) stays unless another wins strictly "
        "more triples. NFE 10 vs 5 is measured, not decided (the DM's searched NFE is the demo's design). Issue 34 "
        "added `gradient + guard` to the exports and left the rule unchanged: it decides whether the gradient "
        "search's export replaces Algorithm 1's behind the demo's headlines.", "",
        f"**Result:** triples lower than EMA*: {wins}. Chosen: **{f['chosen_export']}**.", "",
        "`anchored + guard`: the demo's Algorithm 1 LCSC (its objective, top 4 and the best anchor re-scored on "
        "validation noise); `gradient + guard`: the demo's gradient search (same stack, objective and initial "
        "population; its last and averaged iterates and the best anchor re-scored on the same validation noise); "
        "`unguarded`: that search's best on the search noise; `shrink λ`: λ of the way from the best anchor to it; "
        "`max + guard`: the same search with the worst-space objective `max:fd-digits,fd-digits2`; "
        "`anchored searched @ NFE 10`: the DM searched at NFE 10 (its own EMA* row is EMA* at NFE 10); "
        "`anchored (searched at 5) @ NFE 10`: the demo's LCSC evaluated at NFE 10.", "",
        _table(results), "", "```json", json.dumps(f, indent=1), "```", ""])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("demos", nargs="+", type=Path, help="finished lcsc demo folders of decision seeds")
    p.add_argument("--out", type=Path, default=Path("runs/anchoring"), help="where the table and JSON go")
    p.add_argument("--work", type=Path, default=Path("runs/anchoring-work"), help="searches and per-seed results")
    p.add_argument("--no-research", action="store_true",
                   help="score the demo's own searches only (EMA*, Alg. 1 anchored + guard, its unguarded best, "
                        "the gradient search): the export decision, without the alternative objective, NFE 10 and "
                        "window-only searches")
    args = p.parse_args(argv)
    data = load_digits_data()
    try:
        results = [_seed(folder, args.work / folder.name, data, not args.no_research) for folder in args.demos]
    except LCSCError as exc:
        print(f"anchoring: {exc}", file=sys.stderr)
        return 2
    figures = _figures(results)
    command = "python benchmarks/anchoring.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write_text(args.out / "anchoring_decisions.md", _markdown(results, figures, command))
    write_json(args.out / "anchoring_decisions.json", {"results": results, "figures": figures})
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
