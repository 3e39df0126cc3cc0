"""``lcsc search`` options for checkpoints of a diffusers training loop: ``--model-config``, ``--reference``,
``--scheduler`` (an alias of ``--solver``), and the objective and held-out report they build."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lcsc.cli.search_saved import read_saved
from lcsc.diffusion.sampling import DM_SOLVERS
from lcsc.errors import ConfigError

__all__ = ["add_diffusers_options", "uses_diffusers", "diffusers_search_objective", "diffusers_held_out_objectives"]

_RESTORED = ("model_config", "reference")


def add_diffusers_options(p: argparse.ArgumentParser) -> None:
    """The options of a search over a diffusers run (UNet2DModel checkpoints with no lcsc metadata)."""
    g = p.add_argument_group("checkpoints from a diffusers training loop (UNet2DModel)")
    g.add_argument("--model-config", type=Path, default=None, metavar="CONFIG",
                   help="the UNet's config.json, its save_pretrained folder, or a pipeline folder (unet/config.json; "
                        "the noise schedule from scheduler/scheduler_config.json, else DDPMScheduler's defaults)")
    g.add_argument("--reference", default=None, metavar="IMAGES|STATS.npz",
                   help="reference data for FID/FD/KID: a folder of images, an .npz of images, or an .npz of FID "
                        "statistics (mu, sigma) in the objective's feature space")
    g.add_argument("--scheduler", dest="solver", choices=list(DM_SOLVERS), default=argparse.SUPPRESS,
                   help="the same as --solver")


def uses_diffusers(args: argparse.Namespace) -> bool:
    """True when the search is over a diffusers run (``--model-config``, given now or saved by the resumed search)."""
    if getattr(args, "resume", None) is not None and getattr(args, "model_config", None) is None:
        saved = read_saved(args.resume)
        for key in _RESTORED:
            if getattr(args, key, None) is None and saved.get(key) is not None:
                setattr(args, key, Path(saved[key]) if key == "model_config" else saved[key])
    if getattr(args, "model_config", None) is not None:
        return True
    if getattr(args, "reference", None) is not None:
        raise ConfigError(f"--reference {args.reference}: only for diffusers runs with --model-config (lcsc runs read "
                          "their data from the checkpoints' metadata, or --data)")
    return False


def _common(args: argparse.Namespace) -> dict:
    from lcsc.objectives import is_builtin

    if not is_builtin(args.objective):
        raise ConfigError(f"--model-config is for the built-in objectives (fid, fd-SPACE, kid[-SPACE], mean:…); "
                          f"--objective {args.objective} is a user objective that builds its own model")
    if args.direction == "maximize":
        raise ConfigError(f"--objective {args.objective}: built-in objectives are minimised")
    reference = args.reference if args.reference is not None else args.data
    if reference is None:
        raise ConfigError(f"--model-config {args.model_config}: a diffusers run records no training data; pass "
                          "--reference IMAGES_DIR or STATS.npz")
    return dict(model_config=args.model_config, reference=reference, key=args.key, num_samples=args.samples,
                nfe=args.nfe, solver=args.solver, device=args.device, noise_seed=args.noise_seed)


def diffusers_search_objective(args: argparse.Namespace):
    """The built-in objective ``--objective`` for the diffusers run ``args.checkpoints``."""
    from lcsc.objectives.diffusers import diffusers_model, diffusers_objective

    common, batched = _common(args), bool(getattr(args, "batched_sampling", False))
    # The model (and so the UNet's config.json) is read once here; diffusers_objective refuses batched sampling
    # before it would need one.
    model = None if batched else diffusers_model(args.model_config, args.checkpoints, args.key)
    objective = diffusers_objective(args.checkpoints, args.objective, progress=True, batched=batched,
                                    autocast=getattr(args, "autocast", None), model=model, **common)
    if model.config.scheduler_source is None:
        print(f"note: no scheduler config beside {model.config.source}: assuming DDPMScheduler's defaults (1000 "
              "steps, linear betas 1e-4 … 0.02, epsilon prediction)", file=sys.stderr)
    return objective


def diffusers_held_out_objectives(args: argparse.Namespace) -> dict:
    """space → (held-out FD objective, searched) for the held-out report of a diffusers run's search."""
    from lcsc.objectives.diffusers import diffusers_held_out

    return diffusers_held_out(args.checkpoints, args.objective, **_common(args))
