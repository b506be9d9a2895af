"""Tiny keyframe / interpolation training runs on CPU from synthetic precomputed artefacts.

Each run trains on a fixed set of windows (``fixed_windows_seed``) of 2-3 generated clips;
the loss must fall (mean of the first vs the last 20 steps), the checkpoint must load strictly
into the *inference* engine, and a resumed (or killed and resumed) run must continue the step,
optimizer and scheduler state.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from keysync.cli.train import compose_train_config
from keysync.data.synthetic import write_synthetic_clips
from keysync.models.checkpoints import load_checkpoint, read_state_dict
from keysync.models.engine import build_engine
from keysync.training.runner import run_training

REPO = Path(__file__).resolve().parents[1]




@pytest.fixture(scope="module")
def vae_and_clips(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny VAE (saved as an init checkpoint) and 3 clips whose videos are its decodings of
    the clips' latents, so that the keyframe pixel loss can be fitted like the latent loss."""
    root = tmp_path_factory.mktemp("clips")
    torch.manual_seed(0)
    engine = build_engine("tiny/keysync_keyframe").eval()
    vae = root / "vae.safetensors"
    save_file({k: v for k, v in engine.state_dict().items() if k.startswith("first_stage_model.")}, str(vae))
    filelist = write_synthetic_clips(root / "data", n_clips=3, num_frames=[180, 200, 100], frame_size=32,
                                     pixels_from_latents=engine.decode_first_stage, crf=10)
    return vae, filelist


@pytest.fixture(scope="module")
def clips(vae_and_clips) -> Path:
    return vae_and_clips[1]


def _overrides(experiment: str, filelist: Path, out: Path, *extra: str) -> list[str]:
    return [f"experiment={experiment}", f"data.filelist={filelist}", f"output_dir={out}",
            "data.dataset.fixed_windows_seed=0", *extra]


def _train(experiment: str, filelist: Path, out: Path, *extra: str):
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    return run_training(compose_train_config(_overrides(experiment, filelist, out, *extra)))


def _losses(run) -> tuple[list[int], np.ndarray]:
    rows = [r for r in csv.DictReader(open(Path(run.trainer.logger.log_dir) / "metrics.csv")) if r.get("train/loss")]
    return [int(r["step"]) for r in rows], np.array([float(r["train/loss"]) for r in rows])


def _assert_loss_falls(losses: np.ndarray) -> None:
    first, last = losses[:20].mean(), losses[-20:].mean()
    assert last < 0.9 * first, f"loss did not fall: first 20 steps {first:.4f}, last 20 {last:.4f}"


def _assert_loads_into_inference_engine(ckpt: Path, config: str, module) -> None:
    engine = build_engine(config)
    report = load_checkpoint(engine, ckpt, strict=True)
    assert report.ok and not report.unused_known
    assert set(read_state_dict(ckpt)) == set(engine.state_dict())  # exactly the published key set
    trained = module.state_dict()
    for key, value in engine.state_dict().items():
        assert torch.equal(value, trained[key].cpu()), key


def _optimizer_step(ckpt: Path) -> int:
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    return int(next(iter(state["optimizer_states"][0]["state"].values()))["step"])


def test_tiny_keyframe_trains_checkpoints_logs_and_resumes(vae_and_clips, tmp_path):
    vae, clips = vae_and_clips
    run = _train("tiny_keyframe", clips, tmp_path, "trainer.max_steps=50", "callbacks.checkpoint.every_n_train_steps=25",
                 "callbacks.sample_logger.every_n_steps=25", f"model.init_checkpoint={vae}")
    steps, losses = _losses(run)
    assert steps == list(range(50)) and run.trainer.global_step == 50
    _assert_loss_falls(losses)  # latent L2 + pixel L2 through the (init-checkpoint) VAE decoder
    ckpt = run.run_dir / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and (run.run_dir / "checkpoints" / "step0000050.ckpt").is_file()
    _assert_loads_into_inference_engine(ckpt, "tiny/keysync_keyframe_inference", run.module)
    assert torch.equal(read_state_dict(ckpt)["first_stage_model.decoder.conv_in.weight"],
                       read_state_dict(vae)["first_stage_model.decoder.conv_in.weight"])  # frozen VAE from init
    samples = Path(run.trainer.logger.log_dir) / "samples"
    assert {p.name for p in samples.iterdir()} >= {"step_0000025.png", "step_0000050.png", "step_0000050.mp4"}

    resumed = _train("tiny_keyframe", clips, tmp_path, "trainer.max_steps=53", "resume=last",
                     "callbacks.sample_logger.every_n_steps=0", f"model.init_checkpoint={vae}")
    steps2, _ = _losses(resumed)
    assert resumed.resumed_from == ckpt and steps2 == [50, 51, 52] and resumed.trainer.global_step == 53
    assert _optimizer_step(ckpt) == 53  # AdamW state continued (a fresh optimizer would be at 3)


def test_tiny_interpolation_trains_and_loads(clips, tmp_path):
    run = _train("tiny_interpolation", clips, tmp_path, "trainer.max_steps=60", "callbacks.sample_logger.every_n_steps=0")
    _, losses = _losses(run)
    assert len(losses) == 60
    _assert_loss_falls(losses)
    ckpt = run.run_dir / "checkpoints" / "last.ckpt"
    _assert_loads_into_inference_engine(ckpt, "tiny/keysync_interpolation_inference", run.module)
    assert read_state_dict(ckpt)["model.learned_mask"].abs().sum() > 0  # trained from its zero init


def test_killed_run_resumes_from_last_checkpoint(clips, tmp_path):
    checkpointing = "model.overrides=['network.diffusion_model.use_checkpoint=true']"  # gradient checkpointing on
    args = _overrides("tiny_interpolation", clips, tmp_path, "trainer.max_steps=1000", checkpointing,
                      "callbacks.checkpoint.every_n_train_steps=2", "callbacks.sample_logger.every_n_steps=0")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "keysync.cli.train", "-q", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    last = tmp_path / "tiny_interpolation" / "checkpoints" / "last.ckpt"
    try:
        deadline = time.monotonic() + 120
        while not last.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # killed mid-run, no clean shutdown
        proc.wait()
    killed_at = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert killed_at >= 2 and killed_at % 2 == 0

    resumed = _train("tiny_interpolation", clips, tmp_path, f"trainer.max_steps={killed_at + 2}", "resume=last",
                     "callbacks.sample_logger.every_n_steps=0", checkpointing)
    assert resumed.module.model.diffusion_model.use_checkpoint
    steps, _ = _losses(resumed)
    assert steps == [killed_at, killed_at + 1] and resumed.trainer.global_step == killed_at + 2
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["global_step"] == killed_at + 2 and _optimizer_step(last) == killed_at + 2
    assert state["lr_schedulers"][0]["last_epoch"] == killed_at + 2  # warm-up position restored
