"""``lcsc train dm|cm --data digits --iterations N --record-window W --record-interval I -o RUN_DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path

from lcsc.atomic import check_writable
from lcsc.cli.common import write_resolved_config
from lcsc.data import load_data
from lcsc.errors import ConfigError
from lcsc.models import ModelConfig
from lcsc.models.config import BACKBONES, BETA_SCHEDULES
from lcsc.training import ConsistencyConfig, OptimConfig, RecordConfig, TrainConfig, Trainer
from lcsc.training.plugins import LOSS_WEIGHTINGS, OPTIM_SCHEDULES, TIMESTEP_SAMPLERS
from lcsc.training.state import STATE_NAME

__all__ = ["register", "config_from_args", "default_half_lives"]

DEFAULT_LR = {"dm": 2e-3, "cm": 1e-3}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a DM or CM while recording checkpoint windows and EMA snapshots")
    p.add_argument("kind", choices=["dm", "cm"], help="dm: ε-prediction DDPM; cm: consistency model (CT or CD)")
    p.add_argument("-o", "--output", type=Path, required=True, help="run folder (resumed when it holds a state)")
    p.add_argument("--data", default="digits", help="'digits' (embedded), an image folder, or an .npz (N×H×W×C uint8)")
    p.add_argument("--resolution", type=int, default=None, help="resize/center-crop images to this size")
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 2e-3 DM, 1e-3 CM)")
    p.add_argument("--optimizer", choices=["adam", "adamw"], default="adam")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--warmup", type=int, default=0, help="linear learning-rate warm-up iterations")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, …")
    _add_model_options(p)
    _add_record_options(p)
    _add_cm_options(p)
    p.add_argument("--init-from", default=None, metavar="CKPT", help="start from these weights (fine-tune)")
    _add_faster_options(p)
    p.add_argument("--sample-count", type=int, default=64, help="images in samples.png (0: none)")
    p.add_argument("--sample-nfe", type=int, default=None, help="NFE for samples.png (default 20 DM / 1 CM)")
    p.add_argument("--sample-solver", choices=["ddim", "dpm-solver"], default="dpm-solver")
    p.add_argument("--no-resume", action="store_true", help="refuse to continue a run already in the folder")
    p.set_defaults(func=run)


def _add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", choices=BACKBONES, default="small", help="small (8×8 CPU) or diffusers UNet presets")
    g.add_argument("--channels", type=int, default=32, help="width of the small backbone")
    g.add_argument("--class-cond", action="store_true", help="condition on the data's class labels")
    g.add_argument("--dropout", type=float, default=0.0)
    g.add_argument("--schedule", choices=BETA_SCHEDULES, default="linear", help="DM β schedule")
    g.add_argument("--train-timesteps", type=int, default=1000, help="DM training timesteps T")


def _add_faster_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("faster DM training (CLTS, Min-SNR, MDLRC)")
    g.add_argument("--timesteps", default="uniform", help=f"DM timestep sampler: {', '.join(TIMESTEP_SAMPLERS)}")
    g.add_argument("--clts-mu", type=float, default=0.3, help="CLTS Gaussian centre as a fraction of T")
    g.add_argument("--clts-sigma", type=float, default=None, help="CLTS Gaussian std as a fraction of T "
                   "(default: the std of uniform timesteps, ≈ 0.289)")
    g.add_argument("--clts-target", type=int, default=None, help="CLTS: iteration by which the Gaussian has fully "
                   "replaced uniform sampling (default: a quarter of the run)")
    g.add_argument("--loss-weighting", default="none", help=f"DM loss weighting: {', '.join(LOSS_WEIGHTINGS)}")
    g.add_argument("--minsnr-gamma", type=float, default=5.0, help="Min-SNR-γ truncation")
    g.add_argument("--momentum", default="constant", help=f"Adam β₁ schedule: {', '.join(OPTIM_SCHEDULES)} "
                   "(md: momentum decay; mdlrc: with learning-rate compensation)")
    g.add_argument("--beta-init", type=float, default=0.9, help="Adam β₁ (the initial β₁ of md/mdlrc)")
    g.add_argument("--beta-min", type=float, default=0.5, help="md/mdlrc: floor of the decayed β₁")
    g.add_argument("--decay-steps", type=int, default=None, help="md/mdlrc: T_decay, iterations over which β₁ "
                   "decays (default: the whole run)")


def _add_record_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("recording")
    g.add_argument("--record-window", type=int, default=None, help="window W (default min(N, 100·I))")
    g.add_argument("--record-interval", type=int, default=10, help="save raw weights every I iterations")
    g.add_argument("--record-at", default="", help="window end steps S1,S2,… (default: the last step)")
    g.add_argument("--ema-half-life", default=None, help="EMA half-lives in iterations H1,H2,… (default N/50,N/10)")
    g.add_argument("--ema-rate", default="", help="EMA decay rates R1,R2,… (in addition to half-lives)")
    g.add_argument("--ema-at", default="", help="extra EMA snapshot steps S1,S2,… (besides the window ends)")
    g.add_argument("--phema-sigma-rels", default="", help="power-EMA σ_rel values S1,S2,… (e.g. 0.05,0.10) whose "
                   "snapshots `lcsc ema` combines into any EMA length after training (default: none)")
    g.add_argument("--phema-every", type=int, default=None, help="power-EMA snapshot interval in iterations "
                   "(default N/32)")
    g.add_argument("--storage-dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    g.add_argument("--disk-budget", default=None, help="refuse to start if recording needs more (e.g. 2GB, 500MB)")


def _add_cm_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("consistency model")
    g.add_argument("--mode", choices=["ct", "cd"], default="ct", help="consistency training or distillation")
    g.add_argument("--teacher", default=None, metavar="CKPT", help="CD: a trained lcsc DM checkpoint")
    g.add_argument("--s0", type=int, default=10, help="CT curriculum: initial discretisation steps")
    g.add_argument("--s1", type=int, default=1280, help="CT curriculum: final discretisation steps")
    g.add_argument("--num-scales", type=int, default=18, help="CD: discretisation steps N")
    g.add_argument("--solver", choices=["euler", "heun"], default="heun", help="CD: teacher ODE step")
    g.add_argument("--target-ema", type=float, default=0.0, metavar="MU", help="CD/CT target network θ⁻ as an EMA "
                   "of θ with rate μ (original CD, e.g. 0.95); 0 = θ⁻ = stop-grad(θ), the default")


def _floats(text: str | None, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip()) if text else ()
    except ValueError as exc:
        raise ConfigError(f"{flag} {text!r} must be comma-separated numbers") from exc


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise ConfigError(f"{flag} {text!r} must be comma-separated integer steps") from exc


def parse_bytes(text: str | None) -> int | None:
    """'2GB', '500MB', '1.5e9' → bytes (decimal units)."""
    if text is None:
        return None
    units = {"TB": 1e12, "GB": 1e9, "MB": 1e6, "KB": 1e3, "B": 1}
    t = text.strip().upper()
    for unit, factor in units.items():
        if t.endswith(unit):
            t, scale = t[: -len(unit)], factor
            break
    else:
        scale = 1
    try:
        return int(float(t) * scale)
    except ValueError as exc:
        raise ConfigError(f"--disk-budget {text!r} must be a size like 2GB or 500MB") from exc


def default_half_lives(iterations: int) -> tuple[float, ...]:
    """Half-lives that fit the run: N/50 and N/10 iterations (at least 1)."""
    return tuple(sorted({max(1.0, round(iterations / 50)), max(1.0, round(iterations / 10))}))


def config_from_args(args: argparse.Namespace, num_classes: int = 0) -> TrainConfig:
    """Build the frozen :class:`TrainConfig` from parsed options (validation happens in the dataclasses);
    ``num_classes`` is the data's class count, used with ``--class-cond``."""
    if args.class_cond and not num_classes:
        raise ConfigError(f"--class-cond needs labelled data, but {args.data} has no class labels")
    model = ModelConfig(kind=args.kind, backbone=args.model, channels=args.channels, dropout=args.dropout,
                        num_classes=num_classes if args.class_cond else 0, beta_schedule=args.schedule,
                        num_train_timesteps=args.train_timesteps)
    half_lives = default_half_lives(args.iterations) if args.ema_half_life is None else \
        _floats(args.ema_half_life, "--ema-half-life")
    window = args.record_window or min(args.iterations, 100 * args.record_interval)
    record = RecordConfig(window=window, interval=args.record_interval, ends=_ints(args.record_at, "--record-at"),
                          storage_dtype=args.storage_dtype, disk_budget=parse_bytes(args.disk_budget),
                          ema_steps=_ints(args.ema_at, "--ema-at"),
                          phema_sigma_rels=_floats(args.phema_sigma_rels, "--phema-sigma-rels"),
                          phema_every=args.phema_every)
    optim = OptimConfig(name=args.optimizer, lr=args.lr or DEFAULT_LR[args.kind], weight_decay=args.weight_decay,
                        warmup=args.warmup, schedule=args.momentum, beta1=args.beta_init, beta_min=args.beta_min,
                        decay_steps=args.decay_steps)
    consistency = None
    if args.kind == "cm":
        consistency = ConsistencyConfig(mode=args.mode, teacher=args.teacher, s0=args.s0, s1=args.s1,
                                        num_scales=args.num_scales, solver=args.solver, target_ema=args.target_ema)
    elif args.teacher:
        raise ConfigError("--teacher is for `lcsc train cm --mode cd`")
    elif args.target_ema:
        raise ConfigError("--target-ema is for `lcsc train cm`")
    return TrainConfig(model=model, data=args.data, resolution=args.resolution, iterations=args.iterations,
                       batch_size=args.batch_size, seed=args.seed, optim=optim, record=record,
                       ema_half_lives=half_lives, ema_rates=_floats(args.ema_rate, "--ema-rate"),
                       timestep_sampler=args.timesteps, clts_mu=args.clts_mu, clts_sigma=args.clts_sigma,
                       clts_target=args.clts_target, loss_weighting=args.loss_weighting,
                       minsnr_gamma=args.minsnr_gamma,
                       consistency=consistency, init_from=args.init_from, device=args.device,
                       sample_count=args.sample_count, sample_nfe=args.sample_nfe, sample_solver=args.sample_solver)


def run(args: argparse.Namespace) -> int:
    if args.no_resume and (args.output / "state" / STATE_NAME).exists():
        raise ConfigError(f"{args.output} already holds a training state; drop --no-resume or pick a new folder")
    check_writable(args.output, folder=True)
    data = load_data(args.data, args.resolution)
    config = config_from_args(args, data.num_classes or 0)
    trainer = Trainer(config, args.output, data=data)
    if trainer.step:
        print(f"resuming {args.output} at step {trainer.step}")
    write_resolved_config(args.output / "config.json", "train", args, {"train": trainer.config.to_dict()})
    result = trainer.run()
    plan = trainer.recorder.plan
    print(f"\ntrained {config.model.kind} to step {result.step} in {result.seconds:.1f} s, last loss "
          f"{result.last_loss:.4f}")
    for end, steps in plan.steps().items():
        print(f"window {args.output}/windows/{end}: {len(steps)} checkpoints (steps {steps[0]}…{steps[-1]})")
    print(f"EMA snapshots in {args.output}/ema/ ({', '.join(trainer.ema.rates)}), log {args.output}/log.jsonl")
    if len(trainer.phema):
        print(f"power-EMA snapshots in {args.output}/phema/ ({', '.join(trainer.phema.names)}, "
              f"{len(trainer.recorder.phema_steps)} steps each); combine them with `lcsc ema {args.output}`")
    if result.samples:
        print(f"samples: {result.samples}")
    return 0
