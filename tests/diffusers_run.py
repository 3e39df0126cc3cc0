"""A tiny diffusers training run written the way diffusers' example loops write it (accelerate's save_state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

TINY_UNET = dict(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                 norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "UpBlock2D"))


def tiny_unet(seed: int = 0):
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    return UNet2DModel(**TINY_UNET)


def synthetic_images(n: int, seed: int = 0) -> torch.Tensor:
    """(n, 3, 16, 16) in [-1, 1]: smooth colour gradients with a bright square at a random place."""
    gen = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(-1, 1, 16)
    base = torch.rand(n, 3, 1, 1, generator=gen) * ramp.view(1, 1, 1, 16) + torch.rand(n, 3, 1, 1, generator=gen) * \
        ramp.view(1, 1, 16, 1)
    for i, (r, c) in enumerate(torch.randint(0, 12, (n, 2), generator=gen).tolist()):
        base[i, :, r:r + 4, c:c + 4] = 0.9
    return base.clamp(-1, 1)


def write_image_folder(folder: Path, images: torch.Tensor) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, x in enumerate(images):
        arr = ((x.permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"{i:03d}.png")
    return folder


def _hook(ema):
    """The diffusers examples' save hook: the UNet via save_pretrained in unet/ (and the EMA in unet_ema/)."""

    def save_model_hook(models, weights, output_dir):
        if ema is not None:
            ema.save_pretrained(str(Path(output_dir) / "unet_ema"))
        for model in models:
            model.save_pretrained(str(Path(output_dir) / "unet"))
            weights.pop()

    return save_model_hook


def train_run(out: Path, save_steps=(2, 4, 6), *, hook: bool = True, use_ema: bool = False, second_model: bool = False,
              pipeline: bool = False, seed: int = 0) -> dict[int, dict[str, torch.Tensor]]:
    """Train the tiny UNet with DDPMScheduler's ε-loss, ``save_state`` to ``out/checkpoint-N`` at ``save_steps``;
    return the UNet's weights at each saved step (cloned)."""
    from accelerate import Accelerator
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
    from diffusers.training_utils import EMAModel

    accelerator = Accelerator(cpu=True, project_dir=str(out))
    unet = tiny_unet(seed)
    ema = EMAModel(unet.parameters(), model_cls=UNet2DModel, model_config=unet.config) if use_ema else None
    if hook:
        accelerator.register_save_state_pre_hook(_hook(ema))
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-3)
    lr = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    extra = [torch.nn.Linear(2, 2)] if second_model else []
    unet, opt, lr, *extra = accelerator.prepare(unet, opt, lr, *extra)
    noise_scheduler = DDPMScheduler(num_train_timesteps=1000)
    data, gen, saved = synthetic_images(32, seed), torch.Generator().manual_seed(seed), {}
    for step in range(1, max(save_steps) + 1):
        x0 = data[torch.randint(0, len(data), (8,), generator=gen)]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, 1000, (8,), generator=gen)
        loss = torch.nn.functional.mse_loss(unet(noise_scheduler.add_noise(x0, noise, t), t).sample, noise)
        accelerator.backward(loss)
        opt.step(), lr.step(), opt.zero_grad()
        if ema is not None:
            ema.step(unet.parameters())
        if step in save_steps:
            accelerator.save_state(str(out / f"checkpoint-{step}"))
            saved[step] = {k: v.detach().clone() for k, v in accelerator.unwrap_model(unet).state_dict().items()}
    if pipeline:
        DDPMPipeline(unet=accelerator.unwrap_model(unet), scheduler=noise_scheduler).save_pretrained(str(out))
    return saved
