"""Benchmark: memory of one gradient-search step through the sampler, NFE 5 vs 20, with and without checkpointing.

The demo's DM (32 channels, DPM-Solver++) and a batch of 256 fresh samples; each configuration runs in its own
process, which reports its peak resident memory (``ru_maxrss``, what the OS saw) and the bytes autograd kept for the
backward pass (saved tensors outside checkpointed regions; deterministic). Checkpointing recomputes each network
call's activations in the backward pass, so what is kept grows with NFE by the solver's image-sized state only.

Run:  python benchmarks/gradient_memory.py            # ~1 min on 2 CPU cores
The last line is one JSON object: peak_rss_mb and saved_mb per configuration, and the growth from NFE 5 to 20.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _one(nfe: int, checkpoint: bool, batch: int) -> dict:
    import torch

    from lcsc.generate import draw_inputs
    from lcsc.generate_grad import generate_differentiable
    from lcsc.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="dm", channels=32))
    state = {k: v.detach().clone().requires_grad_(v.is_floating_point()) for k, v in model.state_dict().items()}
    params, saved = {t.data_ptr() for t in state.values()}, [0]

    def pack(t):
        if t.data_ptr() not in params:
            saved[0] += t.numel() * t.element_size()
        return t

    inputs = draw_inputs(model.config, batch, torch.Generator().manual_seed(0), nfe=nfe, batch_size=batch)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.time()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        x = generate_differentiable(model, state, inputs, nfe=nfe, solver="dpm-solver", checkpoint=checkpoint)
    x.square().mean().backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"nfe": nfe, "checkpoint": checkpoint, "saved_mb": round(saved[0] / 2**20, 1),
            "peak_rss_mb": round(peak / 1024, 1), "rss_growth_mb": round((peak - base) / 1024, 1),
            "seconds": round(time.time() - t0, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        nfe, ck = a.one.split(",")
        print(json.dumps(_one(int(nfe), ck == "1", a.batch)))
        return
    rows = []
    for nfe in (5, 20):
        for ck in (True, False):
            out = subprocess.run([sys.executable, __file__, "--one", f"{nfe},{int(ck)}", "--batch", str(a.batch)],
                                 capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            rows.append(json.loads(out))
            print(f"NFE {nfe:>2} checkpointing {'on ' if ck else 'off'}: kept for backward {rows[-1]['saved_mb']} MB, "
                  f"peak RSS {rows[-1]['peak_rss_mb']} MB (+{rows[-1]['rss_growth_mb']} MB in the step), "
                  f"{rows[-1]['seconds']} s", flush=True)
    by = {(r["nfe"], r["checkpoint"]): r for r in rows}
    line = {"batch": a.batch, "rows": rows,
            "saved_growth_5_to_20_mb": {"checkpoint": round(by[20, True]["saved_mb"] - by[5, True]["saved_mb"], 1),
                                        "plain": round(by[20, False]["saved_mb"] - by[5, False]["saved_mb"], 1)},
            "step_rss_growth_mb": {f"nfe{n}_{'ckpt' if c else 'plain'}": by[n, c]["rss_growth_mb"]
                                   for n in (5, 20) for c in (True, False)}}
    print(json.dumps(line))


if __name__ == "__main__":
    main()
