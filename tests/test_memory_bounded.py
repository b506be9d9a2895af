"""Long clips in bounded memory: held memory does not grow with the clip's length, and the
streamed sampling (segments per sampler call, lazy latents) gives the same frames as one call.

Tiny random-weight models at their native 32² crops (latents 4×16×16: 5 KB per frame with the
mask, so the old whole-clip tensors showed up as +9 MB between a 2 s and a 20 s clip)."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest
import torch

from keysync.media import write_audio
from keysync.pipelines.animation_models import TINY_KEYFACE_CONFIGS, load_animation_models
from keysync.pipelines.dubbing import DubbingOptions, dub
from keysync.pipelines.dubbing_models import TINY_CONFIGS, load_dubbing_models
from keysync.pipelines.lazy_rows import LazyRows
from keysync.pipelines.planning import plan_keysync
from keysync.pipelines.planning_keyface import plan_keyface
from keysync.pipelines.tiny import TINY_RESOLUTION, write_tiny_dubbing_weights, write_tiny_keyface_weights
from keysync.pipelines.two_stage import ConditioningStreams, SamplingOptions, generate_frames
from keysync.utils.memory import held_bytes
from test_dubbing import face_clip

pytestmark = pytest.mark.usefixtures("single_thread")  # see conftest.single_thread


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    m = load_dubbing_models(write_tiny_dubbing_weights(tmp_path_factory.mktemp("weights")),
                            keyframe_config=TINY_CONFIGS[0], interpolation_config=TINY_CONFIGS[1])
    m.use_fast_sampler(2)  # held memory does not depend on the step count; keeps the 20 s job short
    yield m
    m.close()


def noise_wav(path, seconds: float):
    rng = np.random.default_rng(0)
    write_audio(path, (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000)
    return path


def test_held_memory_does_not_grow_from_2s_to_20s(models, tmp_path):
    clip = face_clip(tmp_path / "clip.mp4", 25, 25, (160, 160), 140)  # 1 s, ping-pong looped
    peaks = {}
    for seconds in (2, 20):
        audio = noise_wav(tmp_path / f"{seconds}.wav", seconds)
        peak = [0]

        def on_frame(i, *_):
            if i % 25 == 0:
                gc.collect()  # count what is held, not garbage waiting for the collector
                peak[0] = max(peak[0], held_bytes())

        tracemalloc.start()
        try:
            result = dub(models, clip, audio, tmp_path / f"{seconds}.mp4",
                         DubbingOptions(resolution=TINY_RESOLUTION, compute_until=None, progress=False,
                                        audio_in_file_after=0), on_frame)
        finally:
            tracemalloc.stop()
        assert result.model_frames == 25 * seconds
        peaks[seconds] = peak[0]
    print(f"held memory: 2 s {peaks[2] / 1e6:.3f} MB, 20 s {peaks[20] / 1e6:.3f} MB")
    # what may grow: the plan's per-frame index records (Python objects, ~300 B per frame; the
    # audio and its features are in temporary files with audio_in_file_after=0)
    tracemalloc.start()
    plans = [plan_keysync(25 * seconds) for seconds in (2, 20)]
    plan_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del plans
    growth = peaks[20] - peaks[2]
    assert growth <= plan_bytes + 256 * 1024, (
        f"held memory 2 s {peaks[2] / 1e6:.2f} MB, 20 s {peaks[20] / 1e6:.2f} MB: grew {growth / 1e6:.2f} MB "
        f"(the plan records: {plan_bytes / 1e6:.2f} MB)")


def _random_streams(n: int, key_dim: int, interp_dim: int, inpaint: bool, extra: bool) -> ConditioningStreams:
    g = torch.Generator().manual_seed(1)
    latents = torch.randn((n, 4, 16, 16), generator=g) if inpaint else None
    masks = (torch.rand((n, 1, 16, 16), generator=g) > 0.5).float() if inpaint else None
    kwargs = {"keyframe_extra": {"valence": torch.rand(n, generator=g) * 2 - 1,
                                 "arousal": torch.rand(n, generator=g) * 2 - 1}} if extra else {}
    return ConditioningStreams(latents, masks, torch.randn((n, 2, key_dim), generator=g),
                               torch.randn((n, 2, interp_dim), generator=g), torch.randn((4, 16, 16), generator=g),
                               **kwargs)


def _frames(plan, streams, keyframe, interpolation, **sampling):
    opts = SamplingOptions(progress=False, **sampling)
    return {i: f for i, f in generate_frames(plan, streams, keyframe, interpolation,
                                             torch.Generator().manual_seed(5), opts)}


def test_keysync_frames_do_not_depend_on_segments_per_call(models):
    """6 segments: one sampler call each, two per call (the default) and all six in one call give
    the same frames, and lazy (windowed) latents give what whole-clip tensors give."""
    n = 75
    key_dim = models.keyframe_audio(np.zeros(2560, np.float32), 16000, 4).shape[-1]
    interp_dim = models.interpolation_audio(np.zeros(2560, np.float32), 16000, 4).shape[-1]
    streams = _random_streams(n, key_dim, interp_dim, inpaint=True, extra=False)
    plan = plan_keysync(n)
    runs = [_frames(plan, streams, models.keyframe, models.interpolation, segments_per_call=k) for k in (1, None, 6)]
    assert sorted(runs[0]) == list(range(n))
    for other in runs[1:]:
        assert all(torch.equal(runs[0][i], other[i]) for i in range(n))

    lazy = [LazyRows(np.arange(n), lambda keys, t=t: t[keys], tuple(t.shape[1:]), keep=[0])
            for t in (streams.latents, streams.masks)]
    lazy_streams = ConditioningStreams(lazy[0], lazy[1], streams.keyframe_audio, streams.interpolation_audio,
                                       streams.reference)
    windowed = _frames(plan, lazy_streams, models.keyframe, models.interpolation)
    assert all(torch.equal(runs[0][i], windowed[i]) for i in range(n))
    assert lazy[0].max_held <= 2 * 14 + 27 + 1 < n  # one call's segments + the chunk's keyframes + frame 0


def test_keyface_frames_do_not_depend_on_segments_per_call(tmp_path):
    """KeyFace does not paste keyframes: the frame two segments share is the average of two
    different rows, also when the segments fall in different sampler calls."""
    models = load_animation_models(write_tiny_keyface_weights(tmp_path), keyframe_config=TINY_KEYFACE_CONFIGS[0],
                                   interpolation_config=TINY_KEYFACE_CONFIGS[1], bad_config=TINY_KEYFACE_CONFIGS[2])
    n = 60
    key, interp = models.audio_features(np.zeros(2560, np.float32), 16000, 4)
    streams = _random_streams(n, key.shape[-1], interp.shape[-1], inpaint=False, extra=True)
    plan = plan_keyface(n, mode="full")
    runs = [_frames(plan, streams, models.keyframe, models.interpolation, paste_keyframes=False, segments_per_call=k)
            for k in (1, 5)]
    assert sorted(runs[0]) == list(range(plan.n_out))
    assert any(f.avg_with is not None for f in plan.frames)
    assert all(torch.equal(runs[0][i], runs[1][i]) for i in runs[0])


def test_tensor_bytes_counts_heap_tensors_once_and_skips_files_and_fakes():
    from torch._subclasses.fake_tensor import FakeTensorMode

    from keysync.audio.feature_file import to_file
    from keysync.utils.memory import tensor_bytes

    with FakeTensorMode():
        alive = [torch.ones(1000)]  # a compile trace's leftover: owns no memory
    base = tensor_bytes()
    heap = torch.ones(250)
    alive += [heap[10:],  # a view: the same storage, counted once
              torch.nn.Parameter(torch.ones(250)),
              torch.from_numpy(to_file(np.ones(10**5, np.float32)))]  # page cache, not held
    assert tensor_bytes() - base == 2000 and len(alive) == 4
