"""``scripts/analyze_demo.sh`` on the quick demo's folder (every ``lcsc analyze`` at tiny sizes), checked by
tests/demo/test_demo.py: a renamed search folder or a changed report cannot break the analyses silently again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "analyze_demo.sh"


__all__ = ["check_analyses"]


def check_analyses(run: Path, tmp_path: Path) -> None:
    """Run the script on ``run`` with ANALYZE_SMALL=1 and check every analysis wrote its JSON, the exports' window
    parts and anchor weights sum to 1, and the kinds are read right."""
    env = os.environ | {"ANALYZE_SMALL": "1", "SCRATCH": str(tmp_path / "scratch"), "JOBS": "1",
                        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", str(SCRIPT), str(run), str(tmp_path / "out")], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    out = tmp_path / "out"
    for name in ("coefficients", "coefficients-grad", "landscape", "ema-grid-dm", "ema-grid-cm", "ablation-search",
                 "coefficients-seeds", "consistency", "loss-landscape", "loss-landscape-clts", "hessian"):
        assert any((out / name).glob("*.json")), name
    coeffs = json.loads((out / "coefficients" / "coefficients.json").read_text())
    grad = json.loads((out / "coefficients-grad" / "coefficients.json").read_text())
    for data in (coeffs, grad):  # every search anchored: the window part and the anchors' weights, summing to 1
        for s in data["searches"]:
            total = sum(s["coefficients"]) + sum(s["anchor_weights"])
            assert s["anchors"] and len(s["anchors"]) == len(s["anchor_weights"]) and abs(total - 1.0) < 1e-9, s["name"]
    assert {s["kind"] for s in grad["searches"]} == {"gradient-anchored"}
    assert {s["kind"] for s in coeffs["searches"]} == {"alg1-anchored"}
