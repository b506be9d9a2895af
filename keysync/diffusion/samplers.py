"""Euler sampler for EDM-parameterised models (Karras et al. 2022, Alg. 2 without Heun).

``sampler(denoiser, noise, cond, uc)`` where ``denoiser(x, σ, cond) -> D`` is a closure
that binds the network and its kwargs, e.g.::

    sampler(lambda x, s, c: denoiser(network, x, s, c, num_video_frames=14,
                                     image_only_indicator=torch.zeros(3, 14)),
            noise, cond=c, uc=uc)

x is (N, C, h, w) (σ per frame) or (B, C, T, h, w) (σ per clip; the denoiser's flattened
(B·T, ...) output is reshaped back).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
import torch
from einops import rearrange

from .guidance import IdentityGuider
from .schedules import AYSDiscretization
from .util import append_dims, build


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return iterable
    return tqdm(iterable, total=total, desc=desc)


class EulerEDMSampler:
    """Euler EDM sampler with optional churn (s_churn, s_tmin, s_tmax, s_noise).

    Step i (σ_i → σ_{i+1}): γ = min(s_churn/(n−1), √2−1) if s_tmin ≤ σ_i ≤ s_tmax else 0,
    σ̂ = σ_i(γ+1), x ← x + √(σ̂²−σ_i²)·s_noise·ε if γ > 0,
    D = guider(denoiser(*guider.prepare_inputs(x, σ̂, cond, uc)), σ̂),
    x ← x + (σ_{i+1} − σ̂)·(x − D)/σ̂. Start: x = noise·√(1+σ_0²).
    `discretization` / `guider` may be objects or reference-style config dicts
    (`discretization_config` / `guider_config` are aliases).
    """

    def __init__(self, discretization: Any = None, guider: Any = None, num_steps: Optional[int] = None,
                 s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0,
                 verbose: bool = False, device: Any = "cpu", discretization_config: Any = None,
                 guider_config: Any = None):
        disc = discretization if discretization is not None else discretization_config
        guid = guider if guider is not None else guider_config
        self.discretization = build(disc) if disc is not None else AYSDiscretization()
        self.guider = build(guid) if guid is not None else IdentityGuider()
        self.num_steps = num_steps
        self.s_churn = s_churn
        self.s_tmin = s_tmin
        self.s_tmax = s_tmax
        self.s_noise = s_noise
        self.verbose = verbose
        self.device = device

    def set_num_steps(self, num_steps: int) -> None:
        self.num_steps = num_steps

    def get_sigmas(self, num_steps: Optional[int] = None, strength: float = 1.0) -> torch.Tensor:
        """Discretization σ's (with the final 0); `strength` < 1 keeps the last int(len·strength)."""
        n = self.num_steps if num_steps is None else num_steps
        if n is None:
            raise ValueError("num_steps is not set")
        sigmas = self.discretization(n, device=self.device)
        if strength != 1.0:
            keep = min(int(len(sigmas) * strength), len(sigmas))
            sigmas = sigmas[max(len(sigmas) - keep, 0):]
        if len(sigmas) == 0:
            raise ValueError(f"strength {strength} leaves no sigmas")
        return sigmas

    def denoise(self, denoiser, x: torch.Tensor, sigma: torch.Tensor, cond: Dict, uc: Dict) -> torch.Tensor:
        """One batched denoiser call for all guidance passes, then the guider combination."""
        out = denoiser(*self.guider.prepare_inputs(x, sigma, cond, uc))
        return self.guider(out, sigma)

    def _gamma(self, sigma: float, num_sigmas: int) -> float:
        if self.s_tmin <= sigma <= self.s_tmax:
            return min(self.s_churn / (num_sigmas - 1), 2**0.5 - 1)
        return 0.0

    def sampler_step(self, sigma, next_sigma, denoiser, x, cond, uc, gamma: float = 0.0, generator=None):
        """One Euler step; σ and next σ are per-sample (x.shape[0],). Returns (x_next, D, x_used)."""
        sigma_hat = sigma * (gamma + 1.0)
        if gamma > 0:
            eps = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device) * self.s_noise
            x = x + eps * append_dims(sigma_hat**2 - sigma**2, x.ndim) ** 0.5
        denoised = self.denoise(denoiser, x, sigma_hat, cond, uc)
        if x.ndim == 5 and denoised.ndim == 4:
            denoised = rearrange(denoised, "(b t) c h w -> b c t h w", b=x.shape[0])
        d = (x - denoised) / append_dims(sigma_hat, x.ndim)
        dt = append_dims(next_sigma - sigma_hat, x.ndim)
        return x + dt * d, denoised, x

    def __call__(self, denoiser, x: torch.Tensor, cond: Dict, uc: Optional[Dict] = None,
                 num_steps: Optional[int] = None, strength: float = 1.0, return_intermediates: bool = False,
                 generator: Optional[torch.Generator] = None):
        """x: unit-variance noise (N, C, h, w) or (B, C, T, h, w), not modified in place.

        Returns the sample, or (sample, intermediates) with lists "x" (x at the start of
        each step), "sigma", "next_sigma" (per-sample σ's) and "denoised" (guided D).
        """
        sigmas = self.get_sigmas(num_steps, strength)
        uc = cond if uc is None else uc
        x = x * torch.sqrt(1.0 + sigmas[0] ** 2.0)
        num_sigmas = len(sigmas)
        s_in = x.new_ones([x.shape[0]])
        inter: Dict[str, list] = {"x": [], "sigma": [], "next_sigma": [], "denoised": []}
        steps = _progress(range(num_sigmas - 1), num_sigmas - 1,
                          f"{type(self).__name__} ({type(self.guider).__name__})", self.verbose)
        for i in steps:
            gamma = self._gamma(float(sigmas[i]), num_sigmas)
            sigma, next_sigma = s_in * sigmas[i], s_in * sigmas[i + 1]
            x_start = x
            x, denoised, _ = self.sampler_step(sigma, next_sigma, denoiser, x, cond, uc, gamma, generator)
            if return_intermediates:
                inter["x"].append(x_start)
                inter["sigma"].append(sigma)
                inter["next_sigma"].append(next_sigma)
                inter["denoised"].append(denoised)
        return (x, inter) if return_intermediates else x


EDMSampler = EulerEDMSampler

__all__ = ["EDMSampler", "EulerEDMSampler"]


class DPMPP2MSampler(EulerEDMSampler):
    """DPM-Solver++(2M) over the same denoiser and guider (fast mode; not in the reference).

    Data-prediction multistep solver in λ = −log σ (Lu et al. 2022): with D_i the guided
    denoiser output at σ_i and h = λ_{i+1} − λ_i,
    x_{i+1} = (σ_{i+1}/σ_i)·x_i − (e^{−h} − 1)·D̃_i, where D̃_i = D_i on the first and the last
    step and D̃_i = (1 + 1/2r)·D_i − (1/2r)·D_{i−1}, r = h_{i−1}/h_i, otherwise. One network call
    per step (all guidance passes batched), second order: 5 steps land closer to the ODE solution
    than 11 Euler steps on the tests' Gaussian case. No churn.
    """

    def __call__(self, denoiser, x: torch.Tensor, cond: Dict, uc: Optional[Dict] = None,
                 num_steps: Optional[int] = None, strength: float = 1.0, return_intermediates: bool = False,
                 generator: Optional[torch.Generator] = None):
        sigmas = self.get_sigmas(num_steps, strength)
        uc = cond if uc is None else uc
        x = x * torch.sqrt(1.0 + sigmas[0] ** 2.0)
        s_in = x.new_ones([x.shape[0]])
        inter: Dict[str, list] = {"x": [], "sigma": [], "next_sigma": [], "denoised": []}
        old_denoised, h_last = None, None
        for i in _progress(range(len(sigmas) - 1), len(sigmas) - 1, type(self).__name__, self.verbose):
            sigma, next_sigma = sigmas[i], sigmas[i + 1]
            denoised = self.denoise(denoiser, x, s_in * sigma, cond, uc)
            if x.ndim == 5 and denoised.ndim == 4:
                denoised = rearrange(denoised, "(b t) c h w -> b c t h w", b=x.shape[0])
            if return_intermediates:
                for key, value in (("x", x), ("sigma", s_in * sigma), ("next_sigma", s_in * next_sigma),
                                   ("denoised", denoised)):
                    inter[key].append(value)
            if float(next_sigma) == 0.0:
                x = denoised
                break
            h = float(torch.log(sigma / next_sigma))
            d = denoised
            if old_denoised is not None:
                r = h_last / h
                d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = float(next_sigma / sigma) * x - float(np.expm1(-h)) * d
            old_denoised, h_last = denoised, h
        return (x, inter) if return_intermediates else x


def fast_sampler(sampler: EulerEDMSampler, num_steps: int = 5) -> DPMPP2MSampler:
    """The fast-mode sampler for an engine's sampler: DPM-Solver++(2M), ``num_steps`` AYS σ's
    (log-linear from the same table), the same guider."""
    return DPMPP2MSampler(discretization=AYSDiscretization(min_steps=2), guider=sampler.guider,
                          num_steps=num_steps, device=sampler.device)


__all__ += ["DPMPP2MSampler", "fast_sampler"]
