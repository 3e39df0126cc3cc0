"""Search outputs: best coefficients, merged checkpoint, and a provenance card (JSON + Markdown)."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lcsc.atomic import write_json, write_text
from lcsc.search.config import SearchConfig
from lcsc.search.runner import SearchResult, checkpoint_interval, objective_summary

__all__ = ["write_search_outputs"]


def _card(
    result: SearchResult, merger: Any, objective: Any, config: SearchConfig, sigma: float
) -> dict[str, Any]:
    steps = list(merger.steps)
    interval = config.interval or checkpoint_interval(steps)
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "checkpoints": [{"step": s, "sha256": h} for s, h in zip(steps, merger.hashes)],
        "window": steps[-1] - steps[0] + interval,
        "interval": interval,
        "groups": dict(merger.groups) if getattr(merger, "groups", None) else None,
        "objective": objective_summary(objective),
        "search": {**asdict(config), "sigma_resolved": sigma, "algorithm": "LCSC Algorithm 1 (evolutionary)"},
        "seeds": {
            "search_rng": config.seed,
            **{k: v for k, v in objective_summary(objective).items() if "seed" in k},
        },
        "evaluations": result.evaluations,
        "objective_calls": result.objective_calls,
        "stopped_by": result.stopped,
        "best": {"score": result.best_score, "index": result.best_index, "name": result.best_name},
        "initial_scores": result.init_scores,
        "failures": {"count": len(result.failures), "first": result.failures[:5]},
        "redraws": result.redraws,
        "wall_time_s": round(result.wall_time_s, 3),
    }


def _markdown(card: dict[str, Any]) -> str:
    obj, best = card["objective"], card["best"]
    init = "\n".join(f"| {n} | {s if s is None else f'{s:.6g}'} |" for n, s in card["initial_scores"].items())
    steps = [c["step"] for c in card["checkpoints"]]
    return f"""# LCSC search provenance

- **checkpoints**: {len(steps)} (steps {steps[0]} … {steps[-1]}, window {card["window"]}, interval {card["interval"]})
- **objective**: `{obj["name"]}` ({obj["direction"]}), role {obj["role"]}
- **seeds**: {card["seeds"]}
- **evaluations**: {card["evaluations"]} ({card["objective_calls"]} objective calls), stopped by {card["stopped_by"]}
- **best score**: {best["score"]:.6g} (evaluation #{best["index"]}{", " + best["name"] if best["name"] else ""})
- **failures**: {card["failures"]["count"]}; children redrawn for |Σa| < 0.1: {card["redraws"]}
- **wall time**: {card["wall_time_s"]:.1f} s

## Initial (EMA) individuals

| individual | score |
|---|---|
{init}

Checkpoint content hashes (SHA-256) are in `provenance.json`.
"""


def write_search_outputs(
    result: SearchResult, merger: Any, objective: Any, config: SearchConfig, out_dir: str | Path
) -> dict[str, Path]:
    """Write ``best_coefficients.json``, ``merged.safetensors``, ``provenance.json`` and ``provenance.md``."""
    out = Path(out_dir)
    sigma = config.sigma if config.sigma is not None else 1.0 / merger.K
    paths = {"coefficients": out / "best_coefficients.json", "checkpoint": out / "merged.safetensors"}
    merger.coefficients(result.best).save(paths["coefficients"])
    if hasattr(merger, "save"):
        merger.save(paths["checkpoint"], result.best)
    card = _card(result, merger, objective, config, sigma)
    paths["card_json"] = write_json(out / "provenance.json", card)
    paths["card_md"] = write_text(out / "provenance.md", _markdown(card))
    return paths
