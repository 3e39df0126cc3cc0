"""``lcsc search RUN --model-config … --reference …`` on a diffusers training run: FID end to end, clear refusals."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lcsc.cli.diffusers_options import uses_diffusers
from lcsc.cli.main import build_parser, main
from lcsc.errors import ConfigError, DataError
from lcsc.metrics.frechet import GaussianStats
from lcsc.metrics.reference_source import load_reference
from lcsc.metrics.spaces import feature_space
from lcsc.objectives.diffusers import diffusers_objective
from tests.diffusers_run import TINY_UNET, synthetic_images, train_run, write_image_folder
from tests.output import problem_lines

pytestmark = pytest.mark.usefixtures("one_thread")
HELD_OUT_SEED = 1_000_003  # noise seed 0's held-out seed
SAMPLES = 4  # images per evaluation: each goes through Inception at 299×299, the bulk of these tests' time


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("diffusers-search")
    train_run(root / "run", (3, 6, 9, 12), pipeline=True)
    return root / "run", write_image_folder(root / "reference", synthetic_images(8, seed=5))


def _search(run: Path, ref, out: Path, *extra: str) -> int:
    return main(["search", str(run), "--model-config", str(run), "--reference", str(ref), "--scheduler", "ddim",
                 "--nfe", "2", "--samples", str(SAMPLES), "--evals", "2", "--half-lives", "3,9",
                 "-o", str(out), *extra])


@pytest.fixture(scope="module")
def cold_fid_search(run, tmp_path_factory) -> dict:
    """One FID search on a cold reference cache (a cache folder of its own, the in-process memo emptied), shared by
    the end-to-end test and the stage-lines test (a search costs seconds of Inception): its exit code, output and
    cache folders, stdout and stderr."""
    import lcsc.metrics.reference_source as source

    run_dir, ref = run
    root = tmp_path_factory.mktemp("cold-fid-search")
    stdout, stderr, threads, memo = io.StringIO(), io.StringIO(), torch.get_num_threads(), {}
    torch.set_num_threads(1)  # as one_thread, which a module fixture cannot use
    try:
        with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout), \
                contextlib.redirect_stderr(stderr):
            mp.setenv("LCSC_CACHE_DIR", str(root / "cache"))
            mp.setattr(source, "_MEMO", memo)
            code = _search(run_dir, ref, root / "out", "--objective", "fid")
    finally:
        torch.set_num_threads(threads)
    source._MEMO.update(memo)  # what it loaded stays loaded in this process, as after any search here
    return {"code": code, "out": root / "out", "cache": root / "cache", "stdout": stdout.getvalue(),
            "stderr": stderr.getvalue()}


def _ddim_images(unet_dir: Path, n: int, seed: int) -> torch.Tensor:
    """Samples straight from diffusers (its DDIM loop on the saved UNet), on the objective's noise draw."""
    from diffusers import DDIMScheduler, UNet2DModel

    unet = UNet2DModel.from_pretrained(str(unet_dir)).eval()
    sched = DDIMScheduler(timestep_spacing="trailing", clip_sample=False, set_alpha_to_one=True)
    sched.set_timesteps(2)
    x = torch.randn((n, 3, 16, 16), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for t in sched.timesteps:
            x = sched.step(unet(x, t).sample, t, x).prev_sample
    return x.clamp(-1, 1)


def test_fid_search_end_to_end_and_held_out_report(run, cold_fid_search) -> None:
    run_dir, ref = run
    assert cold_fid_search["code"] == 0, cold_fid_search["stderr"][-2000:]
    out, searched = cold_fid_search["stdout"], cold_fid_search["out"]
    assert "held-out FD_inception (searched)" in out
    coeffs = json.loads((searched / "best_coefficients.json").read_text())
    assert coeffs["steps"] == [3, 6, 9, 12] and abs(sum(coeffs["coefficients"]) - 1) < 1e-6
    held = json.loads((searched / "held_out.json").read_text())
    assert held["seed"] == HELD_OUT_SEED and list(held["spaces"]) == ["inception"]
    last = held["spaces"]["inception"]["scores"]["last checkpoint (step 12)"]
    # the same number from diffusers' own sampler on the UNet saved at step 12 (the stack's last row)
    features = feature_space("inception")
    fake = GaussianStats.from_features(features(_ddim_images(run_dir / "checkpoint-12" / "unet", SAMPLES,
                                                              HELD_OUT_SEED)))
    expected = load_reference(ref, features, resolution=16).frechet.distance(fake)
    assert last == pytest.approx(expected, rel=2e-3)
    args = argparse.Namespace(resume=searched, model_config=None, reference=None)
    assert uses_diffusers(args) and args.model_config == run_dir and args.reference == str(ref)  # for --resume


def test_statistics_npz_reference_scores_like_the_image_folder(run, tmp_path) -> None:
    run_dir, ref = run
    features = feature_space("inception")
    stats = load_reference(ref, features, resolution=16).stats
    npz = tmp_path / "fid_stats.npz"
    np.savez(npz, mu=stats.mu, sigma=stats.sigma)
    kw = dict(model_config=run_dir / "unet" / "config.json", num_samples=6, nfe=2, solver="ddim")
    from_folder = diffusers_objective(run_dir, "fid", reference=ref, **kw)
    from_stats = diffusers_objective(run_dir, "fid", reference=npz, **kw, model=from_folder.model)
    assert np.array_equal(from_stats.reference.stats.mu, from_folder.reference.stats.mu)
    assert np.array_equal(from_stats.reference.stats.sigma, from_folder.reference.stats.sigma)
    assert from_stats.name == "fid" and from_stats.features.name == "inception"
    kid = diffusers_objective(run_dir, "kid", reference=ref, **kw, model=from_folder.model)
    assert kid.name == "kid_inception" and kid.reference.features.shape == (8, 2048)
    with pytest.raises(ConfigError, match="torch.vmap cannot batch"):
        diffusers_objective(run_dir, "fid", reference=ref, batched=True, **kw)
    with pytest.raises(ConfigError, match="KID needs reference features"):
        diffusers_objective(run_dir, "kid", reference=npz, **kw, model=from_folder.model)
    np.savez(tmp_path / "wrong.npz", mu=np.zeros(4), sigma=np.eye(4))
    with pytest.raises(DataError, match="holds 4-d statistics but inception features are 2048-d"):
        diffusers_objective(run_dir, "fid", reference=tmp_path / "wrong.npz", **kw, model=from_folder.model)


def test_mismatched_config_is_one_line_naming_file_and_key(run, tmp_path, capsys) -> None:
    run_dir, ref = run
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"_class_name": "UNet2DModel", **TINY_UNET, "block_out_channels": [16, 16]}))
    code = main(["search", str(run_dir), "--model-config", str(config), "--reference", str(ref), "-o",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(problem_lines(err)) == 1 and not (tmp_path / "out").exists()
    assert f"{config} does not match the checkpoints: tensor 'conv_in.weight' has shape (16, 3, 3, 3)" in err


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing", "does not exist; expected a folder of images, an .npz of images, or an .npz of FID"),
    (lambda d: _text_file(d / "ref.txt"), "is a file but not an .npz archive"),
    (lambda d: _text_file(d / "bad.npz"), "bad.npz: not an .npz archive"),
])
def test_bad_reference_is_a_clear_error(run, tmp_path, capsys, make, message) -> None:
    code = _search(run[0], make(tmp_path), tmp_path / "out", "--objective", "fid")
    err = capsys.readouterr().err
    assert code == 2 and message in err and not (tmp_path / "out").exists()


def test_option_errors(run, tmp_path, capsys) -> None:
    run_dir, ref = run
    assert main(["search", str(run_dir), "--model-config", str(run_dir), "-o", str(tmp_path / "o")]) == 2
    assert "pass --reference IMAGES_DIR or STATS.npz" in capsys.readouterr().err
    assert main(["search", str(run_dir), "--reference", str(ref), "-o", str(tmp_path / "o")]) == 2
    assert "only for diffusers runs with --model-config" in capsys.readouterr().err
    assert _search(run_dir, ref, tmp_path / "o", "--objective", "fd-digits") == 2
    assert "digits features take 1×8×8 images" in capsys.readouterr().err
    parser = build_parser()
    assert parser.parse_args(["search", "r", "--scheduler", "ddim"]).solver == "ddim"
    assert parser.parse_args(["search", "r", "--solver", "ddim"]).solver == "ddim"
    assert parser.parse_args(["search", "r"]).solver == "dpm-solver"


def _text_file(path: Path) -> Path:
    path.write_text("not images")
    return path


def test_cold_reference_cache_shows_every_stage_before_the_first_candidate(run, cold_fid_search, tmp_path,
                                                                            monkeypatch, capsys) -> None:
    """Nothing long is silent: with a cold reference cache the Inception pass, the model build and the stack build
    each print a stage line before the search's bar starts; the estimate comes after the initial population, counts
    the held-out report and names the setup stages; a second search says the cached reference is reused."""
    import lcsc.metrics.reference_source as source

    run_dir, ref = run
    assert cold_fid_search["code"] == 0, cold_fid_search["stderr"][-2000:]
    err = cold_fid_search["stderr"]  # the search on a cold cache
    bar = err.index("LCSC search")
    for line in ("[lcsc] reading reference images:", "[lcsc] reference features (inception): 8 images, one pass",
                 "[lcsc] model: UNet2DModel from", "[lcsc] checkpoint stack"):
        assert 0 <= err.find(line) < bar, (line, err)
    estimate = next(x for x in err.splitlines() if "estimate after the initial population" in x)
    assert err.index(estimate) > bar and "3 held-out/revalidation evaluations" in estimate
    assert "setup took" in estimate and "reference features (inception)" in estimate
    assert "[lcsc] held-out report" in err
    monkeypatch.setenv("LCSC_CACHE_DIR", str(cold_fid_search["cache"]))  # the cache that search filled
    monkeypatch.setattr(source, "_MEMO", {})
    assert _search(run_dir, ref, tmp_path / "again", "--objective", "fid") == 0
    err = capsys.readouterr().err
    assert "[lcsc] reference features (inception, 8 images): cached, reused" in err
    assert "checkpoint stack (4 checkpoints): cache reused" in err and "one pass" not in err


def test_gradient_fid_search_on_a_diffusers_run(run, tmp_path, capsys) -> None:
    """--optimizer grad through a diffusers UNet2DModel (functional_call, checkpointed DDIM steps) and Inception with
    straight-through 8-bit rounding: the gradient reaches the coefficients, Σa = 1, the pipeline is exported."""
    run_dir, ref = run
    out = tmp_path / "grad"
    assert _search(run_dir, ref, out, "--objective", "fid", "--optimizer", "grad", "--steps", "2", "--batch-size",
                   "3", "--lr", "0.05") == 0
    steps = [json.loads(line) for line in (out / "gradient.jsonl").read_text().splitlines()[1:]]
    steps = [s for s in steps if s["type"] == "step"]
    assert len(steps) == 2 and all(s["grad_norm"] > 0 for s in steps)
    assert all(np.asarray(s["a"]).sum() == 1.0 for s in steps)
    assert (out / "pipeline").is_dir() and "Gradient search" in (out / "provenance.md").read_text()
    assert "held-out FD_inception (searched)" in capsys.readouterr().out
