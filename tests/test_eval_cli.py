"""``keysync evaluate``: metric registry, one table (CSV / JSON / Markdown), unavailable-weights
rows, per-video failures, and metric sanity on generated media."""

from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest
import torch

from conftest import reference_path
from keysync.cli import evaluate as evaluate_cli
from keysync.evaluation.registry import EvalOptions, MetricUnavailable, get_spec, metric_names
from keysync.evaluation.runner import evaluate, pair_items, parse_metrics
from keysync.evaluation.synthetic import render_face_clip, speech_audio, syllable_signal
from keysync.media import write_video

N = 20


pytestmark = pytest.mark.usefixtures("single_thread")  # see conftest.single_thread


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """gt: talking clips with their speech; pred: a = copy of gt (perfect reconstruction),
    b = moving mouth under silent audio (leaks), c = still mouth under silent audio, d = no gt."""
    root = tmp_path_factory.mktemp("evalset")
    pred, gt = root / "pred", root / "gt"
    pred.mkdir(), gt.mkdir()
    silence = np.zeros(N * 640, np.float32)
    for i, name in enumerate("abc"):
        speech = syllable_signal(N, seed=10 + i)
        frames, lms = render_face_clip(speech, seed=i)
        write_video(gt / f"{name}.mp4", frames, fps=25, audio=speech_audio(speech, seed=i))
        np.save(gt / f"{name}.npy", lms)
    shutil.copy(gt / "a.mp4", pred / "a.mp4"), shutil.copy(gt / "a.npy", pred / "a.npy")
    moving, lm_moving = render_face_clip(syllable_signal(N, seed=21), seed=1)
    write_video(pred / "b.mp4", moving, fps=25, audio=silence)
    np.save(pred / "b.npy", lm_moving)
    still, lm_still = render_face_clip(np.zeros(N), seed=2)
    write_video(pred / "c.mp4", still, fps=25, audio=silence)
    np.save(pred / "c.npy", lm_still)
    write_video(pred / "d.mp4", still, fps=25, audio=silence)
    np.save(pred / "d.npy", lm_still)
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Weight files in the published formats, random values (tiny ArcFace depth)."""
    from keysync.evaluation.arcface import IResNet
    from keysync.evaluation.lpips import LPIPS
    from keysync.evaluation.syncnet import SyncNet

    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    shutil.copy(reference_path("avsr_tiny.safetensors"), d / "avsr_tiny.safetensors")
    torch.save(SyncNet().state_dict(), d / "syncnet_v2.model")
    torch.save(IResNet((1, 1, 1, 1)).state_dict(), d / "arcface_r100.pth")
    lp = LPIPS()
    with torch.no_grad():
        for lin in lp.lins:  # the published linear heads are non-negative
            lin.model[1].weight.abs_()
    torch.save({f"features.{k}": v for k, v in lp.features.state_dict().items()}, d / "alexnet-owt-7be5be79.pth")
    torch.save({f"lin{k}": v for k, v in lp.lins.state_dict().items()}, d / "lpips_alex_v0.1.pth")
    return d


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="keysync")
    evaluate_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", *argv])
    return args.func(args)


def test_registry_names_and_unknown_metric():
    assert {"lipscore", "psnr", "ssim", "lse", "lipleak", "fid", "fvd", "csim", "lpips"} <= set(metric_names())
    assert parse_metrics("lse, psnr,lse") == ["lse", "psnr"]
    assert parse_metrics("all") == metric_names()
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        parse_metrics("psnr,nope")
    assert [w.filename for w in get_spec("lpips").weights] == ["lpips_alex_v0.1.pth", "alexnet-owt-7be5be79.pth"]


@pytest.mark.parametrize("metric", ["lipscore", "lse", "fid", "fvd", "csim", "lpips"])
def test_every_weighted_metric_names_the_file_it_needs(tmp_path, metric):
    with pytest.raises(MetricUnavailable) as err:
        get_spec(metric).build(EvalOptions(weights_dir=tmp_path))
    needed = get_spec(metric).weights[0].filename
    assert err.value.status.startswith(f"unavailable: needs {tmp_path / needed}")
    assert f"--weights {metric}=PATH" in err.value.status


def test_evaluate_all_metrics_without_weights(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    rc = _run(["--pred", str(dataset / "pred"), "--gt", str(dataset / "gt"), "--metrics", "all", "--out", str(out),
               "--weights-dir", str(tmp_path / "none"), "--landmarks-backend", "none", "--no-progress"])
    assert rc == 0
    data = json.loads((out / "results.json").read_text())
    status = {r["metric"]: r["status"] for r in data["summary"]}
    for metric, filename in [("lipscore", "vsr_trlrs2lrs3vox2avsp_base_updated.pth"), ("lse", "syncnet_v2.model"),
                             ("fid", "pt_inception-2015-12-05-6726825d.pth"), ("fvd", "i3d_pretrained_400.pt"),
                             ("csim", "arcface_r100.pth"), ("lpips", "lpips_alex_v0.1.pth")]:
        assert status[metric].startswith(f"unavailable: needs {tmp_path / 'none' / filename}"), metric
    assert status["psnr"] == status["ssim"] == "ok (1 failed)"  # d has no ground truth: listed, not dropped
    assert {"metric": "psnr", "video": "d", "error": "no ground-truth video with this name"} in data["errors"]
    markdown = (out / "results.md").read_text()
    assert "| fid | fid | – | lower | 0/4 | unavailable: needs" in markdown
    assert "unavailable: needs" in capsys.readouterr().out
    csv_rows = (out / "results.csv").read_text().splitlines()
    assert csv_rows[0] == "metric,column,value,better,videos,status" and len(csv_rows) == 1 + len(
        [c for m in metric_names() for c in get_spec(m).columns])
    assert _run(["--pred", str(dataset / "pred"), "--gt", str(dataset / "gt"), "--metrics", "psnr,lse",
                 "--out", str(out), "--weights-dir", str(tmp_path), "--no-progress", "--strict"]) == 1


def test_evaluate_with_weights_and_metric_sanity(dataset, weights, tmp_path):
    out = tmp_path / "out"
    rc = _run(["--pred", str(dataset / "pred"), "--gt", str(dataset / "gt"), "--out", str(out),
               "--metrics", "lipscore,psnr,ssim,lse,lipleak,csim,lpips", "--weights-dir", str(weights),
               "--weights", f"lipscore={weights / 'avsr_tiny.safetensors'}", "--landmarks-backend", "none",
               "--no-progress"])
    assert rc == 0
    data = json.loads((out / "results.json").read_text())
    assert all(r["status"].startswith("ok") for r in data["summary"]), data["summary"]
    per = {r["video"]: r for r in data["per_video"]}
    # a video compared with itself scores the maximum
    assert per["a"]["lipscore"] == pytest.approx(1.0, abs=1e-6)
    assert per["a"]["psnr"] == 100.0 and per["a"]["ssim"] == pytest.approx(1.0)
    assert per["a"]["lpips"] == pytest.approx(0.0, abs=1e-6) and per["a"]["csim"] == pytest.approx(1.0, abs=1e-5)
    assert per["b"]["lpips"] > 0 and per["b"]["csim"] < 1.0
    assert per["b"]["psnr"] < 60 and per["b"]["lipscore"] < 1.0
    # silent audio: the moving mouth leaks, the still one does not; the real talking clips speak
    assert per["b"]["lipleak"] > 0.7 and per["c"]["lipleak"] == 0.0 and per["d"]["lipleak"] == 0.0
    assert per["b"]["lipleak_gt"] > 0.7
    # LSE needs only the generated video and its audio: d (no gt) is scored too
    assert all(np.isfinite(per[v]["lse_c"]) and -15 <= per[v]["lse_offset"] <= 15 for v in "abcd")
    better = {r["column"]: r["better"] for r in data["summary"]}
    assert better["lipscore"] == "higher" and better["lse_d"] == "lower" and better["lipleak"] == "lower"
    assert better["lse_offset"] == ""


def test_fid_pools_frames_over_the_folder(dataset, tmp_path):
    from keysync.evaluation.inception import InceptionFID

    model = InceptionFID()
    for module in model.modules():  # He init keeps activations O(1) (tiny values become slow denormals)
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(model.state_dict(), tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    options = EvalOptions(weights_dir=tmp_path, extra={"fid_frame_stride": 10})
    items = [i for i in pair_items(dataset / "pred", dataset / "gt", options=options) if i.name in "ab"]
    report = evaluate(items, ["fid"], options, progress=False)
    assert report.status("fid") == "ok" and report.value("fid") > 0
    same = evaluate(items[:1], ["fid"], options, progress=False)  # a: pred == gt
    assert same.value("fid") == pytest.approx(0.0, abs=1e-3)
