"""KeyFace animation end to end with tiny random-weight models in the published formats."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage.data import astronaut

from conftest import speech
from keysync.cli.main import main as cli_main
from keysync.media import probe_audio, probe_video, read_video
from keysync.models.conditioning import ConcatTimestepEmbedderND
from keysync.models.wrappers import InterpolationWrapper
from keysync.nn.embeddings import timestep_embedding
from keysync.pipelines.animation import identity_latent, read_identity, square_image
from keysync.pipelines.animation_models import TINY_KEYFACE_CONFIGS
from keysync.pipelines.emotion import read_emotion_csv
from keysync.pipelines.planning_keyface import plan_keyface
from keysync.pipelines.tiny import TINY_RESOLUTION, write_tiny_keyface_weights
from keysync.pipelines.two_stage import ConditioningStreams

REPO = Path(__file__).resolve().parents[1]




pytestmark = pytest.mark.usefixtures("single_thread")  # see conftest.single_thread


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_tiny_keyface_weights(tmp_path_factory.mktemp("keyface_weights"))


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("keyface_media")
    face = cv2.resize(astronaut(), (120, 96), interpolation=cv2.INTER_AREA)  # not square: centre-cropped
    cv2.imwrite(str(d / "face.png"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    (d / "va.csv").write_text("time,valence,arousal\n0,-0.8,0.2\n2.5,0.9,-0.4\n6,0.1,0.7\n")
    return {"png": d / "face.png", "csv": d / "va.csv",
            "wav": speech(d / "speech.wav", "Hello there, this is a test of the animation pipeline.", 6.0),
            "short": speech(d / "short.wav", "hi", 0.5), "short15": speech(d / "short15.wav", "hey", 0.6)}


def _weight_args(weights) -> list[str]:
    flags = {"keyframe": "--keyframes_ckpt", "interpolation": "--interpolation_ckpt",
             "interpolation_bad": "--interpolation_bad_ckpt", "vae": "--vae", "wavlm": "--wavlm",
             "wav2vec2": "--wav2vec2", "beats": "--beats"}
    args = [a for name, flag in flags.items() for a in (flag, str(weights[name]))]
    return args + ["--keyframe_config", TINY_KEYFACE_CONFIGS[0], "--interpolation_config", TINY_KEYFACE_CONFIGS[1],
                   "--bad_config", TINY_KEYFACE_CONFIGS[2], "--resolution", str(TINY_RESOLUTION)]


def test_png_and_6s_speech_give_a_6s_25fps_video(weights, media, tmp_path):
    """`keysync animate` with an emotion CSV: 150 frames at 25 fps with the 6 s of audio; the CSV's
    per-frame values reach the valence/arousal embedders and the UNet's label embedding at the
    keyframe slots; autoguidance runs both interpolation networks."""
    seen = {"valence": [], "arousal": [], "label_in": [], "wrappers": set()}

    def spy(module, args, output):
        if isinstance(module, ConcatTimestepEmbedderND):
            seen[module.input_key].append(args[0].detach().clone())  # the conditioner's valence / arousal
        elif isinstance(module, torch.nn.Linear) and module.in_features == 512 + 64:  # keyframe label_emb.0.0
            seen["label_in"].append(args[0].detach().clone())
        elif isinstance(module, InterpolationWrapper):
            seen["wrappers"].add(id(module))

    out = tmp_path / "out.mp4"
    handle = torch.nn.modules.module.register_module_forward_hook(spy)
    try:
        code = cli_main(["animate", "--image", str(media["png"]), "--audio", str(media["wav"]), "-o", str(out),
                         "--emotion_csv", str(media["csv"]), *_weight_args(weights)])
    finally:
        handle.remove()
    assert code == 0
    info = probe_video(out)
    assert (info.num_frames, info.fps, info.width, info.height) == (150, 25.0, TINY_RESOLUTION, TINY_RESOLUTION)
    assert abs(info.duration - 6.0) < 0.05 and info.has_audio
    assert abs(probe_audio(out).duration - 6.0) < 0.05
    frames, _ = read_video(out)
    assert frames.std() > 1.0  # something was drawn

    # emotion CSV → keyframe embedders (one call per conditioning pass: c and uc of the one batch)
    plan = plan_keyface(150)
    slots = [s.audio for s in plan.batches[0]]
    assert len(plan.batches) == 1 and slots[:3] == [0, 0, 13] and slots[-1] == 149
    valence, arousal = read_emotion_csv(media["csv"], 150)
    assert len(seen["valence"]) == 2 and len(seen["arousal"]) == 2
    for v, a in zip(seen["valence"], seen["arousal"]):
        assert torch.equal(v, valence[slots][None]) and torch.equal(a, arousal[slots][None])
    assert valence[slots].unique().numel() > 5  # the values do vary over the clip
    emb = torch.cat([timestep_embedding(valence[slots], 256), timestep_embedding(arousal[slots], 256)], 1)
    assert len(seen["label_in"]) == 11  # one UNet call per Euler step, 3 guidance passes stacked
    for label in seen["label_in"]:
        assert label.shape == (42, 576) and torch.allclose(label[:, :512], emb.repeat(3, 1), atol=1e-6)
    assert len(seen["wrappers"]) == 2  # the good and the weak interpolation networks


def test_batch_manifest_with_a_corrupt_image(weights, media, tmp_path, capsys):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(f"image,audio,output\n{media['png']},{media['short']},good.mp4\n"
                        f"broken.png,{media['short']},bad.mp4\n")
    code = cli_main(["animate", "--manifest", str(manifest), "--output_folder", str(tmp_path / "out"),
                     "--emotion", "happy,sad", "--accentuate", *_weight_args(weights)])
    assert code == 1
    out = capsys.readouterr().out
    assert "1 animated, 0 skipped (output exists), 1 failed" in out and "not a readable image" in out
    assert (tmp_path / "out" / "animate_summary.json").is_file()
    info = probe_video(tmp_path / "out" / "good.mp4")
    assert (info.num_frames, info.fps) == (13, 25.0)  # ceil(0.5 s · 16000 / 640) frames
    assert not (tmp_path / "out" / "bad.mp4").exists()


def test_input_errors_are_clear(weights, media, tmp_path, capsys):
    args = ["-o", str(tmp_path / "o.mp4"), *_weight_args(weights)]
    assert cli_main(["animate", "--image", str(tmp_path / "nope.png"), "--audio", str(media["short"]), *args]) == 2
    assert "identity image not found" in capsys.readouterr().err
    (tmp_path / "bad.jpg").write_bytes(b"garbage")
    assert cli_main(["animate", "--image", str(tmp_path / "bad.jpg"), "--audio", str(media["short"]), *args]) == 2
    assert "not a readable image" in capsys.readouterr().err
    assert cli_main(["animate", "--image", str(media["png"]), "--audio", str(media["short"]), "--emotion", "elated",
                     *args]) == 2
    assert "unknown emotion" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()
    result = subprocess.run([str(REPO / "scripts" / "animate.sh"), str(tmp_path / "nope.png"), str(media["short"]),
                             str(tmp_path / "o.mp4")], capture_output=True, text=True,
                            env={"PATH": f"{REPO / '.venv' / 'bin'}:/usr/bin:/bin"})
    assert result.returncode == 2 and "identity image not found" in result.stderr


def test_identity_preprocessing(weights, media):
    from keysync.models.vae_io import load_vae

    image = read_identity(media["png"])
    assert image.shape == (96, 120, 3) and image.dtype == np.uint8
    assert square_image(image).shape == (96, 96, 3) and np.array_equal(square_image(image), image[:, 12:108])
    assert square_image(image, "squash").shape == (96, 120, 3)
    latent, pixels = identity_latent(load_vae(weights["vae"]), image, TINY_RESOLUTION, mode="mode")
    assert latent.shape == (4, 16, 16) and pixels.shape == (32, 32, 3)


def test_streams_without_inpainting():
    audio = torch.zeros(20, 2, 8)
    s = ConditioningStreams(None, None, audio, audio, torch.zeros(4, 16, 16),
                            keyframe_extra={"valence": torch.arange(20.0)})
    assert len(s) == 20 and not s.inpainting
    assert s.rows("valence", [0, 19, 25]).tolist() == [0, 19, 19]  # clamped: virtual tail frames
    with pytest.raises(ValueError, match="differ in length"):
        ConditioningStreams(None, None, audio, audio[:5], torch.zeros(4, 16, 16))
    with pytest.raises(ValueError, match="both latents and masks"):
        ConditioningStreams(torch.zeros(20, 4, 16, 16), None, audio, audio, torch.zeros(4, 16, 16))


def test_reference_compat_mode(weights, media, tmp_path):
    """The original KeyFace loop: 15 frames (keyframes 0 and 13 plus its late tail chunk) come out
    as 15 frames; under 14 frames the original crashes, and so do we (before sampling)."""
    from keysync.pipelines.animation import AnimationOptions, animate
    from keysync.pipelines.animation_models import load_animation_models
    from keysync.pipelines.plan_records import PlanningError

    models = load_animation_models(weights, keyframe_config=TINY_KEYFACE_CONFIGS[0],
                                   interpolation_config=TINY_KEYFACE_CONFIGS[1], bad_config=TINY_KEYFACE_CONFIGS[2])
    opts = AnimationOptions(resolution=TINY_RESOLUTION, reference_compat=True, progress=False, emotion="surprised")
    result = animate(models, media["png"], media["short15"], tmp_path / "ref.mp4", opts)
    info = probe_video(tmp_path / "ref.mp4")
    assert result.frames == info.num_frames == 15 and info.fps == 25.0
    assert torch.allclose(result.arousal, torch.full((15,), 0.85))
    with pytest.raises(PlanningError, match="the reference crashes"):
        animate(models, media["png"], media["short"], tmp_path / "short.mp4", opts)
    assert not (tmp_path / "short.mp4").exists()
