"""Fast mode: DPM-Solver++(2M) over the same denoiser; schedule and convergence order."""

from __future__ import annotations

import math

import pytest
import torch

from keysync.diffusion.samplers import DPMPP2MSampler, EulerEDMSampler, fast_sampler
from keysync.diffusion.schedules import AYSDiscretization, EDMDiscretization
from keysync.models.engine import build_engine
from keysync.pipelines.stages import sample_keyframes

DATA_VAR = 0.25


class PassThrough:
    n_passes = 1

    def prepare_inputs(self, x, sigma, cond, uc):
        return x, sigma, cond

    def __call__(self, out, sigma):
        return out


def gaussian_denoiser(x, sigma, cond):
    """Exact D(x, σ) for data ~ N(0, DATA_VAR): the probability-flow ODE has a closed form."""
    s = sigma.view(-1, *([1] * (x.ndim - 1)))
    return x * DATA_VAR / (DATA_VAR + s**2)


def solve(cls, n):
    sampler = cls(discretization=EDMDiscretization(sigma_min=0.01, sigma_max=5.0), guider=PassThrough(), num_steps=n)
    noise = torch.randn(2000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigmas = sampler.get_sigmas()
    out = sampler(gaussian_denoiser, noise, {}, {})
    x0 = noise * math.sqrt(1 + float(sigmas[0]) ** 2)
    exact = x0 * math.sqrt(DATA_VAR / (DATA_VAR + float(sigmas[0]) ** 2))
    return float((out - exact).norm() / exact.norm())


def test_dpmpp_2m_is_second_order_and_beats_euler():
    e = [solve(EulerEDMSampler, n) for n in (16, 32, 64)]
    d = [solve(DPMPP2MSampler, n) for n in (16, 32, 64)]
    assert all(di < ei / 4 for di, ei in zip(d, e))
    # doubling the steps: Euler's error halves (order 1), 2M's drops about 4x (order 2)
    assert all(1.8 < e[i] / e[i + 1] < 2.2 for i in range(2))
    assert all(d[i] / d[i + 1] > 3.5 for i in range(2))


def test_fast_schedule_keeps_the_reference_range():
    ref = AYSDiscretization()(10)
    fast = AYSDiscretization(min_steps=2)(5)
    assert len(fast) == 6 and float(fast[-1]) == 0.0
    assert torch.isclose(fast[0], ref[0]) and torch.isclose(fast[-2], ref[-2])
    assert (fast[:-1].diff() < 0).all()
    with pytest.raises(ValueError, match="n >= 10"):
        AYSDiscretization()(5)  # the reference schedule still refuses fewer than 10 steps


def test_fast_mode_on_the_keyframe_engine_uses_fewer_calls():
    torch.manual_seed(0)
    engine = build_engine("tiny/keysync_keyframe_inference").eval()
    calls = []
    engine.model.register_forward_pre_hook(lambda m, a, kw: calls.append(a[0].shape[0]), with_kwargs=True)
    h = 16
    inputs = (torch.randn(4, h, h), torch.randn(14, 4, h, h), torch.ones(14, 1, h, h), torch.randn(14, 2, 32),
              torch.randn(14, 4, h, h))
    reference = sample_keyframes(engine, *inputs)
    n_ref = len(calls)
    engine.sampler = fast_sampler(engine.sampler, 5)
    calls.clear()
    fast = sample_keyframes(engine, *inputs)
    assert (n_ref, len(calls)) == (11, 5) and set(calls) == {42}  # 3 guidance passes batched per call
    assert torch.isfinite(fast).all() and fast.shape == reference.shape
