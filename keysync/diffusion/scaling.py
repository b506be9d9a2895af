"""Denoiser preconditioning (EDM / v-prediction scalings).

Each scaling maps σ to ``(c_skip, c_out, c_in, c_noise)`` so that a denoiser computes
``D(x; σ) = F(c_in·x, c_noise)·c_out + c_skip·x``.

Given σ of shape (N,), ``c_skip``, ``c_out`` and ``c_in`` come back as (N, 1, 1, 1)
(broadcastable against (N, C, H, W)) and ``c_noise`` as (N,), the per-sample value fed
to the network's timestep embedding. A σ that already has trailing singleton dims
(e.g. (N, 1, 1, 1), as the reference passes it) keeps its shape for all four terms.
"""

from __future__ import annotations

from typing import Tuple

import torch

Coeffs = Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _expand(sigma: torch.Tensor) -> torch.Tensor:
    sigma = torch.as_tensor(sigma)
    return sigma.reshape(-1, 1, 1, 1) if sigma.ndim <= 1 else sigma


def _noise_shape(sigma: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
    return c_noise.reshape(-1) if torch.as_tensor(sigma).ndim <= 1 else c_noise


class DenoiserScaling:
    """Base class: subclasses implement `_coeffs` on σ of shape (N, 1, 1, 1)."""

    def _coeffs(self, sigma: torch.Tensor) -> Coeffs:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, sigma: torch.Tensor) -> Coeffs:
        c_skip, c_out, c_in, c_noise = self._coeffs(_expand(sigma))
        return c_skip, c_out, c_in, _noise_shape(sigma, c_noise)


class EDMScaling(DenoiserScaling):
    """Karras et al. (2022) preconditioning with data std `sigma_data`; c_noise = ¼·ln σ."""

    def __init__(self, sigma_data: float = 0.5):
        self.sigma_data = sigma_data

    def _coeffs(self, sigma: torch.Tensor) -> Coeffs:
        sd = self.sigma_data
        c_skip = sd**2 / (sigma**2 + sd**2)
        c_out = sigma * sd / (sigma**2 + sd**2) ** 0.5
        c_in = 1 / (sigma**2 + sd**2) ** 0.5
        c_noise = 0.25 * sigma.log()
        return c_skip, c_out, c_in, c_noise


class EpsScaling(DenoiserScaling):
    """ε-prediction: c_skip = 1, c_out = −σ, c_in = 1/√(σ²+1), c_noise = σ."""

    def _coeffs(self, sigma: torch.Tensor) -> Coeffs:
        c_skip = torch.ones_like(sigma)
        c_out = -sigma
        c_in = 1 / (sigma**2 + 1.0) ** 0.5
        c_noise = sigma.clone()
        return c_skip, c_out, c_in, c_noise


class VScaling(DenoiserScaling):
    """v-prediction (σ_data = 1): c_skip = 1/(σ²+1), c_out = −σ/√(σ²+1), c_in = 1/√(σ²+1), c_noise = σ."""

    def _coeffs(self, sigma: torch.Tensor) -> Coeffs:
        c_skip = 1.0 / (sigma**2 + 1.0)
        c_out = -sigma / (sigma**2 + 1.0) ** 0.5
        c_in = 1.0 / (sigma**2 + 1.0) ** 0.5
        c_noise = sigma.clone()
        return c_skip, c_out, c_in, c_noise


class VScalingWithEDMcNoise(VScaling):
    """v-prediction with the EDM noise conditioning c_noise = ¼·ln σ (KeySync, KeyFace, SVD)."""

    def _coeffs(self, sigma: torch.Tensor) -> Coeffs:
        c_skip, c_out, c_in, _ = super()._coeffs(sigma)
        return c_skip, c_out, c_in, 0.25 * sigma.log()


__all__ = ["DenoiserScaling", "EDMScaling", "EpsScaling", "VScaling", "VScalingWithEDMcNoise"]
