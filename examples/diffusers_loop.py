# A plain diffusers/accelerate DDPM training loop (as in diffusers' train_unconditional.py) with lcsc's recorder.
"""Train a tiny ``UNet2DModel`` on the digits (upscaled to 16×16) with ``DDPMScheduler``'s ε-loss, the way diffusers'
example loops do (accelerate, ``save_state`` every ``--checkpointing-steps`` into ``OUT/checkpoint-N/``, the final
pipeline in ``OUT``), with lcsc's checkpoint recorder added in three lines (marked ``lcsc``). About a minute on CPU:

    python examples/diffusers_loop.py --out runs/diffusers_loop          # --steps 300 by default

Then search the coefficients of the recorder's window (a checkpoint every 5 steps over the last 150) against FID,
with no code: the model comes from the pipeline's unet/config.json and scheduler/scheduler_config.json, the
reference from the training images the loop saved:

    lcsc search runs/diffusers_loop/lcsc/windows/300 --model-config runs/diffusers_loop \\
        --reference runs/diffusers_loop/reference.npz --objective fid --scheduler ddim --nfe 10 \\
        --samples 100 --evals 24 --half-lives 10,40 -o runs/diffusers_loop/search

or the ``checkpoint-N/`` folders that ``save_state`` wrote anyway (their optimizer/RNG pickles are never read):

    lcsc search runs/diffusers_loop --model-config runs/diffusers_loop --reference runs/diffusers_loop/reference.npz \\
        --objective fid --scheduler ddim --nfe 10 --samples 100 --evals 12 --half-lives 50,100 -o runs/dl_search

Inception FID costs about 0.2 s per image on one CPU core (the first search also scores the 1,797 reference images
once, about 6 minutes; they are cached): add ``--device cuda`` where there is a GPU. The search also writes the
merge as this run's pipeline with the merged UNet, which
``DDPMPipeline.from_pretrained("runs/diffusers_loop/search/pipeline")`` loads (``lcsc merge … --model-config
runs/diffusers_loop`` writes ``NAME-pipeline/`` beside ``-o NAME.safetensors``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

from lcsc.data import load_digits_data
from lcsc.training import CheckpointRecorder  # lcsc (1/3)


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/diffusers_loop"))
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--checkpointing-steps", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args(argv)
    torch.manual_seed(0)

    data = load_digits_data(16).images  # 1797 × 1 × 16 × 16 in [-1, 1]
    unet = UNet2DModel(sample_size=16, in_channels=1, out_channels=1, layers_per_block=1,
                       block_out_channels=(16, 32), norm_num_groups=8,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"))
    noise_scheduler = DDPMScheduler(num_train_timesteps=1000)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=2e-3)
    accelerator = Accelerator(project_dir=str(args.out))
    unet, optimizer = accelerator.prepare(unet, optimizer)
    record_window = max(1, args.steps // 2)
    rec = CheckpointRecorder(args.out / "lcsc", accelerator.unwrap_model(unet), total_steps=args.steps,  # lcsc (2/3)
                             window=record_window, interval=max(1, record_window // 30))

    gen = torch.Generator().manual_seed(0)
    for step in range(1, args.steps + 1):
        clean = data[torch.randint(0, len(data), (args.batch_size,), generator=gen)].to(accelerator.device)
        noise = torch.randn_like(clean)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(clean),), device=clean.device)
        noisy = noise_scheduler.add_noise(clean, noise, timesteps)
        loss = F.mse_loss(unet(noisy, timesteps).sample, noise)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        rec.step(step)  # lcsc (3/3)
        if step % args.checkpointing_steps == 0:
            accelerator.save_state(str(args.out / f"checkpoint-{step}"))
    if accelerator.is_main_process:
        DDPMPipeline(unet=accelerator.unwrap_model(unet), scheduler=noise_scheduler).save_pretrained(str(args.out))
        images = ((data[:, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
        np.savez(args.out / "reference.npz", images=images)  # the FID reference: the training images
    print(f"final loss {loss.item():.4f}; wrote {args.out} (lcsc windows in {args.out / 'lcsc' / 'windows'})")
    return args.out


if __name__ == "__main__":
    main()
