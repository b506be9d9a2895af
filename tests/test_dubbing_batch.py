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


def test_precomputed_artefacts_path(setup, tmp_path):
    """`keysync precompute` artefacts then `keysync dub --precomputed_root` (the reference's inference.sh)."""
    d, weights = setup
    w = dict(zip(weights[0::2], weights[1::2]))
    root = tmp_path / "data"
    (root / "video_crop").mkdir(parents=True), (root / "audio").mkdir()
    face_clip(root / "video_crop" / "s1.mp4", 24, 25, (160, 160), 150, seed=4)
    speech(root / "audio" / "s1.wav", "precomputed", 1.4)  # features are cut to the video's 24 frames
    vids = str(root / "video_crop")
    assert cli_main(["-q", "precompute", "latents", vids, "--vae", w["--vae"], "--resolution", str(TINY_RESOLUTION),
                     "--mode", "mode"]) == 0
    assert cli_main(["-q", "precompute", "landmarks", vids]) == 0
    landmarks = np.load(root / "landmarks_crop" / "s1.npy")
    assert landmarks.shape == (24, 68, 2) and np.isfinite(landmarks).all()
    assert 40 < landmarks[:, :, 0].mean() < 120 and 40 < landmarks[:, :, 1].mean() < 140  # on the face
    for model in ("hubert", "wavlm"):
        assert cli_main(["-q", "precompute", "audio", vids, "--model", model, "--weights", w[f"--{model}"]]) == 0
    out = tmp_path / "out"
    rc = cli_main(["-q", "dub", "--precomputed_root", str(root), "--filelist", vids, "--file_list_audio",
                   str(root / "audio"), "--output_folder", str(out), *weights])
    assert rc == 0
    frames, fps = read_video(out / "s1_s1.mp4")
    assert frames.shape == (24, TINY_RESOLUTION, TINY_RESOLUTION, 3) and fps == 25.0  # every frame
    rc = cli_main(["-q", "dub", "--precomputed_root", str(root), "--video", vids + "/s1.mp4", "--audio",
                   str(root / "audio" / "s1.wav"), "-o", str(out / "ref.mp4"), "--reference_compat", *weights])
    assert rc == 0 and read_video(out / "ref.mp4")[0].shape[0] == 14  # the reference drops the 10-frame tail
    (root / "audio_emb" / "s1_wavlm_emb.safetensors").unlink()
    rc = cli_main(["-q", "dub", "--precomputed_root", str(root), "--filelist", vids, "--file_list_audio",
                   str(root / "audio"), "--output_folder", str(tmp_path / "out2"), *weights])
    summary = json.loads((tmp_path / "out2" / SUMMARY_NAME).read_text()) if (tmp_path / "out2").exists() else None
    assert rc == 1
    assert summary is None or "WavLM features not found" in next(iter(summary["failed"].values()))


def test_shell_entry_points():
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHON": sys.executable}
    raw = subprocess.run(["bash", str(repo / "scripts/infer_raw_data.sh"), "--help"], env=env, capture_output=True,
                         text=True)
    assert raw.returncode == 0 and "--file_list_audio" in raw.stdout and "--reference_compat" in raw.stdout
    pre = subprocess.run(["bash", str(repo / "scripts/inference.sh"), "--filelist", "x"], env=env,
                         capture_output=True, text=True)
    assert pre.returncode == 2 and "--precomputed_root" in pre.stderr
