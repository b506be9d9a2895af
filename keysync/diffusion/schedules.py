"""Noise-level discretisations (σ schedules) for the samplers.

``disc(n)`` returns the σ's in decreasing order with a trailing 0 appended (default),
which is what `EulerEDMSampler` walks through: ``len(sigmas) - 1`` Euler steps.
"""

from __future__ import annotations

import numpy as np
import torch

# Align-Your-Steps table for SVD-style EDM models (σ_max = 700 … σ_min = 0.002).
AYS_BASE_SIGMAS = (700.00, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.002)


class Discretization:
    """Base class: subclasses implement `get_sigmas(n, device)` (decreasing σ's)."""

    def get_sigmas(self, n: int, device=None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def __call__(self, n: int, do_append_zero: bool = True, device=None, flip: bool = False) -> torch.Tensor:
        sigmas = self.get_sigmas(n, device=device)
        if do_append_zero:
            sigmas = torch.cat([sigmas, sigmas.new_zeros(1)])
        return torch.flip(sigmas, (0,)) if flip else sigmas


class EDMDiscretization(Discretization):
    """Karras ρ-schedule: σ_i = (σ_max^{1/ρ} + i/(n−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, float32, n values."""

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0):
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max
        self.rho = rho

    def get_sigmas(self, n: int, device=None) -> torch.Tensor:
        ramp = torch.linspace(0, 1, n, device=device)
        min_inv_rho = self.sigma_min ** (1 / self.rho)
        max_inv_rho = self.sigma_max ** (1 / self.rho)
        return (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** self.rho


def loglinear_interp(t_steps: np.ndarray, num_steps: int) -> np.ndarray:
    """Resample a decreasing array to `num_steps` points, linearly in log space."""
    xs = np.linspace(0, 1, len(t_steps))
    ys = np.log(np.asarray(t_steps, dtype=np.float64)[::-1])
    new_ys = np.interp(np.linspace(0, 1, num_steps), xs, ys)
    return np.exp(new_ys)[::-1].copy()


class AYSDiscretization(Discretization):
    """Align-Your-Steps σ's (float64).

    n == 10 returns the 11 table values unchanged (so "10 steps" means 11 Euler steps
    once 0 is appended); n > 10 returns n values log-linearly interpolated from the
    table (reference quirk: n = 10 gives 11 σ's, n = 11 also gives 11); n < 10 is an error.
    """

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 700.0, min_steps: int = 10):
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max
        self.min_steps = min_steps
        self.base_sigmas = np.array(AYS_BASE_SIGMAS, dtype=np.float64)

    def get_sigmas(self, n: int, device=None) -> torch.Tensor:
        """``min_steps`` (10, the reference) guards n; fast mode lowers it to get n < 10 σ's
        log-linearly interpolated from the same table (same σ_max and σ_min)."""
        if n < self.min_steps or n < 2:
            raise ValueError(f"AYSDiscretization needs n >= {max(self.min_steps, 2)} steps, got {n}")
        sigmas = loglinear_interp(self.base_sigmas, n) if n != 10 else self.base_sigmas.copy()
        out = torch.from_numpy(sigmas)
        return out.to(device) if device is not None else out


def get_discretization(name: str, **kwargs) -> Discretization:
    """Build a discretization by short name ("ays" or "edm")."""
    table = {"ays": AYSDiscretization, "edm": EDMDiscretization}
    try:
        return table[name.lower()](**kwargs)
    except KeyError as e:
        raise ValueError(f"unknown discretization {name!r}; choose from {sorted(table)}") from e


__all__ = ["AYS_BASE_SIGMAS", "AYSDiscretization", "Discretization", "EDMDiscretization",
           "get_discretization", "loglinear_interp"]
