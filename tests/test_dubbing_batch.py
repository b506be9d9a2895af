"""`keysync dub` batches: pairing, a corrupt item, skip/overwrite, a 2-process split, missing weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keysync.cli.main import main as cli_main
from keysync.media import read_video
from keysync.pipelines.batch import SUMMARY_NAME, jobs_from_manifest, pair_jobs
from keysync.pipelines.tiny import TINY_RESOLUTION, write_tiny_dubbing_weights
from test_dubbing import face_clip, speech


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch")
    w = write_tiny_dubbing_weights(d / "weights")
    videos, audios = d / "videos", d / "audios"
    videos.mkdir(), audios.mkdir()
    face_clip(videos / "a.mp4", 20, 25, (160, 200), 150, seed=1)
    face_clip(videos / "b.mp4", 22, 25, (180, 180), 150, seed=2)
    good = (videos / "a.mp4").read_bytes()
    (videos / "c.mp4").write_bytes(good[: len(good) // 3])  # truncated: corrupt
    for name, text in (("a", "one"), ("b", "two"), ("c", "three")):
        speech(audios / f"{name}.wav", text, 0.9)
    args = ["--keyframes_ckpt", w["keyframe"], "--interpolation_ckpt", w["interpolation"], "--vae", w["vae"],
            "--hubert", w["hubert"], "--wavlm", w["wavlm"], "--keyframe_config", "tiny/keysync_keyframe_inference",
            "--interpolation_config", "tiny/keysync_interpolation_inference", "--resolution", str(TINY_RESOLUTION),
            "--device", "cpu"]
    return d, [str(a) for a in args]


def test_pairing_rules(tmp_path):
    for n in ("x.mp4", "y.mp4"):
        (tmp_path / n).write_bytes(b"0")
    (tmp_path / "s.wav").write_bytes(b"0")
    with pytest.raises(ValueError, match="2 videos but 1 audio"):
        pair_jobs(tmp_path, tmp_path / "s.wav", tmp_path / "out")
    jobs = pair_jobs([tmp_path / "x.mp4", tmp_path / "y.mp4"], [tmp_path / "s.wav"] * 2, tmp_path / "out")
    assert [j.output.name for j in jobs] == ["x_s.mp4", "y_s.mp4"]
    (tmp_path / "m.csv").write_text("video,audio\nx.mp4,s.wav\nx.mp4,s.wav\n")
    with pytest.raises(ValueError, match="two pairs would write"):
        jobs_from_manifest(tmp_path / "m.csv", tmp_path / "out")
    (tmp_path / "m.csv").write_text("clip,sound\nx.mp4,s.wav\n")
    with pytest.raises(ValueError, match="'video' and 'audio'"):
        jobs_from_manifest(tmp_path / "m.csv", tmp_path / "out")


def test_corrupt_video_in_a_batch_of_three(setup, capsys):
    d, weights = setup
    out = d / "out_one"
    rc = cli_main(["-q", "dub", "--filelist", str(d / "videos"), "--file_list_audio", str(d / "audios"),
                   "--output_folder", str(out), *weights])
    assert rc == 1
    assert sorted(p.name for p in out.iterdir()) == ["a_a.mp4", "b_b.mp4", SUMMARY_NAME]  # no partial file
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert sorted(Path(p).name for p in summary["done"]) == ["a_a.mp4", "b_b.mp4"]
    assert list(map(lambda p: Path(p).name, summary["failed"])) == ["c_c.mp4"]
    assert "c.mp4" in next(iter(summary["failed"].values()))
    assert "1 failed" in capsys.readouterr().out
    # a second run skips what exists and only retries the failure
    before = (out / "a_a.mp4").stat().st_mtime_ns
    rc = cli_main(["-q", "dub", "--filelist", str(d / "videos"), "--file_list_audio", str(d / "audios"),
                   "--output_folder", str(out), *weights])
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert rc == 1 and len(summary["skipped"]) == 2 and (out / "a_a.mp4").stat().st_mtime_ns == before


def test_two_processes_give_the_same_outputs(setup):
    d, weights = setup
    manifest = d / "pairs.csv"
    manifest.write_text("video,audio\nvideos/a.mp4,audios/a.wav\nvideos/b.mp4,audios/b.wav\n")
    single, split = d / "single", d / "split"
    # same thread count in both runs: float sums (and so pixels) depend on how work is split over threads
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    dub = ["-m", "keysync.cli.main", "-q", "dub", "--manifest", str(manifest), *weights, "--output_folder"]
    one = subprocess.run([sys.executable, *dub, str(single)], env=env, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           *dub, str(split)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("2 dubbed, 0 skipped") == 1  # one summary, from rank 0
    summary = json.loads((split / SUMMARY_NAME).read_text())
    assert len(summary["done"]) == 2 and not summary["failed"]
    for name in ("a_a.mp4", "b_b.mp4"):
        one, _ = read_video(single / name)
        two, _ = read_video(split / name)
        assert one.shape == two.shape and np.array_equal(one, two)


def test_missing_weights_name_every_file(tmp_path, capsys):
    (tmp_path / "v.mp4").write_bytes(b"0")
    rc = cli_main(["dub", "--video", str(tmp_path / "v.mp4"), "--audio", str(tmp_path / "v.mp4"), "-o",
                   str(tmp_path / "o.mp4"), "--weights_root", str(tmp_path / "nothing")])
    err = capsys.readouterr().err
    assert rc == 2
    for name in ("keyframe_dub.pt", "interpolation_dub.pt", "WavLM-Base+.pt", "hubert-base-ls960", "svd_vae"):
        assert name in err
    assert "keysync download-weights" in err
