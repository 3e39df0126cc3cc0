"""``lcsc eval --model-config … --reference …`` on a diffusers run: checkpoint-N/ and unet/ folders, run folders and
merges, scored by the search's held-out FID objective (the same noise, so the same numbers)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from lcsc.checkpoints import load_checkpoint
from lcsc.cli.main import main
from lcsc.errors import ConfigError
from lcsc.metrics.reference_source import load_reference
from lcsc.metrics.spaces import feature_space
from lcsc.objectives.base import HELD_OUT_SEED_OFFSET
from lcsc.objectives.diffusers import diffusers_held_out, diffusers_model
from lcsc.objectives.diffusers_eval import diffusers_targets, read_target
from tests.diffusers_run import synthetic_images, train_run, write_image_folder

pytestmark = pytest.mark.usefixtures("one_thread")
SAMPLES, NFE = 4, 2  # each sample goes through Inception at 299×299, the bulk of these tests' time


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("diffusers-eval")
    train_run(root / "run", (3, 6, 9), pipeline=True)
    return root / "run", write_image_folder(root / "reference", synthetic_images(8, seed=5))


def _eval(run_dir: Path, ref, out: Path, *targets, extra=()) -> int:
    return main(["eval", *map(str, targets), "--model-config", str(run_dir), "--reference", str(ref),
                 "--scheduler", "ddim", "--nfe", str(NFE), "--samples", str(SAMPLES), "-o", str(out), *extra])


def _merge_of(run_dir: Path, step: int, out: Path) -> Path:
    """``lcsc merge`` of the run with all weight on ``step``: the merge equals that checkpoint."""
    coeffs = out.with_suffix(".json")
    coeffs.write_text(json.dumps({"steps": [3, 6, 9], "coefficients": [float(s == step) for s in (3, 6, 9)]}))
    assert main(["merge", str(run_dir), "--coeffs", str(coeffs), "--no-cache", "-o", str(out)]) == 0
    return out


def test_checkpoint_unet_folder_and_merge_score_alike_on_the_held_out_objective(run, tmp_path, capsys,
                                                                                  monkeypatch) -> None:
    run_dir, ref = run
    merged = _merge_of(run_dir, 6, tmp_path / "merged.safetensors")
    unet6 = load_checkpoint(run_dir / "checkpoint-6").tensors
    assert load_file(str(merged)).keys() == unet6.keys()  # the UNet's own state-dict keys
    out = tmp_path / "eval.json"
    assert _eval(run_dir, ref, out, run_dir / "checkpoint-6", run_dir / "checkpoint-6" / "unet", merged,
                 extra=["--metrics", "fd,kid,pr"]) == 0
    printed = capsys.readouterr().out
    assert f"features inception, held-out noise (seed {HELD_OUT_SEED_OFFSET})" in printed
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert [r["step"] for r in rows] == [6, 6, 9]  # a merge carries the stack's last step
    assert rows[0]["fd"] == rows[1]["fd"] == rows[2]["fd"]  # the same weights as a folder, a unet/ folder, a merge
    assert rows[0]["kid_x1e3"] == rows[2]["kid_x1e3"] and rows[0]["kid_features"] == "inception"
    assert rows[0]["precision"] == rows[2]["precision"] and 0 <= rows[0]["recall"] <= 1
    held = diffusers_held_out(run_dir, "fid", model_config=run_dir, reference=ref, num_samples=SAMPLES, nfe=NFE,
                              solver="ddim")
    objective = held["inception"][0]  # what the search's held-out report scores with
    assert rows[0]["fd"] == pytest.approx(objective.score(unet6), rel=1e-9)
    assert data["noise_sha"] == objective.noise_fingerprint() and data["noise_seed"] == objective.noise_seed
    grids = sorted(p.name for p in (tmp_path / "eval-samples").iterdir())
    assert grids == sorted(["run-checkpoint-6.png", "checkpoint-6-unet.png", f"{tmp_path.name}-merged.png"])
    config = json.loads((tmp_path / "eval.config.json").read_text())["options"]
    assert config["model_config"] == str(run_dir) and config["solver"] == "ddim"
    # --reference as FID statistics (mu, sigma) of the same images: the same FD
    npz = _stats_file(ref, tmp_path / "stats.npz")
    monkeypatch.chdir(tmp_path / "eval-samples")  # a checkpoint-N folder is one checkpoint: ./eval.json, not into it
    assert main(["eval", str(run_dir / "checkpoint-6"), "--model-config", str(run_dir), "--reference", str(npz),
                 "--scheduler", "ddim", "--nfe", str(NFE), "--samples", str(SAMPLES), "--metrics", "fd"]) == 0
    assert not (run_dir / "checkpoint-6" / "eval.json").exists()
    from_stats = json.loads((tmp_path / "eval-samples" / "eval.json").read_text())["rows"][0]["fd"]
    assert from_stats == pytest.approx(rows[0]["fd"], rel=1e-9)


def test_run_folder_is_its_checkpoints_by_step(run) -> None:
    run_dir, _ = run
    assert diffusers_targets([run_dir, run_dir / "checkpoint-6" / "unet"]) == [
        run_dir / "checkpoint-3", run_dir / "checkpoint-6", run_dir / "checkpoint-9", run_dir / "checkpoint-6" / "unet"]


def test_eval_of_a_search_merge_reproduces_its_reports(run, tmp_path, capsys) -> None:
    """Held-out noise: the number in held_out.json; --search-noise: the search's own best score."""
    run_dir, ref = run
    out = tmp_path / "search"
    assert main(["search", str(run_dir), "--model-config", str(run_dir), "--reference", str(ref), "--objective",
                 "fid", "--scheduler", "ddim", "--nfe", str(NFE), "--samples", str(SAMPLES), "--evals", "2", "--half-lives",
                 "3", "--noise-seed", "7", "-o", str(out)]) == 0
    report = json.loads((out / "held_out.json").read_text())
    best = json.loads((out / "provenance.json").read_text())["best"]["score"]
    common = [str(out / "merged.safetensors"), "--model-config", str(run_dir / "unet"), "--reference", str(ref),
              "--scheduler", "ddim", "--nfe", str(NFE), "--samples", str(SAMPLES), "--seed", "7", "--metrics", "fd"]
    assert main(["eval", *common, "-o", str(tmp_path / "held.json")]) == 0
    assert main(["eval", *common, "--search-noise", "-o", str(tmp_path / "search.json")]) == 0
    assert "scoring on the search noise (seed 7)" in capsys.readouterr().err
    held, search = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("held", "search"))
    assert report["seed"] == held["noise_seed"] == 7 + HELD_OUT_SEED_OFFSET and search["noise_seed"] == 7
    assert held["rows"][0]["fd"] == pytest.approx(report["spaces"]["inception"]["scores"]["best"], rel=1e-9)
    assert search["rows"][0]["fd"] == pytest.approx(best, rel=1e-9)
    assert held["rows"][0]["fd"] != search["rows"][0]["fd"] and held["noise_sha"] != search["noise_sha"]


def test_key_selects_the_runs_prefix_and_merges_are_read_without_it(run, tmp_path) -> None:
    run_dir, _ = run
    unet6 = load_checkpoint(run_dir / "checkpoint-6").tensors
    wrapped = tmp_path / "checkpoint-6" / "model.safetensors"  # a run that saved {"unet.<key>": tensor}
    wrapped.parent.mkdir()
    save_file({f"unet.{k}": v.contiguous() for k, v in unet6.items()}, str(wrapped))
    merged = _merge_of(run_dir, 6, tmp_path / "merged.safetensors")
    model = diffusers_model(run_dir, run_dir / "checkpoint-6")
    for target in (wrapped.parent, merged):
        state, step = read_target(target, model, key="unet")
        assert state.keys() == unet6.keys() and all(torch.equal(state[k], unet6[k]) for k in unet6)
    assert step == 9 and read_target(wrapped.parent, model, key="unet")[1] == 6
    with pytest.raises(ConfigError, match=r"checkpoint-6 has no tensor 'conv_in\.weight' \(missing key"):
        read_target(wrapped.parent, model)


def test_statistics_reference_refuses_kid_and_pr_before_sampling(run, tmp_path, capsys) -> None:
    run_dir, ref = run
    npz = _stats_file(ref, tmp_path / "stats.npz")
    for metrics in ("fd,kid", "pr"):
        assert _eval(run_dir, npz, tmp_path / "a.json", run_dir / "checkpoint-3", extra=["--metrics", metrics]) == 2
        assert "holds only statistics (mu, sigma), so FD only; pass --metrics fd" in _one_error(capsys)


def _stats_file(ref: Path, path: Path) -> Path:
    stats = load_reference(ref, feature_space("inception"), resolution=16).stats
    np.savez(path, mu=stats.mu, sigma=stats.sigma)
    return path


def _one_error(capsys) -> str:
    """The one error line (stage lines, ``[lcsc] …``, may come before it)."""
    lines = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("[lcsc] ")]
    assert len(lines) == 1 and lines[0].startswith("lcsc eval: error: ")
    return lines[0]


def test_bad_input_is_one_line_naming_the_path(run, tmp_path, capsys) -> None:
    run_dir, ref = run
    common = ["--model-config", str(run_dir), "--reference", str(ref)]
    assert main(["eval", str(run_dir / "checkpoint-3"), "--model-config", str(run_dir)]) == 2
    assert "pass --reference IMAGES_DIR or STATS.npz" in _one_error(capsys)
    assert main(["eval", str(run_dir / "checkpoint-3"), "--reference", str(ref)]) == 2
    assert "only for diffusers runs with --model-config" in _one_error(capsys)
    assert main(["eval", str(run_dir / "checkpoint-3"), "-o", str(tmp_path / "e.json")]) == 2
    assert "checkpoints of a diffusers run: pass --model-config CONFIG" in _one_error(capsys)
    weights = run_dir / "checkpoint-3" / "unet" / "diffusion_pytorch_model.safetensors"
    assert main(["eval", str(weights), "-o", str(tmp_path / "e.json")]) == 2
    assert "no training data in its metadata; pass --data (a diffusers run's" in _one_error(capsys)
    assert main(["eval", str(run_dir / "checkpoint-3"), "--key", "unet"]) == 2
    assert "--key unet: only for diffusers runs with --model-config" in _one_error(capsys)
    other = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(other))
    assert main(["eval", str(run_dir / "checkpoint-3"), str(other), *common, "-o", str(tmp_path / "e.json")]) == 2
    err = _one_error(capsys)
    assert f"{other} has no tensor" in err and "missing key" in err and not (tmp_path / "e.json").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["eval", str(empty), *common]) == 2
    assert f"{empty}: no checkpoints found" in _one_error(capsys)
    assert main(["eval", str(run_dir / "checkpoint-3" / "optimizer.bin"), *common]) == 2
    assert "accelerate training state (a pickle), not model weights" in _one_error(capsys)
    assert main(["eval", str(tmp_path / "missing"), *common]) == 2
    assert "missing: no such file or folder" in _one_error(capsys)
