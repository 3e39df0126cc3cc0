"""Write the demo's report: report.md / report.html / report.json, figures, the resolved config, stage times."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from lcsc.atomic import write_json, write_text
from lcsc.demo.run import MODEL_LABELS, DemoResult
from lcsc.demo.stages import ema_state, lcsc_state
from lcsc.generate import generate
from lcsc.models import load_model
from lcsc.objectives.base import HELD_OUT_SEED_OFFSET
from lcsc.rates import half_life_to_rate
from lcsc.report.plots import plot_coefficients, plot_curves, plot_sample_pairs, plot_search_progress
from lcsc.report.tables import html_table, markdown_table
from lcsc.search import ema_coefficients
from lcsc.training.log import read_log

__all__ = ["write_demo_report", "REPORT_KEYS", "table_columns", "verdicts"]

REPORT_KEYS = ("model", "method", "iteration", "nfe", "fd_mean", "fd_std", "fd2_mean", "fd3_mean", "kid", "precision",
               "recall", "speedup")


def _pm(m: float, s: float, p: int) -> str:
    return f"{m:.{p}f} ± {s:.{p}f}"


def table_columns(with_fid: bool) -> list:
    cols = [("Model", lambda r: r["model"]), ("Method", lambda r: r["method"]),
            ("Training iter", lambda r: str(r["iteration"])), ("NFE", lambda r: str(r["nfe"])),
            ("FD_digits ↓", lambda r: _pm(r["fd_mean"], r["fd_std"], 2)),
            ("FD2 ↓", lambda r: _pm(r["fd2_mean"], r["fd2_std"], 3)),
            ("FD3 ↓", lambda r: _pm(r["fd3_mean"], r["fd3_std"], 3)), ("KID ↓", lambda r: f"{r['kid']:.4g}"),
            ("Prec. ↑", lambda r: f"{r['precision']:.3f}"), ("Rec. ↑", lambda r: f"{r['recall']:.3f}"),
            ("Speed-up ↑", lambda r: "—" if r["speedup"] is None else f"~{r['speedup']:.1f}×"),
            ("Detail", lambda r: r["detail"])]
    if with_fid:
        cols.insert(5, ("FID (Inception) ↓", lambda r: "—" if r["fid"] is None else f"{r['fid']:.2f}"))
    return cols


def verdicts(rows: list[dict[str, Any]], final: int, objective: str = "fd-digits") -> list[str]:
    """Plain sentences: does LCSC beat EMA* on held-out FD_digits (and is the gap outside the seed spread)?"""
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        get = {(r["method"], r["iteration"]): r for r in rows if r["model"] == model}
        star, lcsc = get[("EMA*", final)], get[("LCSC", final)]
        gap = star["fd_mean"] - lcsc["fd_mean"]
        word = "beats" if gap > 0 else "does **not** beat"
        note = _paired_note(star["fd_per_seed"], lcsc["fd_per_seed"])
        out.append(f"- **{model}**: LCSC at {final} {word} EMA* ({star['detail']}) on held-out FD_digits: "
                   f"{lcsc['fd_mean']:.2f} vs {star['fd_mean']:.2f} ({abs(100 * gap / star['fd_mean']):.1f} % "
                   f"{'lower' if gap > 0 else 'higher'}{note}); "
                   f"FD2 {lcsc['fd2_mean']:.3f} vs {star['fd2_mean']:.3f}, FD3 {lcsc['fd3_mean']:.3f} vs "
                   f"{star['fd3_mean']:.3f}.")
        out.append("  " + _gains_line(lcsc, star, "fd-digits2" in objective))
        early = [r for r in rows if r["model"] == model and r["method"] == "LCSC" and r["iteration"] < final]
        for r in early:
            s = "matches or beats" if r["speedup"] else "does not reach"
            out.append(f"  LCSC at {r['iteration']} {s} the full run's EMA* "
                       f"({r['fd_mean']:.2f} vs {star['fd_mean']:.2f})"
                       + (f": training-cost speed-up ~{r['speedup']:.1f}×." if r["speedup"] else "."))
    return out


def _gains_line(lcsc: dict[str, Any], star: dict[str, Any], fd2_searched: bool = False) -> str:
    """Held-out gain over the best initial individual and over EMA*, in the searched space and the unseen ones."""
    def pct(base: float, value: float) -> str:
        return f"{100 * (1 - value / base):+.1f} %"

    init = lcsc.get("initial") or {}
    parts = []
    fd2 = "FD2 (searched)" if fd2_searched else "FD2 (never searched)"
    for key, label in (("fd_mean", "FD_digits (searched)"), ("fd2_mean", fd2), ("fd3_mean", "FD3 (never searched)")):
        vs_init = pct(init[key], lcsc[key]) if key in init else "—"
        parts.append(f"{label} {vs_init} vs the best initial individual, {pct(star[key], lcsc[key])} vs EMA*")
    return "Held-out gain: " + "; ".join(parts) + "."


def _paired_note(star: list[float], lcsc: list[float]) -> str:
    """How consistent the difference is over the (shared) held-out seeds."""
    if not star or len(star) != len(lcsc):
        return ""
    wins = sum(b < a for a, b in zip(star, lcsc))
    return f"; lower on {wins} of {len(star)} held-out seeds"


def _figures(res: DemoResult, out: Path) -> dict[str, Path]:
    cfg, figs = res.config, {}
    curves = {}
    for name, run in res.runs.items():
        log = read_log(run.run_dir / "log.jsonl")
        curves[MODEL_LABELS[name]] = ([r["step"] for r in log], [r["loss"] for r in log])
    figs["loss"] = plot_curves(curves, out / "loss.png", title="training loss: ")
    progress, coeffs, pairs = {}, {}, {}
    seed = HELD_OUT_SEED_OFFSET + cfg.seed
    for name, run in res.runs.items():
        model = load_model(run.run_dir / "last.safetensors", cfg.device)
        pairs[MODEL_LABELS[name]] = {}
        for point, search in res.searches[name].items():
            star = res.ema_star[name][point]
            key = f"{MODEL_LABELS[name]} @ {point}"
            scores = [r["score"] for r in _journal(search.result.journal_path)]
            same_scale = cfg.search_objective == "fd-digits"
            progress[key] = {"scores": scores, "ema_star": run.ema_scores[point][star] if same_scale else None,
                             "ema_star_name": star, "ylabel": f"{cfg.search_objective} (search noise)"}
            hl = float(star.removeprefix("hl-"))
            m = search.merger
            coeffs[key] = {"steps": m.steps, "lcsc": np.asarray(search.result.best).reshape(m.G, m.K)[0],
                           "ema": ema_coefficients(m.K, half_life_to_rate(hl), cfg.interval),
                           "ema_label": f"EMA* {star} in the window"}
            for method, state in ((f"EMA* {star}", ema_state(run, hl, point)), ("LCSC", lcsc_state(search))):
                model.load_state_dict(state)
                pairs[MODEL_LABELS[name]][f"{method} @ {point}"] = generate(model, 64, seed, nfe=run.nfe,
                                                                           device=cfg.device)
    figs["search"] = plot_search_progress(progress, out / "search_progress.png")
    figs["coefficients"] = plot_coefficients(coeffs, out / "coefficients.png")
    figs["samples"] = plot_sample_pairs(pairs, out / "samples.png")
    return figs


def _journal(path: Path) -> list[dict[str, Any]]:
    """The journal's full-count scores, in order (racing-stage scores are on fewer samples: left out)."""
    recs = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [r for r in recs if r.get("stage", "full") == "full" and isinstance(r.get("score"), (int, float))
            and math.isfinite(r["score"])]


def _ema_grid_md(res: DemoResult) -> str:
    lines = ["| Model | Point | " + " | ".join(f"hl-{h:g}" for h in res.config.half_lives) + " |",
             "|---|---|" + "---|" * len(res.config.half_lives)]
    for name, run in res.runs.items():
        for point, scores in run.ema_scores.items():
            lines.append(f"| {MODEL_LABELS[name]} | {point} | " + " | ".join(f"{v:.2f}" for v in scores.values()) + " |")
    return "\n".join(lines)


def write_demo_report(res: DemoResult, out: str | Path) -> dict[str, Path]:
    """Everything a reader needs in ``out``; returns the written paths by name."""
    out = Path(out)
    rows = [r.to_dict() for r in res.rows]
    paths = {"json": write_json(out / "report.json", rows)}
    paths["config"] = write_json(out / "config.json", res.config.to_dict())
    paths["stages"] = write_json(out / "stages.json", {"estimate_s": round(res.estimate_s, 1), **res.stages})
    paths.update(_figures(res, out))
    cols = table_columns(res.config.inception)
    text = _markdown(res, rows, cols)
    paths["md"] = write_text(out / "report.md", text)
    paths["html"] = write_text(out / "report.html", _html(res, rows, cols))
    return paths


def _setup_lines(res: DemoResult) -> list[str]:
    c = res.config
    return [f"- Data: scikit-learn digits (1,797 real 8×8 images), batch {c.batch_size}, {c.iterations} iterations, "
            f"small U-Net (channels {c.channels}); DM lr {c.dm_lr}, CM lr {c.cm_lr}; device {c.device}.",
            f"- Recorder: windows of {c.window} iterations every {c.interval} (K = {c.window // c.interval}) ending at "
            f"{c.early_point} and {c.iterations}; online EMA half-lives {', '.join(f'{h:g}' for h in c.half_lives)} "
            f"(the EMA rows use hl-{c.default_half_life:g}).",
            f"- Search: LCSC ({_method(c)}), {c.dm_search_evals} (DM) / {c.cm_search_evals} (CM) evaluations of "
            f"`{c.search_objective}` on {c.search_samples} samples from fixed search noise (seed {c.seed}); DM NFE {c.dm_nfe} "
            f"(DPM-Solver++), CM NFE {c.cm_nfe}. EMA* = best EMA half-life on the same search noise.",
            f"- Held-out: every row on {c.eval_seeds} other noise seeds × {c.eval_samples} samples (mean ± std); "
            "FD2 and FD3 are independent digits feature spaces (different architectures, seeds and training "
            "recipes); FD3 is never searched, FD2 only when the search objective includes it; KID, precision and "
            "recall in the FD_digits space.",
            "- Speed-up (paper Tables 6–8): full training time ÷ (training time up to the LCSC point + search time), "
            "shown only where LCSC there matches or beats the full run's EMA* on held-out FD_digits."]


def _method(c) -> str:
    name = {"alg1": "Algorithm 1", "cmaes": "CMA-ES", "sep-cmaes": "sep-CMA-ES"}[c.search_optimizer]
    return name + (f", space {c.search_space}" if c.search_space != "full" else "") + \
        (", racing" if c.search_racing else "")


def _markdown(res: DemoResult, rows: list[dict], cols) -> str:
    times = ", ".join(f"{k} {v:.0f} s" for k, v in res.stages.items())
    return "\n".join([
        "# lcsc demo: LCSC vs EMA on scikit-learn digits", "", *verdicts(rows, res.config.iterations, res.config.search_objective), "",
        markdown_table(rows, cols), "", "## Setup", *_setup_lines(res), "",
        "## EMA grid on the search noise (FD_digits; EMA* is the lowest)", "", _ema_grid_md(res), "",
        "## Figures", "", "![samples](samples.png)", "", "EMA* vs LCSC samples from the same held-out noise.", "",
        "![coefficients](coefficients.png)", "", "![search progress](search_progress.png)", "",
        "![training loss](loss.png)", "",
        f"## Time per stage\n\nestimate {res.estimate_s:.0f} s; {times}; total {sum(res.stages.values()):.0f} s.", ""])


def _html(res: DemoResult, rows: list[dict], cols) -> str:
    verdict = "".join(f"<li>{html.escape(v.lstrip('- ').replace('**', ''))}</li>" for v in verdicts(rows, res.config.iterations,
                                                                         res.config.search_objective))
    setup = "".join(f"<li>{html.escape(s[2:])}</li>" for s in _setup_lines(res))
    imgs = "".join(f'<figure><img src="{n}.png" style="max-width:100%"><figcaption>{n}</figcaption></figure>'
                   for n in ("samples", "coefficients", "search_progress", "loss"))
    table = html_table(rows, cols, highlight=lambda r: r["method"] == "LCSC")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>lcsc demo</title><style>body{{font-family:sans-"
            f"serif;max-width:1200px;margin:auto}}td,th{{padding:3px 8px;border-bottom:1px solid #ddd}}</style></head>"
            f"<body><h1>lcsc demo: LCSC vs EMA on digits</h1><ul>{verdict}</ul>{table}<h2>Setup</h2><ul>{setup}</ul>"
            f"<h2>Figures</h2>{imgs}<h2>Stages</h2><pre>{html.escape(json.dumps(res.stages, indent=1))}</pre>"
            "</body></html>\n")
