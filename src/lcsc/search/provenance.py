"""Search outputs: best coefficients, merged checkpoint, and a provenance card (JSON + Markdown)."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from lcsc.atomic import write_json, write_text
from lcsc.search.config import SearchConfig
from lcsc.search.runner import SearchResult, checkpoint_interval, objective_summary

__all__ = ["write_search_outputs"]


_ALGORITHMS = {"alg1": "LCSC Algorithm 1 (evolutionary)", "cmaes": "CMA-ES (cmaes package) on the Σa = 1 hyperplane",
               "sep-cmaes": "separable CMA-ES (cmaes package) on the Σa = 1 hyperplane"}


def _card(result: SearchResult, merger: Any, objective: Any, config: SearchConfig, sigma: float,
          held_out: dict | None) -> dict[str, Any]:
    steps = list(merger.steps)  # the window's checkpoints only: anchors are listed apart
    interval = config.interval or checkpoint_interval(steps)
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "checkpoints": [{"step": s, "sha256": h} for s, h in zip(steps, list(merger.hashes)[:len(steps)])],
        "anchors": [dict(a) for a in getattr(merger, "anchors", [])],
        "window": steps[-1] - steps[0] + interval,
        "interval": interval,
        "groups": dict(merger.groups) if getattr(merger, "groups", None) else None,
        "objective": objective_summary(objective),
        "search": {**asdict(config), "sigma_resolved": sigma, "algorithm": _GRADIENT if result.gradient is not None
                   else _ALGORITHMS[config.optimizer]},
        "gradient": _gradient_card(result.gradient),
        "optimizer": result.optimizer,
        "space": {"spec": result.space, "w": None if result.best_w is None else result.best_w.tolist(),
                  "init_projection_error": result.init_projection_error},
        "racing": {"enabled": config.racing, "fraction": config.race_fraction, "keep": config.race_keep}
        if config.racing else None,
        "samples": result.samples,
        "revalidation": result.revalidation,
        "shrink": result.shrink,
        "seeds": {
            "search_rng": config.seed,
            **{k: v for k, v in objective_summary(objective).items() if "seed" in k},
        },
        "evaluations": result.evaluations,
        "objective_calls": result.objective_calls,
        "stopped_by": result.stopped,
        "best": {"score": result.best_score, "index": result.best_index, "name": result.best_name},
        "best_initial": {"name": result.best_initial_name, "score": result.best_initial_score},
        "held_out": held_out,
        "initial_scores": result.init_scores,
        "failures": {"count": len(result.failures), "first": result.failures[:5]},
        "redraws": result.redraws,
        "wall_time_s": round(result.wall_time_s, 3),
    }


_GRADIENT = "gradient LCSC (Adam on Σa = 1 through the sampler, fresh noise every step; lcsc.search.gradient)"


def _gradient_card(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The gradient search's record without its per-step terms (the journal keeps them)."""
    if record is None:
        return None
    return {k: v for k, v in record.items() if k != "terms"}


def _gradient_md(grad: dict[str, Any] | None) -> str:
    if not grad:
        return ""
    s, guard, losses = grad["settings"], grad["guard"], grad["losses"]
    rows = "\n".join(f"| {n} | {_num(v)} |{' **exported**' if n == guard['picked'] else ''}"
                     for n, v in zip(guard["names"], guard["scores"]))
    verdict = (f"**{guard['fallback']}.**" if guard.get("fallback") else
               "**Nothing beat the best anchor on the validation noise: the anchor itself is exported.**"
               if guard.get("exported_anchor") else "The best there is exported.")
    trend = f"{losses[0]:.4g} → {losses[-1]:.4g} (min {min(losses):.4g})" if losses else "no step taken"
    return (f"\n## Gradient search\n\n{grad['steps_done']} Adam steps from {grad['start']}, {s['batch_size']} fresh "
            f"samples each (noise stream seed {grad['stream_seed']}), lr {s['lr']:g} cosine-decayed to "
            f"{s['lr_final']:g}×, iterates averaged from {s['average_from']:g} of the steps; loss (normalised at step "
            f"0) {trend}.\n\nThe guard (validation noise seed {guard['validation_seed']}): {verdict}\n\n"
            f"| finalist | validation score |\n|---|---|\n{rows}\n")


def _markdown(card: dict[str, Any]) -> str:
    obj = card["objective"]
    init = "\n".join(f"| {n} | {s if s is None else f'{s:.6g}'} |" for n, s in card["initial_scores"].items())
    steps = [c["step"] for c in card["checkpoints"]]
    return f"""# LCSC search provenance

- **checkpoints**: {len(steps)} (steps {steps[0]} … {steps[-1]}, window {card["window"]}, interval {card["interval"]})\
{_anchor_count(card)}
- **objective**: `{obj["name"]}` ({obj["direction"]}), role {obj["role"]}
- **seeds**: {card["seeds"]}
- **evaluations**: {card["evaluations"]} ({card["objective_calls"]} objective calls), stopped by {card["stopped_by"]}
- **search**: {card["search"]["algorithm"]}; space `{card["space"]["spec"]}`; racing {_racing(card)}; \
{card["samples"]} samples generated
- {_best_line(card)}; best initial individual {card["best_initial"]["name"]}: {_num(card["best_initial"]["score"])} \
(search noise)
- **failures**: {card["failures"]["count"]}; children redrawn for |Σa| < 0.1: {card["redraws"]}
- **wall time**: {card["wall_time_s"]:.1f} s

## Initial (EMA) individuals

| individual | score |
|---|---|
{init}

{_anchors_md(card)}{_gradient_md(card.get("gradient"))}{_reval_md(card["revalidation"])}{_shrink_md(card["shrink"])}{_held_md(card["held_out"])}{_w_md(card["space"])}
Checkpoint content hashes (SHA-256), optimiser settings and the exported K-vector's provenance are in
`provenance.json`.
"""


def _best_line(card: dict[str, Any]) -> str:
    best = card["best"]
    if card.get("gradient"):
        return f"**exported**: the {best['name']}, score {_num(best['score'])} on the validation noise"
    return f"**best score**: {best['score']:.6g} (evaluation #{best['index']}{', ' + best['name'] if best['name'] else ''})"


def _anchor_count(card: dict[str, Any]) -> str:
    anchors = card.get("anchors") or []
    return f"; {len(anchors)} anchors after them ({', '.join(a['name'] for a in anchors)})" if anchors else ""


def _anchors_md(card: dict[str, Any]) -> str:
    """The anchors (rows after the window's checkpoints) as a small table."""
    anchors = card.get("anchors") or []
    if not anchors:
        return ""
    first = len(card["checkpoints"])
    rows = "\n".join(f"| {first + i} | `{a['name']}` | {a.get('kind', '')} | {a.get('source', '')} | "
                     f"`{a['sha256'][:16]}…` |" for i, a in enumerate(anchors))
    return ("\n## Anchors\n\nRows after the window's checkpoints (coefficient index, 0-based).\n\n"
            f"| row | anchor | kind | source | sha256 |\n|---|---|---|---|---|\n{rows}\n")


def _num(v) -> str:
    return "—" if v is None else f"{v:.6g}"


def _racing(card: dict[str, Any]) -> str:
    r = card["racing"]
    return "off" if not r else f"on (prefix {r['fraction']:g} of the samples, best {r['keep']:g} to the full count)"


def _held_md(held: dict | None) -> str:
    """The held-out gain over the best initial individual in every space (searched or never seen)."""
    if not held:
        return ""
    rows = []
    for space, rep in held["spaces"].items():
        scores = " · ".join(f"{k} {v:.5g}" for k, v in rep["scores"].items())
        rows.append(f"| FD_{space} | {'yes' if rep['searched'] else '**no**'} | {scores} | "
                    f"{100 * rep['gain_vs_best_initial']:+.1f} % |")
    return ("\n## Held-out noise (seed " + str(held["seed"]) + ")\n\n| space | searched | held-out FD | gain over best "
            "initial |\n|---|---|---|---|\n" + "\n".join(rows) + "\n\nA gain that holds only in searched spaces "
            "improved the metric, not the model.\n")


def _reval_md(reval: dict | None) -> str:
    if not reval:
        return ""
    anchor = (reval.get("anchor") or {}).get("candidate")
    rows = "\n".join(f"| #{c}{' (best anchor)' if c == anchor else ''} | {_num(v)} |"
                     f"{' **exported**' if i == reval['picked'] else ''}"
                     for i, (c, v) in enumerate(zip(reval["candidates"], reval["scores"])))
    if reval.get("fallback"):
        verdict = f"**{reval['fallback']}.**"
    elif reval.get("exported_anchor"):
        verdict = (f"**No candidate beat the best anchor ({reval['anchor']['name']}) on the validation noise: the "
                   "anchor itself is exported.**")
    else:
        verdict = "The best there is exported" + (" (it beat the best anchor there)." if anchor is not None else ".")
    return (f"\n## Revalidation (validation noise seed {reval['validation_seed']})\n\nThe {len(reval['candidates'])} "
            "finalists — the best distinct individuals on the search noise" + (" and the best anchor" if anchor is not
                                                                                 None else "") +
            f" — re-scored on fresh noise. {verdict}\n\n| evaluation | validation score |\n|---|---|\n{rows}\n")


def _shrink_md(shrink: dict | None) -> str:
    if not shrink:
        return ""
    toward = shrink.get("toward") or "the best initial individual"
    exported = shrink.get("exported", "the shrunk point")
    return (f"\n## Shrinkage (λ = {shrink['lambda']:g})\n\nw₀ + λ(w* − w₀) between {toward} and evaluation "
            f"#{shrink['from_index']} (search-noise score {_num(shrink['from_score'])}); its own search-noise score is "
            f"{_num(shrink['score'])}. Exported: {exported}.\n")


def _w_md(space: dict) -> str:
    if space["spec"] == "full" or space["w"] is None:
        return ""
    w = np.round(np.asarray(space["w"], dtype=np.float64), 6).tolist()
    return f"\n## Structured space `{space['spec']}`\n\nw (one row per group) = {w}\n"


def write_search_outputs(
    result: SearchResult, merger: Any, objective: Any, config: SearchConfig, out_dir: str | Path,
    held_out: dict | None = None,
) -> dict[str, Path]:
    """Write ``best_coefficients.json``, ``merged.safetensors``, ``provenance.json`` and ``provenance.md``."""
    out = Path(out_dir)
    sigma = config.sigma if config.sigma is not None else 1.0 / merger.K
    paths = {"coefficients": out / "best_coefficients.json", "checkpoint": out / "merged.safetensors"}
    merger.coefficients(result.best).save(paths["coefficients"])
    if hasattr(merger, "save"):
        merger.save(paths["checkpoint"], result.best)
    card = _card(result, merger, objective, config, sigma, held_out)
    paths["card_json"] = write_json(out / "provenance.json", card)
    paths["card_md"] = write_text(out / "provenance.md", _markdown(card))
    return paths
