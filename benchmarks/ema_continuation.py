"""Benchmark: how exactly an online EMA at a window's end is continued from its window-start snapshot and the window's
checkpoints (the anchored search's "continued" initial individuals), for a recorded run with interval I.

With I = 1 the continuation is the EMA update itself (exact to float rounding); with I > 1 the I − 1 iterates between
checkpoints are replaced by the checkpoint that ends their interval. For every online EMA with a start snapshot it
prints the relative error ‖ê − e‖ / ‖e − θ_end‖ (against how far the EMA is from the raw weights) and ‖ê − e‖ / ‖e‖.

Run:  python benchmarks/ema_continuation.py runs/demo/dm/windows/3200 [more windows …]   (seconds)
The last line printed is one JSON object: {window: {ema: {"rel_to_raw": …, "rel": …}}, "max_rel_to_raw": …}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from lcsc.checkpoints import CheckpointStack, resolve_anchors
from lcsc.errors import LCSCError
from lcsc.search.runner import checkpoint_interval
from lcsc.search.space import ema_continuation


def _errors(window: Path) -> dict[str, dict[str, float]]:
    stack = CheckpointStack.open(window, progress=False, cache=False)
    interval = checkpoint_interval(stack.steps)
    out = {}
    names = [p.name for p in (window.parent.parent / "ema").iterdir()]
    for ema in sorted(names, key=lambda n: (len(n), n)):  # hl-1, hl-2, …, hl-1280
        try:
            (start, _), = resolve_anchors([f"ema-start:{ema}"], window, stack)
            (end, end_state), = resolve_anchors([f"ema:{ema}"], window, stack)
        except LCSCError:
            continue  # no start snapshot (recorded before window starts were saved)
        a, a0 = ema_continuation(stack.K, float(start.ema_rate), interval)
        with_start = stack.with_anchors(resolve_anchors([f"ema-start:{ema}"], window, stack))
        coeffs = torch.tensor(list(a) + [a0], dtype=torch.float64)
        from lcsc.merge import merge

        approx = merge(with_start, coeffs.numpy(), as_vector=True).double()
        exact = stack.flatten(end_state).double()
        raw = stack.matrix[-1].double()
        err = float((approx - exact).norm())
        out[ema] = {"rel_to_raw": err / float((exact - raw).norm()), "rel": err / float(exact.norm()),
                    "interval": interval}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("windows", nargs="+", type=Path)
    args = p.parse_args(argv)
    res: dict = {}
    for w in args.windows:
        if not (w.parent.parent / "ema").is_dir():
            print(f"ema_continuation: {w}: no ema/ folder two levels up; expected RUN/windows/END", file=sys.stderr)
            return 2
        try:
            res[str(w)] = _errors(w)
        except LCSCError as exc:
            print(f"ema_continuation: {exc}", file=sys.stderr)
            return 2
        for ema, e in res[str(w)].items():
            print(f"{w} {ema:>8}: ‖ê − e‖/‖e − θ_end‖ = {e['rel_to_raw']:.2e}, ‖ê − e‖/‖e‖ = {e['rel']:.2e} "
                  f"(interval {e['interval']})")
    res["max_rel_to_raw"] = max((e["rel_to_raw"] for w in args.windows for e in res[str(w)].values()), default=None)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
