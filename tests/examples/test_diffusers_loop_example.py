"""examples/diffusers_loop.py with a few steps: its recorder window and save_state folders open as equal stacks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from lcsc.checkpoints import CheckpointStack
from lcsc.objectives.diffusers import diffusers_model

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "diffusers_loop.py"


def test_example_runs_and_its_outputs_are_searchable(tmp_path, one_thread) -> None:
    spec = importlib.util.spec_from_file_location("diffusers_loop_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--out", str(tmp_path / "run"), "--steps", "8", "--checkpointing-steps", "4",
                       "--batch-size", "8"])
    window = CheckpointStack.open(out / "lcsc" / "windows" / "8", cache=False, progress=False)
    saved = CheckpointStack.open(out, cache=False, progress=False)  # checkpoint-4/, checkpoint-8/ (not the pipeline)
    assert window.steps == [5, 6, 7, 8] and saved.steps == [4, 8]
    a, b = window.checkpoint(3), saved.checkpoint(1)  # step 8 as the recorder and as save_state wrote it
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model = diffusers_model(out, out / "lcsc" / "windows" / "8")  # the pipeline's config fits the checkpoints
    assert (model.config.in_channels, model.config.resolution, model.config.scheduler_source is not None) == (1, 16, True)
    with np.load(out / "reference.npz") as z:
        assert z["images"].shape == (1797, 16, 16) and z["images"].dtype == np.uint8
