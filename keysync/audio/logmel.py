"""A weight-free speech feature: log-mel energies aligned to 25 fps video, ``(F, 2, n_mels)``.

Registered beside HuBERT / WavLM (``load_audio_encoder("logmel", None)``,
``keysync precompute audio --model logmel``) for models that must train without downloaded
weights (the bundled demo model). Like the learned encoders it gives two vectors per video
frame, one per 20 ms half: half ``j`` (of frame ``j // 2``) is a 25 ms Hann window centred on
samples ``[320 j, 320 j + 320)``, i.e. centred at sample ``320 j + 160``; audio beyond the ends
counts as silence. Values are ``(log10(mel power + 1e-6) + 3) / 3``: about -1 for digital
silence and 0-1 for speech.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .alignment import SAMPLE_RATE, SAMPLES_PER_FRAME
from .loading import to_mono_16k

__all__ = ["LogMelEncoder", "mel_filterbank"]

HALF = SAMPLES_PER_FRAME // 2  # 320 samples, 20 ms
WINDOW = 400  # 25 ms
N_FFT = 512


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int = N_FFT, sr: int = SAMPLE_RATE, f_min: float = 60.0,
                   f_max: float = 7600.0) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular HTK-mel filters (peak 1)."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / (mid - lo)
    down = (hi - freqs[None]) / (hi - mid)
    return torch.from_numpy(np.clip(np.minimum(up, down), 0.0, None)).float()


class LogMelEncoder:
    """Waveform → ``(F, 2, n_mels)`` float32 log-mel features (see the module docstring)."""

    kind = "logmel"

    def __init__(self, n_mels: int = 32, f_min: float = 60.0, f_max: float = 7600.0):
        self.n_mels = int(n_mels)
        self.filters = mel_filterbank(self.n_mels, f_min=f_min, f_max=f_max)
        self.window = torch.hann_window(WINDOW, dtype=torch.float64)

    @classmethod
    def from_path(cls, path=None, *, device="cpu", dtype=torch.float32, config=None, n_mels: int = 32, **kwargs):
        """No weights: ``path`` is ignored (kept for the common loader signature)."""
        return cls(n_mels=n_mels)

    @property
    def feature_dim(self) -> int:
        return self.n_mels

    def __call__(self, audio, sr: int = SAMPLE_RATE, n_frames: Optional[int] = None, **kwargs) -> torch.Tensor:
        return self.encode(audio, sr, n_frames)

    def encode(self, audio, sr: int = SAMPLE_RATE, n_frames: Optional[int] = None, channel_axis: int = 0,
               **kwargs) -> torch.Tensor:
        """``audio`` at ``sr`` (mono, or channels on ``channel_axis``); ``n_frames`` video frames
        (default ``ceil(samples / 640)``)."""
        wave = to_mono_16k(audio, sr, channel_axis=channel_axis).reshape(-1).double()
        if n_frames is None:
            n_frames = max(1, -(-wave.numel() // SAMPLES_PER_FRAME))
        n_windows = 2 * int(n_frames)
        lead = WINDOW // 2 - HALF // 2  # window j starts at 320 j - 40
        total = lead + HALF * (n_windows - 1) + WINDOW
        padded = torch.zeros(total, dtype=torch.float64)
        body = wave[: total - lead]
        padded[lead: lead + body.numel()] = body
        segments = padded.unfold(0, WINDOW, HALF)[:n_windows] * self.window
        power = torch.fft.rfft(segments, n=N_FFT).abs() ** 2
        mel = power.float() @ self.filters.T
        features = (torch.log10(mel + 1e-6) + 3.0) / 3.0
        return features.reshape(int(n_frames), 2, self.n_mels)
