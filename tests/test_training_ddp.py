"""Two-process DDP run (gloo, CPU) of the tiny keyframe experiment: it completes, and each
rank trains on its own share of the one seeded, group-balanced draw sequence."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from keysync.data.samplers import BalancedGroupSampler
from keysync.data.synthetic import write_synthetic_clips
from keysync.models.checkpoints import load_checkpoint
from keysync.models.engine import build_engine

REPO = Path(__file__).resolve().parents[1]
STEPS, VIRTUAL, SEED = 3, 3, 23




def test_two_process_ddp_run(tmp_path):
    filelist = write_synthetic_clips(tmp_path / "data", n_clips=2, num_frames=[180, 190], frame_size=32)
    args = ["experiment=tiny_keyframe", f"data.filelist={filelist}", f"output_dir={tmp_path / 'runs'}",
            "trainer.devices=2", "trainer.strategy=ddp", f"trainer.max_steps={STEPS}", f"seed={SEED}",
            f"data.dataset.virtual_increase={VIRTUAL}", "callbacks.record_sample_ids=true",
            "callbacks.sample_logger.every_n_steps=0", "callbacks.checkpoint.every_n_train_steps=3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run([sys.executable, "-m", "keysync.cli.train", "-q", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    run_dir = tmp_path / "runs" / "tiny_keyframe"
    logs = run_dir / "logs" / "version_0"
    seen = [(logs / f"sample_ids_rank{r}.txt").read_text().split() for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == STEPS
    indices = [[int(s.split(":")[0]) for s in ids] for ids in seen]
    # the expected shares: per epoch, draws[rank::2] of the shared seeded draw (3 per rank per epoch)
    groups = ["other"] * 2 * VIRTUAL
    for rank in (0, 1):
        sampler = BalancedGroupSampler(groups, seed=SEED, rank=rank, num_replicas=2)
        sampler.set_epoch(0)
        assert indices[rank] == list(sampler)
    assert seen[0] != seen[1]
    assert not set(seen[0]) & set(seen[1])  # different samples (windows are drawn per rank, too)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"] == STEPS
    assert load_checkpoint(build_engine("tiny/keysync_keyframe_inference"), ckpt).ok
