"""Audio loading rules as pure functions on arrays (no file I/O).

Decoding files is ``keysync.media``'s job; these functions take the decoded samples and
their sample rate and produce the 16 kHz mono waveform (and the model input) the
encoders expect.

Reference behaviour (``scripts/util/get_audio_embeddings.py`` and ``sgm.util``;
SPEC §1.2, §7.2, §11.23, §11.27; reference README §10 trap 8):

* ``get_audio_embeddings.py`` (offline embeddings): if ``sr != 16000`` the file is
  resampled and **only channel 0** is kept; at 16 kHz the channels are averaged.
  With a video length it then **crashes** for resampled files (the file is skipped).
* ``sgm.util.get_raw_audio`` (raw pipeline): channels averaged first, then resampled.
* HuBERT / wav2vec2 offline: z-normalise with the unbiased variance over the whole
  file, then trim / zero-pad to the video length ``int(n_frames / 25 * 16000)``
  (which loses one sample for e.g. 201 frames), then zero-pad to a 640 multiple.
  The raw pipeline pads first and normalises after.

Defaults here are the *correct* behaviour: channels are always averaged (then
resampled), any sample rate works with a video length, and the video length is the
exact ``n_frames * sr / fps`` samples. The reference quirks are available behind the
explicit options ``reference_channels=True`` and ``reference_rounding=True`` and, all
together, in :func:`reference_offline_waveform`.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import numpy as np
import torch

from .alignment import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from .resample import resample

__all__ = [
    "ReferenceSkippedFileError",
    "as_float_channels_first",
    "to_mono_16k",
    "zscore_normalize",
    "video_num_samples",
    "trim_or_pad",
    "pad_to_multiple",
    "prepare_waveform",
    "raw_audio_frames",
    "reference_offline_waveform",
]

ArrayLike = Union[np.ndarray, torch.Tensor]


class ReferenceSkippedFileError(RuntimeError):
    """The reference script fails on this input (it prints "Failed processing" and
    writes no embedding). Raised only in reference-compatible mode."""


def as_float_channels_first(audio: ArrayLike, channel_axis: int = 0) -> torch.Tensor:
    """Decoded samples -> float32 tensor ``(C, N)``.

    ``audio`` is ``(N,)`` (mono) or 2-D with channels on ``channel_axis`` (0: ``(C, N)``
    as torchaudio returns; -1 / 1: ``(N, C)`` as soundfile returns). Integer PCM is
    scaled as torchaudio does (int16 / 2**15, int32 / 2**31, uint8 (x - 128) / 128).
    """
    x = torch.from_numpy(np.ascontiguousarray(audio)) if isinstance(audio, np.ndarray) else audio
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a numpy array or torch tensor, got {type(audio).__name__}")
    if x.dtype == torch.int16:
        x = x.to(torch.float32) / 32768.0
    elif x.dtype == torch.int32:
        x = x.to(torch.float32) / 2147483648.0
    elif x.dtype == torch.uint8:
        x = (x.to(torch.float32) - 128.0) / 128.0
    elif torch.is_floating_point(x):
        x = x.to(torch.float32)
    else:
        raise TypeError(f"unsupported audio dtype {x.dtype}")
    if x.ndim == 1:
        x = x[None]
    elif x.ndim == 2:
        if channel_axis in (-1, 1):
            x = x.T
        elif channel_axis != 0:
            raise ValueError(f"channel_axis must be 0, 1 or -1, got {channel_axis}")
    else:
        raise ValueError(f"audio must be (N,) or 2-D, got shape {tuple(x.shape)}")
    if x.shape[0] > 64:
        raise ValueError(
            f"audio has {x.shape[0]} channels on axis {channel_axis} (shape {tuple(x.shape)}); "
            "pass channel_axis=-1 for (samples, channels) arrays"
        )
    if x.shape[-1] == 0:
        raise ValueError("empty audio: no samples")
    return x.contiguous()


def to_mono_16k(
    audio: ArrayLike,
    sr: int,
    *,
    target_sr: int = SAMPLE_RATE,
    channel_axis: int = 0,
    reference_channels: bool = False,
) -> torch.Tensor:
    """Decoded audio at ``sr`` -> mono float32 ``(N,)`` at ``target_sr``.

    Default (correct): average the channels, then resample (what the reference's
    pipelines do through ``get_raw_audio``). ``reference_channels=True`` reproduces
    ``get_audio_embeddings.py``: keep **channel 0 only** when resampling, average the
    channels when ``sr == target_sr`` (SPEC §11.23). Resampling is the torchaudio
    windowed-sinc algorithm (:func:`keysync.audio.resample.resample`).
    """
    x = as_float_channels_first(audio, channel_axis)
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    if sr != target_sr and reference_channels:
        return resample(x, sr, target_sr)[0]
    mono = x.mean(0, keepdim=True)
    return resample(mono, sr, target_sr)[0]


def zscore_normalize(wave: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps)`` over all samples, unbiased (N - 1) variance.

    The HuBERT / wav2vec2 input normalisation of the reference. A single sample has
    no unbiased variance; it is mapped to 0 instead of NaN.
    """
    if wave.numel() < 2:
        return torch.zeros_like(wave)
    return (wave - wave.mean()) / torch.sqrt(wave.var() + eps)


def video_num_samples(
    n_frames: int,
    fps: float = FPS,
    sr: int = SAMPLE_RATE,
    *,
    reference_rounding: bool = False,
) -> int:
    """Audio samples spanned by ``n_frames`` video frames.

    Default: ``n_frames * sr / fps`` rounded to the nearest sample (exactly ``640 n``
    at 25 fps / 16 kHz). ``reference_rounding=True`` reproduces the reference's
    ``int(n_frames / fps * sr)``, which truncates float error and loses one sample for
    590 frame counts below 100,000 (201, 203, 402, ...; SPEC §11.27).
    """
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    if reference_rounding:
        return int(n_frames / fps * sr)
    exact = n_frames * sr / fps
    nearest = round(exact)
    # integer-valued up to float error -> that integer; otherwise floor (never beyond the video)
    return int(nearest) if abs(exact - nearest) < 1e-6 * max(1.0, exact) else math.floor(exact)


def trim_or_pad(wave: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Cut ``(..., N)`` to ``n_samples`` or zero-pad it at the end."""
    n = wave.shape[-1]
    if n >= n_samples:
        return wave[..., :n_samples]
    return torch.nn.functional.pad(wave, (0, n_samples - n))


def pad_to_multiple(wave: torch.Tensor, multiple: int = SAMPLES_PER_FRAME) -> torch.Tensor:
    """Zero-pad ``(..., N)`` at the end to a multiple of ``multiple`` samples."""
    rem = wave.shape[-1] % multiple
    return wave if rem == 0 else torch.nn.functional.pad(wave, (0, multiple - rem))


def prepare_waveform(
    wave: ArrayLike,
    *,
    n_video_frames: Optional[int] = None,
    normalize: bool = False,
    normalize_after_padding: bool = False,
    fps: float = FPS,
    sr: int = SAMPLE_RATE,
    samples_per_frame: int = SAMPLES_PER_FRAME,
    reference_rounding: bool = False,
) -> torch.Tensor:
    """16 kHz mono ``(N,)`` -> model input ``(640 F,)``.

    Order of the offline reference (HuBERT / wav2vec2 with ``normalize=True``):
    z-normalise the whole waveform, trim / zero-pad to the video length (if
    ``n_video_frames`` is given), zero-pad to a multiple of ``samples_per_frame``.
    Padded samples are exactly 0. ``normalize_after_padding=True`` is the raw pipeline
    order (pad first, normalise after, so the padding enters the statistics and becomes
    ``-mean/std``).
    """
    x = _as_mono_1d(wave)
    if normalize and not normalize_after_padding:
        x = zscore_normalize(x)
    if n_video_frames is not None:
        if n_video_frames <= 0:
            raise ValueError(f"n_video_frames must be positive, got {n_video_frames}")
        x = trim_or_pad(
            x, video_num_samples(n_video_frames, fps, sr, reference_rounding=reference_rounding)
        )
    x = pad_to_multiple(x, samples_per_frame)
    if normalize and normalize_after_padding:
        x = zscore_normalize(x)
    return x


def _as_mono_1d(wave: ArrayLike) -> torch.Tensor:
    """A 16 kHz mono waveform given as ``(N,)`` (or ``(1, N)``) -> float32 ``(N,)``."""
    x = as_float_channels_first(wave)
    if x.shape[0] != 1:
        raise ValueError(
            f"expected a mono waveform, got {x.shape[0]} channels; use to_mono_16k first"
        )
    return x[0]


def raw_audio_frames(
    audio: ArrayLike, sr: int, *, channel_axis: int = 0, samples_per_frame: int = SAMPLES_PER_FRAME
) -> torch.Tensor:
    """``sgm.util.get_raw_audio``: channel mean, resample to 16 kHz, zero-pad to a
    multiple of 640, reshape to ``(F, 640)``. This is the raw audio the pipelines use
    (and the WavLM input of the raw pipeline)."""
    x = pad_to_multiple(to_mono_16k(audio, sr, channel_axis=channel_axis), samples_per_frame)
    return x.reshape(-1, samples_per_frame)


def reference_offline_waveform(
    audio: ArrayLike,
    sr: int,
    *,
    n_video_frames: Optional[int] = None,
    normalize: bool = True,
    channel_axis: int = 0,
    fps: float = FPS,
) -> torch.Tensor:
    """Model input exactly as ``get_audio_embeddings.py`` builds it (all quirks on).

    Channel 0 only when resampling, channel mean at 16 kHz; z-normalisation (HuBERT /
    wav2vec2; ``normalize=False`` for WavLM / BEATs); trim / pad to
    ``int(n_video_frames / fps * 16000)``; zero-pad to a 640 multiple. A resampled file
    with a video length raises :class:`ReferenceSkippedFileError`, as the reference
    fails on it ("tuple index out of range" when padding, "too many indices" when
    trimming) and writes nothing.
    """
    x = to_mono_16k(audio, sr, channel_axis=channel_axis, reference_channels=True)
    if n_video_frames is not None and sr != SAMPLE_RATE:
        target = video_num_samples(n_video_frames, fps, reference_rounding=True)
        what = "tuple index out of range" if target > x.shape[-1] else \
            "too many indices for tensor of dimension 1"
        raise ReferenceSkippedFileError(
            f"the reference skips resampled ({sr} Hz) audio when a video length is given: {what}"
        )
    return prepare_waveform(
        x, n_video_frames=n_video_frames, normalize=normalize, fps=fps, reference_rounding=True
    )
