"""The distillation benchmark's report: verdicts against the goals, the Tab. 7-style speed-ups, NFE, costs, curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lcsc.atomic import write_json, write_text
from lcsc.distill.analysis import curve, finite
from lcsc.distill.config import DistillConfig
from lcsc.report.distill_plots import plot_family_curves
from lcsc.report.headline_plots import plot_fd_vs_nfe
from lcsc.spaces import SPACE_NAMES, spaces_in

__all__ = ["verdicts", "speedup_table", "nfe_table", "cost_table", "curve_table", "write_report"]

_F = {"fd_mean": "{:.2f}", "fd2_mean": "{:.3f}", "fd3_mean": "{:.3f}", "fd4_mean": "{:.3f}"}


def _fd(row: dict, keys) -> str:
    return " / ".join(_F[k].format(row[k]) for k in keys)


def _x(v: float) -> str:
    return f"{v:.2f}×"


def verdicts(rep: dict[str, Any], cfg: DistillConfig) -> list[str]:
    """One line per goal of the issue, measured against its target (bad ones included)."""
    sp, n8 = rep["speedups"], cfg.short_iterations
    cd, cds, ct = sp["cd-short"][-1], sp["cd-small"][-1], sp["ct-short"][-1]
    spaces = " / ".join(SPACE_NAMES[k] for k in cd["by_space"])

    def line(goal: str, value: float, target: float, entry: dict, unit: str) -> str:
        per = " / ".join(_x(v[unit]) for v in entry["by_space"].values())
        met = "**met**" if value >= target else "**not met**"
        bound = " (a lower bound: EMA* never gets there)" if entry["lower_bound"] else ""
        return f"- {goal}: {_x(value)}{bound} (per space {per}, {spaces}; target ≥ {target:g}×) → {met}."
    out = [line(f"CD, LCSC at {n8} iterations (1/{cfg.short_divisor}) vs the reference's EMA*, iterations",
                cd["speedup_iters"], cfg.short_divisor, cd, "iters"),
           line(f"CD at batch {cfg.small_batch} ({n8} iterations), images seen", cds["speedup_images"], 16, cds,
                "images"),
           line(f"CT, LCSC at {n8} iterations vs the CT reference's EMA*, iterations", ct["speedup_iters"], 2, ct,
                "iters")]
    c = rep["cd_lcsc_1nfe_vs_ema_2nfe"]
    keys = list(c["lcsc_1_le_ema_2"])
    out.append(f"- CD at {cfg.iterations}: LCSC at 1 step {_fd(c['lcsc_1'], keys)} vs EMA* at 2 steps "
               f"{_fd(c['ema_star_2'], keys)} (1 step: {_fd(c['ema_star_1'], keys)}) → "
               f"{'**met**' if c['holds'] else '**not met**'} (LCSC ≤ EMA* at 2 steps in every space).")
    d = rep["dm_nfe_match"]
    keys = list(d["lcsc"])
    vs15 = d.get("holds_vs_15")
    out.append(f"- Teacher DM: LCSC searched at NFE {cfg.teacher_nfe} {_fd(d['lcsc'], keys)}; EMA* reaches it at NFE "
               f"{' / '.join(d['by_space'].values())} → " + ("**met**" if vs15 else "**not met**") +
               " (LCSC at NFE 9 ≤ EMA* at NFE 15 in every space)" + ("" if vs15 is not None else
                                                                       " (NFE 15 not measured)") + ".")
    conv = rep["convergence"]
    out.append("- Converged (EMA*'s held-out FD falls < 5 % over the last quarter in every space): "
               + ", ".join(f"{n} {'yes' if c['converged'] else 'no'} (max fall {100 * max(c['fall'].values()):.1f} %)"
                           for n, c in conv.items()) + ".")
    f = rep["search_cost_fraction"]
    n = len(cfg.runs()["cd"].demo.lcsc_points)
    out.append(f"- Search cost: one CD search is {100 * f['ours_cd_one_search_passes']:.2f} % of the CD reference's "
               f"training in network passes ({100 * f['ours_cd_one_search_seconds']:.1f} % in core-seconds); all {n} "
               f"searches {100 * f['ours_cd_passes']:.1f} % ({100 * f['ours_cd_seconds']:.1f} %); the paper's CD "
               f"setting: {100 * f['paper_cd_passes']:.2f} % in passes. One search falls below 10 % of training at "
               f"{f['break_even_iterations_10pct']:,.0f} training iterations.")
    return out


def speedup_table(rep: dict[str, Any], cfg: DistillConfig) -> str:
    lines = ["| Run | Batch | LCSC iter | LCSC held-out FD (" + " / ".join(SPACE_NAMES.values()) + ") | reference EMA* "
             "reaches it at | speed-up iters | speed-up images | with search (images) | claimed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, entries in rep["speedups"].items():
        for e in entries:
            keys = list(e["by_space"])
            reach = " / ".join(v["label"] for v in e["by_space"].values())
            claim = "yes" if e["claimed"] else "no"
            lines.append(f"| {name} | {e['batch']} | {e['iteration']} | {_fd(e['lcsc'], keys)} | {reach} | "
                         f"{_x(e['speedup_iters'])}{'+' if e['lower_bound'] else ''} | {_x(e['speedup_images'])} | "
                         f"{_x(e['speedup_with_search'])} | {claim} |")
    return "\n".join(lines)


def nfe_table(raw: dict[str, Any], cfg: DistillConfig) -> str:
    """EMA* and LCSC at the end of the CD reference and of the teacher, at every NFE."""
    out = []
    for run, end, nfes in (("cd", cfg.iterations, cfg.cm_nfes), ("teacher", cfg.teacher_iterations, cfg.dm_nfes)):
        rows = [r for r in raw["rows"] if r["run"] == run and r["iteration"] == end and r["method"] in ("EMA*", "LCSC")]
        keys = spaces_in(*rows)
        out += [f"| {run} | Method | Space | " + " | ".join(f"NFE {n}" for n in nfes) + " |",
                "|---|---|---|" + "---|" * len(nfes)]
        for method in ("EMA*", "LCSC"):
            by = {r["nfe"]: r for r in rows if r["method"] == method}
            for k in keys:
                out.append(f"| {run} | {method} | {SPACE_NAMES[k]} | "
                           + " | ".join(_F[k].format(by[n][k]) if n in by else "—" for n in nfes) + " |")
        out.append("")
    return "\n".join(out)


def cost_table(rep: dict[str, Any], cfg: DistillConfig) -> str:
    lines = ["| Run | Iterations × batch | Train passes | Train core-s | Searches | Search passes | Search core-s | "
             "Search / train (passes) | Search / train (core-s) | One search < 10 % of training from |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    specs = cfg.runs()
    for name, c in rep["costs"]["runs"].items():
        s = specs[name]
        lines.append(f"| {name} | {s.iterations:,} × {s.batch_size} | {c['train_passes']:.3g} | "
                     f"{c['train_core_s']:.0f} | {c['searches']} | {c['search_passes']:.3g} | "
                     f"{c['search_core_s']:.0f} | {100 * c['search_fraction_passes']:.2f} % | "
                     f"{100 * c['search_fraction_seconds']:.1f} % | {c['break_even_iterations_10pct']:,.0f} it |")
    p = rep["costs"]["paper_cd"]
    lines.append(f"| paper CD (CIFAR-10, Tab. 6) | 800,000 × 512 | {p['train_passes']:.3g} | — | 1 | "
                 f"{p['search_passes']:.3g} | — | {100 * p['search_fraction_passes']:.2f} % | "
                 f"({p['paper_hours']}) | — |")
    return "\n".join(lines)


def curve_table(raw: dict[str, Any], cfg: DistillConfig) -> str:
    """EMA and EMA* held-out FDs at every curve point of every run, with EMA* and whether it is interior."""
    lines = ["| Run | Iter | EMA (" + " / ".join(SPACE_NAMES.values()) + ") | EMA* (same) | EMA* | interior |",
             "|---|---|---|---|---|---|"]
    for name in cfg.runs():
        ema = {r["iteration"]: r for r in curve(raw, cfg, name, "EMA")}
        for r in curve(raw, cfg, name):
            keys = spaces_in(r)
            ok = raw["interior"][name][str(r["iteration"])]
            lines.append(f"| {name} | {r['iteration']} | {_fd(ema[r['iteration']], keys)} | {_fd(r, keys)} | "
                         f"{r['detail']} | {'yes' if ok else '**edge**'} |")
    return "\n".join(lines)


def _sizes(cfg: DistillConfig) -> str:
    r = cfg.runs()
    return (f"Teacher DM {cfg.teacher_iterations:,} iterations; CD and CT reference N = {cfg.iterations:,} at batch "
            f"{cfg.batch_size}; short runs N/{cfg.short_divisor} = {cfg.short_iterations:,} at batch {cfg.batch_size} "
            f"(CD, CT) and {cfg.small_batch} (CD); windows of {cfg.window} iterations every {cfg.interval} (K = "
            f"{cfg.window // cfg.interval}) ending at {', '.join(map(str, r['cd'].demo.lcsc_points))}; EMA* at "
            f"{len(r['cd'].demo.points)} points per run ({len(r['cd'].demo.half_lives)} online EMAs + "
            f"{len(cfg.sigma_rels)} post-hoc σ_rel). LCSC: anchored and guarded, "
            + (f"the gradient search ({cfg.grad_steps} Adam steps of {cfg.grad_batch_size} samples on fresh noise)."
               if cfg.search == "gradient" else f"Algorithm 1 ({cfg.dm_search_evals} / {cfg.cm_search_evals} "
               "evaluations, DM / CM)."))


def _panels(raw: dict, cfg: DistillConfig, names: tuple[str, ...]) -> dict[str, dict]:
    specs = cfg.runs()
    return {n: {"batch": specs[n].batch_size, "EMA": curve(raw, cfg, n, "EMA"), "EMA*": curve(raw, cfg, n),
                "LCSC": curve(raw, cfg, n, "LCSC")} for n in names}


def _plot_nfe(panels: dict[str, dict], path: Path) -> Path:
    keys = spaces_in(*(r for p in panels.values() for r in p["EMA*"] + p["LCSC"]))
    return plot_fd_vs_nfe(panels, path, {k: SPACE_NAMES[k] for k in keys})


def _nfe_panels(raw: dict, cfg: DistillConfig) -> dict[str, dict]:
    out = {}
    for run, end, nfe in (("cd", cfg.iterations, 1), ("teacher", cfg.teacher_iterations, cfg.teacher_nfe)):
        rows = [r for r in raw["rows"] if r["run"] == run and r["iteration"] == end]
        out[run] = {m: [r for r in rows if r["method"] == m] for m in ("EMA*", "LCSC")} | {"searched_nfe": nfe}
    return out


def write_report(rep: dict[str, Any], raw: dict[str, Any], cfg: DistillConfig, folder: str | Path,
                 seconds: float) -> dict[str, Path]:
    """report.json, report.md (verdicts and every table) and the figures in ``folder``."""
    folder = Path(folder)
    figs = {"cd": plot_family_curves(_panels(raw, cfg, ("cd", "cd-short", "cd-small")), "cd",
                                     folder / "cd_curves.png", "CD"),
            "ct": plot_family_curves(_panels(raw, cfg, ("ct", "ct-short")), "ct", folder / "ct_curves.png", "CT"),
            "teacher": plot_family_curves(_panels(raw, cfg, ("teacher",)), "teacher", folder / "teacher_curves.png",
                                          "teacher DM"),
            "nfe": _plot_nfe(_nfe_panels(raw, cfg), folder / "nfe.png")}
    md = ["# Consistency distillation on long runs: LCSC vs EMA* (paper Tab. 1, 6, 7; Sec. 5.2)", "",
          f"Training seed {cfg.seed}; {seconds / 60:.1f} min (this segment; stages below) with {raw['threads']} "
          f"thread(s) for evaluation and {raw.get('lanes', 1)} training lane(s). Every row on held-out "
          + ("report noise, four spaces (FD4 report-only)" if cfg.held_out_noise == "report" else
             "check noise (a decision seed: a sizing probe), the three decision spaces")
          + f": {cfg.eval_seeds} noise seeds × {cfg.eval_samples} samples. " + _sizes(cfg), "", "## Verdicts", "",
          *verdicts(rep, cfg), "", "## Speed-up (paper Tab. 7)", "", speedup_table(rep, cfg), "",
          "## NFE (paper Sec. 5.2)", "", nfe_table(raw, cfg), "## Cost (paper Tab. 6, our units)", "",
          cost_table(rep, cfg), "", "## EMA and EMA* at every point (held-out)", "", curve_table(raw, cfg), "",
          "![CD curves](cd_curves.png)", "", "![CT curves](ct_curves.png)", "", "![teacher](teacher_curves.png)", "",
          "![NFE](nfe.png)", "", "## Stage times (s)", "",
          ", ".join(f"{k} {v:.0f}" for k, v in raw["stages"].items()), "", "Estimated before the run (s): "
          + ", ".join(f"{k} {v:.0f}" for k, v in raw.get("estimate", {}).items()) + ".", ""]
    files = {"report.json": write_json(folder / "report.json", finite(rep | {"stages": raw["stages"],
                                                                                "config": cfg.to_dict()})),
             "report.md": write_text(folder / "report.md", "\n".join(md))}
    return files | {f"{k}.png": v for k, v in figs.items()}
