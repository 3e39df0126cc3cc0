# LCSC paper (Liu et al.), Tab. 10: the EMA-rate grid (online EMAs and post-hoc σ_rel) on search and held-out noise.
"""Every EMA candidate of a run at chosen training points, scored on the search noise and on held-out noise.

Candidates are the demo's EMA* grid: the run's online EMAs (``ema/hl-H``) and post-hoc EMA reconstructions
(:class:`~lcsc.merge.posthoc.PosthocEMA`, the demo's σ_rel grid by default), loaded with the demo's own
:func:`lcsc.experiment.stages.candidate_states`. Scores come from the demo's :class:`lcsc.experiment.scoring.Scorer`:
search-noise FD_digits (:meth:`Scorer.objective`, seed ``seed``) and held-out FD_digits / FD2 / FD3 (means over
the held-out seeds, :meth:`Scorer.held_out` with ``full=False``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tqdm.auto import tqdm

from lcsc.errors import ConfigError

__all__ = ["GridSettings", "QUICK", "run_kind", "online_half_lives", "check_points", "ema_grid",
           "plot_ema_grid", "ema_grid_markdown"]


@dataclass(frozen=True)
class GridSettings:
    """Sample counts, held-out seeds, NFE (None: 5 for a DM, 1 for a CM) and the search-noise seed."""

    samples: int = 400
    eval_samples: int = 300
    eval_seeds: int = 2
    nfe: int | None = None
    seed: int = 0


QUICK = GridSettings(samples=32, eval_samples=32, eval_seeds=1)


def run_kind(run_dir: Path) -> dict[str, Any]:
    """``train_config.json`` of a run (a ConfigError naming the file when it is missing or unreadable)."""
    path = Path(run_dir) / "train_config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: not a readable lcsc run config ({e})") from None


def online_half_lives(run_dir: Path) -> list[float]:
    """The half-lives of the run's online EMAs (``ema/hl-H``), increasing."""
    out = []
    for d in (Path(run_dir) / "ema").glob("hl-*"):
        try:
            out.append(float(d.name.removeprefix("hl-")))
        except ValueError:
            continue
    return sorted(out)


def _ema_steps(run_dir: Path, half_life: float) -> set[int]:
    from lcsc.training.ema import ema_name

    files = (Path(run_dir) / "ema" / ema_name(half_life=half_life)).glob("ema-*.safetensors")
    return {int(p.stem.removeprefix("ema-")) for p in files}


def check_points(run_dir: Path, points: list[int], half_lives: list[float], posthoc) -> None:
    """Every point must be an online-EMA snapshot step of every half-life and a post-hoc snapshot step."""
    if not points:
        raise ConfigError("give at least one point")
    phema = set(posthoc.steps) if posthoc is not None else None
    for p in points:
        for h in half_lives:
            steps = _ema_steps(run_dir, h)
            if p not in steps:
                raise ConfigError(f"point {p}: {run_dir}/ema/hl-{h:g} has no snapshot there (steps "
                                  f"{', '.join(map(str, sorted(steps)))})")
        if phema is not None and p not in phema:
            raise ConfigError(f"point {p}: not a power-EMA snapshot step in {run_dir}/phema (steps "
                              f"{', '.join(map(str, sorted(phema)))})")


def _scorer(settings: GridSettings):
    from lcsc.data import load_digits_data
    from lcsc.experiment.config import DemoConfig
    from lcsc.experiment.scoring import Scorer

    cfg = DemoConfig(search_samples=settings.samples, eval_samples=settings.eval_samples,
                     eval_seeds=settings.eval_seeds, seed=settings.seed, inception=False)
    return Scorer(cfg, load_digits_data())


def _score_point(run, grid, scorer, model, nfe: int, point: int, bar) -> list[dict[str, Any]]:
    from lcsc.experiment.stages import candidate_states

    states = candidate_states(run, grid, point)
    objective = scorer.objective(model, nfe)
    rows = []
    for name, state in states.items():
        held = scorer.held_out(model, state, nfe, full=False)
        rows.append({"point": point, "candidate": name, "family": "online" if name.startswith("hl-") else "posthoc",
                     "length": float(name.split("-", 1)[1]), "search_fd": float(objective.score(state)),
                     "held_out_fd": held.fd_mean, "held_out_fd_std": held.fd_std, "held_out_fd2": held.fd2_mean,
                     "held_out_fd3": held.fd3_mean})
        bar.update(1)
    return rows


def _best(rows: list[dict], points: list[int]) -> dict[str, dict[str, Any]]:
    out = {}
    for p in points:
        at = [r for r in rows if r["point"] == p]
        s = min(at, key=lambda r: r["search_fd"])["candidate"]
        h = min(at, key=lambda r: r["held_out_fd"])["candidate"]
        out[str(p)] = {"by_search": s, "by_held_out": h, "agree": s == h}
    return out


def ema_grid(run_dir: str | Path, points: list[int] | None = None, settings: GridSettings = GridSettings(),
             sigma_rels: list[float] | None = None, progress: bool = True) -> dict[str, Any]:
    """Score every online and post-hoc EMA of ``run_dir`` at ``points`` (default: the run's window ends)."""
    from lcsc.experiment.config import SIGMA_RELS
    from lcsc.experiment.stages import ModelRun
    from lcsc.models import load_model

    run_dir = Path(run_dir)
    config = run_kind(run_dir)
    kind = config.get("model", {}).get("kind", "dm")
    nfe = settings.nfe or (5 if kind == "dm" else 1)
    points = [int(p) for p in (points or config.get("record", {}).get("ends") or [config["iterations"]])]
    half_lives = online_half_lives(run_dir)
    sigmas = list(SIGMA_RELS if sigma_rels is None else sigma_rels)
    run = ModelRun(run_dir.name, run_dir, nfe, 0.0)
    posthoc = run.posthoc if sigmas else None
    if not half_lives and not sigmas:
        raise ConfigError(f"{run_dir}: no online EMAs (ema/hl-*) and no post-hoc σ_rels to score")
    check_points(run_dir, points, half_lives, posthoc)
    skipped = [(p, s) for p in points for s in sigmas if not posthoc.reconstructable(p, s)]
    if skipped:
        raise ConfigError(f"{run_dir}/phema: cannot reconstruct " + ", ".join(f"σ_rel {s:g} at {p}" for p, s in skipped)
                          + f" (stored σ_rels {', '.join(f'{s:g}' for s in posthoc.sigma_rels)}); pass --sigma-rels")
    grid = SimpleNamespace(half_lives=tuple(half_lives), sigma_rels=tuple(sigmas))
    scorer, model = _scorer(settings), load_model(run_dir / "last.safetensors")
    rows: list[dict[str, Any]] = []
    with tqdm(total=len(points) * (len(half_lives) + len(sigmas)), desc="ema grid", disable=not progress) as bar:
        for p in points:
            rows += _score_point(run, grid, scorer, model, nfe, p, bar)
    return {"run": str(run_dir), "kind": kind, "nfe": nfe, "points": points, "half_lives": half_lives,
            "sigma_rels": sigmas, "settings": asdict(settings) | {"nfe": nfe},
            "held_out_seeds": list(scorer.seeds), "rows": rows, "best": _best(rows, points)}


def plot_ema_grid(data: dict[str, Any]):
    """FD vs EMA length per family (online half-life, post-hoc σ_rel): one colour per point, solid = search
    noise, dashed = held-out."""
    from matplotlib.ticker import NullFormatter

    from lcsc.report.plots import plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, family, label in ((axes[0], "online", "half-life (iterations)"), (axes[1], "posthoc", "σ_rel")):
        for i, p in enumerate(data["points"]):
            rows = sorted((r for r in data["rows"] if r["point"] == p and r["family"] == family),
                          key=lambda r: r["length"])
            if not rows:
                continue
            x = [r["length"] for r in rows]
            ax.plot(x, [r["search_fd"] for r in rows], marker="o", ms=3, color=f"C{i}", label=f"{p} search")
            ax.plot(x, [r["held_out_fd"] for r in rows], marker="s", ms=3, ls="--", color=f"C{i}",
                    label=f"{p} held-out")
        ax.set(xscale="log", xlabel=label, ylabel="FD_digits", title=f"{family} EMA ({data['kind']}, NFE {data['nfe']})")
        ax.xaxis.set_minor_formatter(NullFormatter())  # log minor labels (2×10⁻², 3×10⁻², …) overlap
        if family == "posthoc":
            ax.set_xticks([0.015, 0.02, 0.03, 0.05, 0.1, 0.2], ["0.015", "0.02", "0.03", "0.05", "0.1", "0.2"])
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def ema_grid_markdown(data: dict[str, Any]) -> str:
    """A table candidate × point (search-noise FD / held-out FD, best of each bolded) and the trust check."""
    pts = data["points"]
    head = "| candidate | " + " | ".join(f"{p} search | {p} held-out" for p in pts) + " |"
    lines = [f"# EMA grid (LCSC Tab. 10): {data['run']} ({data['kind']}, NFE {data['nfe']})", "", head,
             "|---|" + "---|---|" * len(pts)]
    by = {(r["point"], r["candidate"]): r for r in data["rows"]}
    for name in dict.fromkeys(r["candidate"] for r in data["rows"]):
        cells = []
        for p in pts:
            r, b = by[(p, name)], data["best"][str(p)]
            cells += [f"**{r['search_fd']:.3f}**" if b["by_search"] == name else f"{r['search_fd']:.3f}",
                      f"**{r['held_out_fd']:.3f}**" if b["by_held_out"] == name else f"{r['held_out_fd']:.3f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    for p in pts:
        b = data["best"][str(p)]
        verdict = "agree" if b["agree"] else "disagree"
        lines.append(f"- point {p}: best by search noise {b['by_search']}, by held-out {b['by_held_out']} ({verdict})")
    s = data["settings"]
    lines.append(f"- search noise: seed {s['seed']}, {s['samples']} samples; held-out: {s['eval_seeds']} seeds × "
                 f"{s['eval_samples']} samples")
    return "\n".join(lines)
