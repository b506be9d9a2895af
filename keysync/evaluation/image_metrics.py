"""Reconstruction metrics between a generated video and its ground truth: PSNR and SSIM.

Frames are uint8 RGB (N, H, W, 3) (``keysync.media.read_video`` order) or float arrays on the
same 0..255 scale; pred and gt must have the same shape (the runner cuts both to the shorter
length first).

* :func:`psnr_frames`: per-frame ``10 log10(255^2 / MSE)`` over all pixels and channels,
  (N,) float64. A frame identical to its target has MSE 0 and PSNR +inf; it is reported as
  :data:`PSNR_CAP` (100 dB) so that means stay finite -- the cap is far above any real
  reconstruction (8-bit rounding noise alone gives ~59 dB).
* :func:`ssim_frames`: Wang et al. (2004) SSIM per frame, (N,) float64: 11x11 Gaussian window
  (sigma 1.5), K1 0.01, K2 0.03, data range 255, population covariances, computed per RGB
  channel on the "valid" region (no padding) and averaged. Identical to
  ``skimage.metrics.structural_similarity(a, b, channel_axis=-1, gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=255)``. 1.0 for identical frames.

Both are higher-is-better; the per-video value is the mean over frames.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["PSNR_CAP", "psnr_frames", "ssim_frames", "gaussian_window"]

PSNR_CAP = 100.0


def _pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must have the same shape")
    if pred.ndim == 3:
        pred, gt = pred[None], gt[None]
    if pred.ndim != 4:
        raise ValueError(f"expected frames (N, H, W, C), got shape {pred.shape}")
    return pred, gt


def psnr_frames(pred, gt, data_range: float = 255.0, cap: float | None = PSNR_CAP) -> np.ndarray:
    """PSNR in dB of each frame, (N,) float64; ``cap`` replaces +inf (None keeps inf)."""
    pred, gt = _pair(pred, gt)
    diff = pred.astype(np.float64) - gt.astype(np.float64)
    mse = np.mean(diff.reshape(diff.shape[0], -1) ** 2, axis=1)
    with np.errstate(divide="ignore"):
        psnr = 10.0 * np.log10(data_range ** 2 / mse)
    if cap is not None:
        psnr = np.minimum(psnr, cap)
    return psnr


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 1-D Gaussian, (size,) float64."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim_frames(pred, gt, data_range: float = 255.0, win_size: int = 11, sigma: float = 1.5,
                k1: float = 0.01, k2: float = 0.03, chunk: int = 16) -> np.ndarray:
    """Mean SSIM of each frame over its channels, (N,) float64 (see module docstring)."""
    pred, gt = _pair(pred, gt)
    n, h, w, c = pred.shape
    if h < win_size or w < win_size:
        raise ValueError(f"frames {h}x{w} are smaller than the SSIM window {win_size}")
    g = gaussian_window(win_size, sigma)
    kx = g.view(1, 1, 1, win_size).repeat(c, 1, 1, 1)
    ky = g.view(1, 1, win_size, 1).repeat(c, 1, 1, 1)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, kx, groups=c), ky, groups=c)

    out = []
    for s in range(0, n, chunk):
        a = torch.from_numpy(pred[s:s + chunk].astype(np.float64)).permute(0, 3, 1, 2)
        b = torch.from_numpy(gt[s:s + chunk].astype(np.float64)).permute(0, 3, 1, 2)
        mu_a, mu_b = blur(a), blur(b)
        var_a = blur(a * a) - mu_a ** 2
        var_b = blur(b * b) - mu_b ** 2
        cov = blur(a * b) - mu_a * mu_b
        ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
        out.append(ssim_map.mean(dim=(1, 2, 3)).numpy())
    return np.concatenate(out)
