"""The dubbing pipeline end to end with tiny random-weight models in the published formats."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage.data import astronaut

from conftest import speech
from keysync.face.synthetic import jitter_clip
from keysync.media import probe_audio, probe_video, read_video, write_video
from keysync.pipelines.dubbing import DubbingOptions, dub
from keysync.pipelines.dubbing_inputs import usable_frames
from keysync.pipelines.dubbing_models import TINY_CONFIGS, load_dubbing_models
from keysync.pipelines.tiny import TINY_RESOLUTION, write_tiny_dubbing_weights
from keysync.pipelines.two_stage import decode_frames




def face_clip(path: Path, frames: int, fps: float, size: tuple[int, int], face: int, seed: int = 0) -> Path:
    image = cv2.resize(astronaut(), (face, face), interpolation=cv2.INTER_AREA)
    video, _ = jitter_clip(image, num_frames=frames, out_size=size, seed=seed, max_shift=4.0)
    write_video(path, video, fps=fps)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_tiny_dubbing_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def models(weights):
    m = load_dubbing_models(weights, keyframe_config=TINY_CONFIGS[0], interpolation_config=TINY_CONFIGS[1])
    yield m
    m.close()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    return {"clip": face_clip(d / "clip.mp4", 120, 30, (360, 640), 300),
            "mp3": speech(d / "speech.mp3", "Hello there, this is a test of the dubbing pipeline.", 5.0)}


def test_30fps_640x360_clip_with_5s_mp3(models, media, tmp_path):
    """4 s at 30 fps + 5 s of mp3 → 150 frames at 30 fps, 640×360, 5 s of audio; the video is
    ping-pong looped past its end; only pixels inside the mask change."""
    seen = {}

    def on_frame(i, out, src, region):
        seen[i] = (bool((out[~region] == src[~region]).all()), region.mean(), src if i in (0, 125, 149) else None)

    out = tmp_path / "out.mp4"
    result = dub(models, media["clip"], media["mp3"], out,
                 DubbingOptions(resolution=TINY_RESOLUTION, progress=False), on_frame=on_frame)
    info = probe_video(out)
    assert (info.num_frames, info.fps, info.width, info.height) == (150, 30.0, 640, 360)
    assert abs(probe_audio(out).duration - 5.0) < 0.05
    assert (result.frames, result.model_frames) == (150, 125)
    assert sorted(seen) == list(range(150))
    assert all(same for same, _, _ in seen.values())  # outside the mask: the input, byte for byte
    fractions = np.array([f for _, f, _ in seen.values()])
    assert (fractions > 0.002).all() and (fractions < 0.1).all()  # a lower-face region, not the frame
    source, _ = read_video(media["clip"])
    assert np.array_equal(seen[0][2], source[0])
    assert np.array_equal(seen[125][2], source[2 * 119 - 125])  # ping-pong: frame 125 shows frame 113
    assert np.array_equal(seen[149][2], source[2 * 119 - 149])
    assert set(result.timings) >= {"landmarks", "encode", "keyframes", "interpolation", "decode", "paste", "mux"}


def test_reference_compat_output(models, tmp_path):
    """Reference mode: 25 fps, R×R squashed frames, the 14+13k tail dropped (27 of 30 frames)."""
    clip = face_clip(tmp_path / "v.mp4", 30, 25, (200, 240), 180)
    audio = speech(tmp_path / "a.wav", "testing", 1.2)
    result = dub(models, clip, audio, tmp_path / "ref.mp4",
                 DubbingOptions(resolution=TINY_RESOLUTION, reference_compat=True, progress=False))
    info = probe_video(tmp_path / "ref.mp4")
    assert (info.num_frames, info.fps, info.width, info.height) == (27, 25.0, TINY_RESOLUTION, TINY_RESOLUTION)
    assert result.frames == 27
    assert abs(probe_audio(tmp_path / "ref.mp4").duration - 27 * 0.04) < 0.05


def test_faceless_video_is_a_clear_error(models, tmp_path):
    blank = np.full((20, 96, 96, 3), 90, np.uint8)
    write_video(tmp_path / "blank.mp4", blank, fps=25)
    audio = speech(tmp_path / "a.wav", "hi", 0.8)
    with pytest.raises(ValueError, match=r"blank\.mp4: no face was found"):
        dub(models, tmp_path / "blank.mp4", audio, tmp_path / "o.mp4",
            DubbingOptions(resolution=TINY_RESOLUTION, progress=False))
    assert not (tmp_path / "o.mp4").exists()


def test_usable_frames_bridges_short_gaps_only():
    found = np.array([1, 0, 1, 0, 0, 0, 0, 1, 0, 0], bool)
    assert usable_frames(found, 2).tolist() == [1, 1, 1, 0, 0, 0, 0, 1, 1, 1]
    assert usable_frames(found, 4).tolist() == [1] * 10
    assert usable_frames(np.zeros(3, bool), 5).tolist() == [1, 1, 1]  # caller rejects all-missing clips


def test_batched_decode_equals_one_frame_at_a_time(models):
    torch.manual_seed(0)
    z = torch.randn(5, 4, 16, 16)
    engine = models.interpolation
    batched = decode_frames(engine, z, batch=5)
    single = torch.cat([decode_frames(engine, z[i:i + 1], batch=1) for i in range(5)])
    assert torch.allclose(batched, single, atol=1e-5)
    ref = engine.decode_first_stage(z)  # the reference: decoding_t = 1
    assert torch.allclose(batched, ((ref + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1), atol=1e-5)


def test_occluder_pixels_are_kept_with_bf16_and_custom_guidance(models, tmp_path):
    """User-given occluder masks (a band over the right half of the face) stay untouched; the run
    also exercises bf16 autocast and non-default guidance scales."""
    clip = face_clip(tmp_path / "v.mp4", 20, 25, (200, 240), 180, seed=5)
    audio = speech(tmp_path / "a.wav", "occluded", 0.8)
    band = np.zeros((200, 240), np.uint8)
    band[:, 120:] = 1
    changed = []
    models.set_guidance(3.0, 1.5)
    try:
        result = dub(models, clip, audio, tmp_path / "o.mp4",
                     DubbingOptions(resolution=TINY_RESOLUTION, progress=False, occlusion_masks=band,
                                    autocast_dtype=torch.bfloat16),
                     on_frame=lambda i, out, src, region: changed.append(region))
    finally:
        models.set_guidance(5.0, 2.0)
    assert models.keyframe.sampler.guider.audio_ratio == 5.0
    assert result.frames == 20 and len(changed) == 20
    assert all(r[:, :120].any() for r in changed)  # the left half of the mouth is regenerated
    assert not any(r[:, 120:].any() for r in changed)  # the occluder is not
    with pytest.raises(ValueError, match="do not cover"):
        dub(models, clip, audio, tmp_path / "x.mp4",
            DubbingOptions(resolution=TINY_RESOLUTION, progress=False, occlusion_masks=band[:100]))
