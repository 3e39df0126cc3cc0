"""The demo's models as files: EMA*, the exported LCSC and the other method's LCSC at every window end (and the DM's
low-NFE search), each LCSC with the coefficient file ``lcsc merge`` rebuilds it from, bit for bit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lcsc.atomic import write_json, write_text
from lcsc.checkpoints.format import read_metadata, save_checkpoint

if TYPE_CHECKING:
    from lcsc.demo.run import DemoResult
    from lcsc.experiment.stages import ModelRun, SearchRun

__all__ = ["write_models", "MODELS_DIR"]

MODELS_DIR = "models"


def _ema_star(run: ModelRun, star: str, point: int, path: Path) -> dict[str, Any]:
    """EMA* as a file: the online EMA's snapshot, or the post-hoc reconstruction ``lcsc ema`` writes for its σ_rel."""
    from lcsc.experiment.stages import ema_state_named, ema_state_path

    if star.startswith("hl-"):
        src = ema_state_path(run, float(star.removeprefix("hl-")), point)
        tmp = path.with_name(path.name + ".tmp")
        shutil.copyfile(src, tmp)
        tmp.replace(path)
        how = f"online EMA (half-life {star.removeprefix('hl-')} iterations): a copy of {src}"
    else:
        sigma = float(star.removeprefix("sigma-"))
        meta = read_metadata(run.run_dir / "last.safetensors")
        config = json.loads(meta["config"]) if "config" in meta else None
        extra = {k: meta[k] for k in ("data",) if k in meta} | {"posthoc_sigma_rel": repr(sigma), "ema_star": star}
        save_checkpoint(path, ema_state_named(run, star, point), step=point, config=config, extra=extra)
        how = f"post-hoc EMA σ_rel {sigma:g}: lcsc ema {run.run_dir} --sigma-rel {sigma:g} --step {point} -o FILE"
    return {"method": "EMA*", "ema_star": star, "made_by": how}


def _lcsc(search: SearchRun, path: Path, window: Path) -> dict[str, Any]:
    """The search's export and its coefficient file (anchors recorded by their specs, resolved again by merge)."""
    best = np.asarray(search.result.best)
    coeffs = path.with_name(path.name.removesuffix(".safetensors") + ".coeffs.json")
    search.merger.coefficients(best).save(coeffs)
    search.merger.save(path, best)
    return {"coefficients": coeffs.name, "rebuild": f"lcsc merge {window} --coeffs {coeffs} -o FILE.safetensors",
            "export": search.result.best_name}


def _entries(result: DemoResult) -> list[tuple[str, str, int, int, Any]]:
    """(model, kind, step, nfe, what): kind names the file, what is an EMA* name or a SearchRun."""
    cfg, out = result.config, []
    other = "lcsc-alg1" if cfg.export == "gradient" else "lcsc-grad"
    for name, run in result.runs.items():
        for p in cfg.lcsc_points:
            out.append((name, "ema-star", p, run.nfe, result.ema_star[name][p]))
            out.append((name, "lcsc", p, run.nfe, result.searches[name][p]))
            if p in result.other_searches.get(name, {}):
                out.append((name, other, p, run.nfe, result.other_searches[name][p]))
        if name in result.low_nfe_searches:
            out.append((name, f"lcsc-grad-nfe{cfg.dm_low_nfe}", cfg.iterations, cfg.dm_low_nfe,
                        result.low_nfe_searches[name]))
    return out


def write_models(result: DemoResult) -> dict[str, Any]:
    """Write ``OUT/models/{model}-{kind}-{step}.safetensors`` (kind: ema-star, lcsc = the export, lcsc-alg1 or
    lcsc-grad = the other method, lcsc-grad-nfe4 = the DM's gradient search at NFE 4), each LCSC with ``….coeffs.json``, and an
    index ``models.json`` / ``README.md`` (what each file is, how to rebuild it, how to score it). Returns the index
    and keeps it in ``result.models``."""
    folder = result.out / MODELS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name, kind, step, nfe, what in _entries(result):
        path = folder / f"{name}-{kind}-{step}.safetensors"
        run = result.runs[name]
        if kind == "ema-star":
            entry = _ema_star(run, what, step, path)
        else:
            entry = {"method": _method(result, kind), **_lcsc(what, path, run.run_dir / "windows" / str(step))}
        files.append({"file": path.name, "model": name, "step": step, "nfe": nfe, **entry,
                      "eval": f"lcsc eval {path} --nfe {nfe} --samples {result.config.eval_samples} --metrics fd "
                              f"--features digits --noise-seed {result.config.held_out_seeds[0]}"})
    index = {"export": result.config.export, "files": files}
    write_json(folder / "models.json", index)
    write_text(folder / "README.md", _readme(index))
    result.models = index
    return index


def _method(result: DemoResult, kind: str) -> str:
    if kind == "lcsc":
        return "LCSC"
    if kind.startswith("lcsc-grad-nfe"):
        return f"LCSC gradient searched at NFE {kind.removeprefix('lcsc-grad-nfe')}"
    return result.other_method


def _readme(index: dict[str, Any]) -> str:
    lines = ["# The demo's models", "",
             f"`lcsc` = the export behind the report's headlines ({index['export']} search); every LCSC file has the "
             "coefficient file `lcsc merge` rebuilds it from, bit for bit at the demo's torch thread count (another "
             "thread count sums the GEMM in another order: the last float32 bit of a few weights may differ); "
             "anchors are recorded by spec and hash. "
             "`eval` scores a file on the report's first held-out noise seed (its FD_digits is that row's first "
             "per-seed value).", "",
             "| File | Model | Step | NFE | Method | Made by / rebuilt with | Score it |", "|---|---|---|---|---|---|---|"]
    for f in index["files"]:
        how = f.get("made_by") or f"`{f['rebuild']}` ({f['export']})"
        lines.append(f"| `{f['file']}` | {f['model']} | {f['step']} | {f['nfe']} | {f['method']} | {how} | "
                     f"`{f['eval']}` |")
    return "\n".join(lines) + "\n"
