"""Kaldi-compatible log-mel filterbank without torchaudio (BEATs input features).

Re-derives ``torchaudio.compliance.kaldi.fbank`` for its default options (which is
what BEATs calls, with ``num_mel_bins=128``, ``frame_length=25``, ``frame_shift=10``):

1. frames of ``int(sr * 25 ms) = 400`` samples every ``int(sr * 10 ms) = 160``, only
   frames that fit completely (``snip_edges``): ``1 + (N - 400) // 160`` frames;
2. per frame: subtract the frame mean (DC removal), pre-emphasis
   ``x[j] - 0.97 x[max(j-1, 0)]``, multiply by the Povey window
   (``hann(400, periodic=False) ** 0.85``), zero-pad to 512 (next power of two);
3. power spectrum ``|rfft|^2`` (257 bins);
4. triangular mel filters (Kaldi mel scale ``1127 ln(1 + f / 700)``) from 20 Hz to
   Nyquist, equally spaced in mel with ``num_mel_bins + 1`` steps, evaluated at the
   bin frequencies ``k * sr / 512`` for ``k < 256`` (the Nyquist bin gets weight 0);
5. ``log(max(energy, float32 eps))``.

Dither is 0 (deterministic); the energy column is not produced (``use_energy=False``).
The filter bank is computed in float32 as torchaudio does, so values agree to float32
rounding.
"""

from __future__ import annotations

import math

import torch

__all__ = ["kaldi_fbank", "kaldi_mel_banks"]

_EPS = torch.finfo(torch.float32).eps


def _mel(f):
    return 1127.0 * torch.log(1.0 + f / 700.0) if isinstance(f, torch.Tensor) \
        else 1127.0 * math.log(1.0 + f / 700.0)


def kaldi_mel_banks(
    num_bins: int, padded_window: int, sample_frequency: float, low_freq: float = 20.0,
    high_freq: float = 0.0,
) -> torch.Tensor:
    """Triangular mel filters ``(num_bins, padded_window // 2)`` (no VTLN warping)."""
    if num_bins <= 3:
        raise ValueError("need more than 3 mel bins")
    nyquist = 0.5 * sample_frequency
    if high_freq <= 0.0:
        high_freq += nyquist
    if not (0.0 <= low_freq < nyquist and 0.0 < high_freq <= nyquist and low_freq < high_freq):
        raise ValueError(f"bad mel range low={low_freq} high={high_freq} (nyquist {nyquist})")
    bin_width = sample_frequency / padded_window
    mel_lo, mel_hi = _mel(low_freq), _mel(high_freq)
    delta = (mel_hi - mel_lo) / (num_bins + 1)
    b = torch.arange(num_bins).unsqueeze(1)
    left = mel_lo + b * delta
    center = mel_lo + (b + 1.0) * delta
    right = mel_lo + (b + 2.0) * delta
    mel = _mel(bin_width * torch.arange(padded_window / 2)).unsqueeze(0)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    return torch.max(torch.zeros(1), torch.min(up, down))


def kaldi_fbank(
    waveform: torch.Tensor,
    num_mel_bins: int = 23,
    sample_frequency: float = 16000.0,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    preemphasis_coefficient: float = 0.97,
    remove_dc_offset: bool = True,
    round_to_power_of_two: bool = True,
) -> torch.Tensor:
    """Log-mel filterbank ``(frames, num_mel_bins)`` of a mono waveform ``(N,)`` or
    ``(1, N)``, matching ``torchaudio.compliance.kaldi.fbank`` with default options.

    The waveform is used as given: Kaldi / BEATs expect int16-scaled samples (multiply
    [-1, 1] audio by 2**15 first).
    """
    x = waveform.reshape(-1) if waveform.ndim == 2 and waveform.shape[0] == 1 else waveform
    if x.ndim != 1:
        raise ValueError(f"expected a mono waveform, got shape {tuple(waveform.shape)}")
    dtype, device = x.dtype, x.device
    shift = int(sample_frequency * frame_shift * 0.001)
    size = int(sample_frequency * frame_length * 0.001)
    padded = 1 << (size - 1).bit_length() if round_to_power_of_two else size
    if not 2 <= size <= x.shape[0]:
        raise ValueError(f"waveform of {x.shape[0]} samples is shorter than one {size}-sample frame")
    n = 1 + (x.shape[0] - size) // shift
    frames = x.as_strided((n, size), (shift * x.stride(0), x.stride(0)))
    if remove_dc_offset:
        frames = frames - frames.mean(dim=1, keepdim=True)
    if preemphasis_coefficient != 0.0:
        prev = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
        frames = frames - preemphasis_coefficient * prev
    window = torch.hann_window(size, periodic=False, device=device, dtype=dtype).pow(0.85)
    frames = frames * window.unsqueeze(0)
    if padded != size:
        frames = torch.nn.functional.pad(frames, (0, padded - size))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    banks = kaldi_mel_banks(num_mel_bins, padded, sample_frequency, low_freq, high_freq)
    banks = torch.nn.functional.pad(banks.to(device=device, dtype=dtype), (0, 1))
    energies = torch.mm(power, banks.T)
    return torch.max(energies, torch.tensor(_EPS, device=device, dtype=dtype)).log()
