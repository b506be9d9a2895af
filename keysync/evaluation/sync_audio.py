"""SyncNet audio features: MFCC exactly as ``python_speech_features.mfcc`` computes them.

syncnet_python reads the 16 kHz mono track with ``scipy.io.wavfile`` (int16 sample values,
not scaled to [-1, 1]) and calls ``python_speech_features.mfcc(audio, 16000)`` with its
defaults, re-implemented here in numpy (no extra dependency):

* pre-emphasis 0.97 (``[x0, x1 - 0.97 x0, ...]``);
* frames of 400 samples every 160 (25 ms / 10 ms; 100 frames per second), rectangular window,
  the last frame zero-padded: ``1 + ceil((n - 400) / 160)`` frames;
* power spectrum ``|rfft(frame, 512)|^2 / 512``; frame energy = its sum;
* 26 triangular mel filters on 0..8000 Hz (bins ``floor(513 * mel2hz(points) / 16000)``),
  zeros replaced by machine eps, log;
* DCT-II (orthonormal), first 13 coefficients, sinusoidal lifter L = 22;
* coefficient 0 replaced by log(frame energy).

:func:`mfcc_for_syncnet` takes float audio in [-1, 1] (``keysync.media.read_audio``) and
scales it to int16 values first. Output (13, M) float64: SyncNet's audio input layout.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["mfcc", "mfcc_for_syncnet", "mel_filterbank", "MFCC_PER_VIDEO_FRAME"]

#: 100 MFCC frames per second / 25 video frames per second.
MFCC_PER_VIDEO_FRAME = 4
_EPS = np.finfo(float).eps


def _hz2mel(hz):
    return 2595 * np.log10(1 + hz / 700.0)


def _mel2hz(mel):
    return 700 * (10 ** (mel / 2595.0) - 1)


def mel_filterbank(nfilt: int = 26, nfft: int = 512, samplerate: int = 16000, lowfreq: float = 0,
                   highfreq: float | None = None) -> np.ndarray:
    """(nfilt, nfft // 2 + 1) triangular filters (python_speech_features ``get_filterbanks``)."""
    highfreq = highfreq or samplerate / 2
    melpoints = np.linspace(_hz2mel(lowfreq), _hz2mel(highfreq), nfilt + 2)
    bins = np.floor((nfft + 1) * _mel2hz(melpoints) / samplerate)
    fbank = np.zeros([nfilt, nfft // 2 + 1])
    for j in range(nfilt):
        for i in range(int(bins[j]), int(bins[j + 1])):
            fbank[j, i] = (i - bins[j]) / (bins[j + 1] - bins[j])
        for i in range(int(bins[j + 1]), int(bins[j + 2])):
            fbank[j, i] = (bins[j + 2] - i) / (bins[j + 2] - bins[j + 1])
    return fbank


def _dct2_ortho(x: np.ndarray) -> np.ndarray:
    n = x.shape[-1]
    k = np.arange(n)[:, None]
    basis = np.cos(np.pi * k * (2 * np.arange(n)[None, :] + 1) / (2 * n)) * 2
    scale = np.full(n, math.sqrt(1 / (2 * n)))
    scale[0] = math.sqrt(1 / (4 * n))
    return (x @ basis.T) * scale


def mfcc(signal: np.ndarray, samplerate: int = 16000, winlen: float = 0.025, winstep: float = 0.01,
         numcep: int = 13, nfilt: int = 26, nfft: int | None = None, preemph: float = 0.97,
         ceplifter: int = 22) -> np.ndarray:
    """MFCC (num_frames, numcep) float64 of a 1-D signal (see module docstring)."""
    signal = np.asarray(signal)
    if signal.ndim != 1 or len(signal) == 0:
        raise ValueError(f"expected a non-empty 1-D signal, got shape {signal.shape}")
    if nfft is None:
        nfft = 1
        while nfft < winlen * samplerate:
            nfft *= 2
    emphasised = np.append(signal[0], signal[1:] - preemph * signal[:-1]).astype(np.float64)
    frame_len = int(math.floor(winlen * samplerate + 0.5))
    frame_step = int(math.floor(winstep * samplerate + 0.5))
    n = len(emphasised)
    num_frames = 1 if n <= frame_len else 1 + int(math.ceil((1.0 * n - frame_len) / frame_step))
    padded = np.concatenate([emphasised, np.zeros(int((num_frames - 1) * frame_step + frame_len) - n)])
    idx = np.arange(frame_len)[None, :] + frame_step * np.arange(num_frames)[:, None]
    frames = padded[idx]
    pspec = np.square(np.abs(np.fft.rfft(frames, nfft))) / nfft
    energy = pspec.sum(axis=1)
    energy = np.where(energy == 0, _EPS, energy)
    feat = pspec @ mel_filterbank(nfilt, nfft, samplerate).T
    feat = np.where(feat == 0, _EPS, feat)
    ceps = _dct2_ortho(np.log(feat))[:, :numcep]
    if ceplifter > 0:
        ceps = ceps * (1 + (ceplifter / 2.0) * np.sin(np.pi * np.arange(numcep) / ceplifter))
    ceps[:, 0] = np.log(energy)
    return ceps


def mfcc_for_syncnet(audio: np.ndarray, samplerate: int = 16000) -> np.ndarray:
    """Float audio in [-1, 1] -> SyncNet MFCC (13, M): scaled to int16 values as
    ``scipy.io.wavfile`` would read them."""
    ints = np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32768.0), -32768, 32767)
    return mfcc(ints, samplerate).T
