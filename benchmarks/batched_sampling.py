"""Benchmark: sampling a whole generation at once (vmap over stacked weights) vs one candidate at a time.

The search scores a generation of G candidates on the same sampling inputs. ``generate_many`` stacks the G weight
sets and runs one ``torch.func.vmap``-ed computation; the default loops over ``generate``. This measures both side by
side (alternating, median of --repeats) for the demo's DM (DPM-Solver, 10 NFE) and CM (1 and 3 NFE), and checks the
images agree. ``--batched-sampling`` (lcsc search) stays off by default unless this shows a gain on your hardware.

Run:  python benchmarks/batched_sampling.py [--device cuda] [--samples 1000] [--generation 8] [--repeats 3]
The last line printed is one JSON object: {"vmap_speedup": {"dm_nfe10": r, "cm_nfe1": r, "cm_nfe3": r}, ...}
(r = loop time ÷ vmap time; > 1 means vmap is faster).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from lcsc.generate import draw_inputs, generate, generate_many
from lcsc.models import ModelConfig, build_model


def _states(model, count: int):
    gen = torch.Generator().manual_seed(0)
    return [{k: v + 0.01 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
             for k, v in model.state_dict().items()} for _ in range(count)]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@torch.no_grad()
def measure(kind: str, nfe: int, a: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind=kind, channels=32)).to(a.device).eval()
    states = _states(model, a.generation)
    inputs = draw_inputs(model.config, a.samples, torch.Generator().manual_seed(1), nfe=nfe)
    loop_t, vmap_t, diff = [], [], 0.0
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        looped = []
        for s in states:
            model.load_state_dict(s)
            looped.append(generate(model, a.samples, None, nfe=nfe, device=a.device, inputs=inputs, batch_size=500))
        _sync(a.device)
        loop_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        many = generate_many(model, states, inputs, nfe=nfe, device=a.device, batch_size=500 * len(states))
        _sync(a.device)
        vmap_t.append(time.perf_counter() - t0)
        diff = max(diff, max(float((x - y).abs().max()) for x, y in zip(looped, many)))
    loop_s, vmap_s = sorted(loop_t)[len(loop_t) // 2], sorted(vmap_t)[len(vmap_t) // 2]
    return {"loop_s": round(loop_s, 3), "vmap_s": round(vmap_s, 3), "speedup": round(loop_s / vmap_s, 3),
            "max_abs_diff": diff}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--generation", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    rows = {f"{kind}_nfe{nfe}": measure(kind, nfe, a) for kind, nfe in (("dm", 10), ("cm", 1), ("cm", 3))}
    for name, r in rows.items():
        print(f"{name}: loop {r['loop_s']:.2f} s, vmap {r['vmap_s']:.2f} s → {r['speedup']:.2f}× "
              f"(max |Δimage| {r['max_abs_diff']:.1e})")
    print(json.dumps({"vmap_speedup": {k: r["speedup"] for k, r in rows.items()}, "device": a.device,
                      "threads": torch.get_num_threads(), "generation": a.generation, "samples": a.samples,
                      "rows": rows}))


if __name__ == "__main__":
    main()
