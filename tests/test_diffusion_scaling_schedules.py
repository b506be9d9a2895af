"""Scalings, weightings, σ sampling and discretisations against the reference vectors."""

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from keysync.diffusion.losses import EDMSampling, EDMWeighting, EpsWeighting, VWeighting
from keysync.diffusion.samplers import EulerEDMSampler
from keysync.diffusion.scaling import EDMScaling, EpsScaling, VScaling, VScalingWithEDMcNoise
from keysync.diffusion.schedules import AYSDiscretization, EDMDiscretization, get_discretization
from keysync.diffusion.util import build

REF = Path(__file__).parent / "data" / "reference"


@pytest.fixture(scope="module")
def ref():
    return load_file(REF / "scaling_discretization.safetensors")


def test_vscaling_edm_cnoise_matches_reference(ref):
    sigma = ref["sigma"]
    c_skip, c_out, c_in, c_noise = VScalingWithEDMcNoise()(sigma)
    assert c_skip.shape == (47, 1, 1, 1) and c_noise.shape == (47,)
    for name, got in [("c_skip", c_skip), ("c_out", c_out), ("c_in", c_in), ("c_noise", c_noise)]:
        assert got.dtype == torch.float32
        torch.testing.assert_close(got.reshape(-1), ref[name], rtol=1e-6, atol=0)
    # the reference calls it on σ of shape (N, 1, 1, 1): shapes are kept
    c = VScalingWithEDMcNoise()(sigma.reshape(-1, 1, 1, 1))
    assert all(t.shape == (47, 1, 1, 1) for t in c)
    torch.testing.assert_close(c[3].reshape(-1), ref["c_noise"], rtol=1e-6, atol=0)


def test_other_scalings_formulas():
    s = torch.tensor([0.01, 0.5, 1.0, 3.0, 80.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = EDMScaling(sigma_data=0.5)(s)
    torch.testing.assert_close(c_skip.reshape(-1), 0.25 / (s**2 + 0.25))
    torch.testing.assert_close(c_out.reshape(-1), s * 0.5 / (s**2 + 0.25).sqrt())
    torch.testing.assert_close(c_in.reshape(-1), 1 / (s**2 + 0.25).sqrt())
    torch.testing.assert_close(c_noise, 0.25 * s.log())
    c_skip, c_out, c_in, c_noise = EpsScaling()(s)
    torch.testing.assert_close(c_skip.reshape(-1), torch.ones_like(s))
    torch.testing.assert_close(c_out.reshape(-1), -s)
    torch.testing.assert_close(c_noise, s)
    v = VScaling()(s)
    vn = VScalingWithEDMcNoise()(s)
    for a, b in zip(v[:3], vn[:3]):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(v[3], s)
    # with x = x0 + σε and the v-target F = (ε − σ x0)/√(σ²+1), D = c_skip·x + c_out·F recovers x0
    x0, eps = torch.randn(5, 2, 3, 3, dtype=torch.float64), torch.randn(5, 2, 3, 3, dtype=torch.float64)
    sb = s.reshape(-1, 1, 1, 1)
    x = x0 + sb * eps
    v_target = (eps - sb * x0) / (sb**2 + 1).sqrt()
    torch.testing.assert_close(vn[0] * x + vn[1] * v_target, x0)


def test_weightings_and_edm_sampling(ref):
    torch.testing.assert_close(VWeighting()(ref["sigma"]), ref["vweighting"], rtol=1e-6, atol=0)
    torch.testing.assert_close(EDMWeighting(1.0)(ref["sigma"]), ref["vweighting"], rtol=1e-6, atol=0)
    s = torch.tensor([0.5, 2.0])
    torch.testing.assert_close(EpsWeighting()(s), s**-2)
    got = EDMSampling(p_mean=1.0, p_std=1.2)(13, rand=ref["edm_sampling_rand"])
    torch.testing.assert_close(got, ref["edm_sampling_sigma"], rtol=1e-6, atol=0)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = EDMSampling()(1000, generator=g1), EDMSampling()(1000, generator=g2)
    assert torch.equal(a, b) and a.shape == (1000,)
    assert abs(a.log().mean().item() - 1.0) < 0.15 and abs(a.log().std().item() - 1.2) < 0.15


def test_ays_matches_reference(ref):
    disc = AYSDiscretization()
    for n, m in [(10, 11), (25, 25)]:
        got = disc.get_sigmas(n)
        assert got.dtype == torch.float64 and got.shape == (m,)
        torch.testing.assert_close(got, ref[f"ays_get_sigmas_n{n}"], rtol=1e-12, atol=0)
        full = disc(n)
        assert full.dtype == torch.float64 and full[-1] == 0
        torch.testing.assert_close(full, ref[f"ays_sampler_sigmas_n{n}"], rtol=1e-12, atol=0)
    np.testing.assert_array_equal(disc.get_sigmas(10).numpy(),
                                  [700.00, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.002])
    torch.testing.assert_close(disc(10, do_append_zero=False), ref["ays_get_sigmas_n10"], rtol=0, atol=0)
    torch.testing.assert_close(disc(10, flip=True), ref["ays_sampler_sigmas_n10"].flip(0), rtol=0, atol=0)
    with pytest.raises(ValueError, match="n >= 10"):
        disc.get_sigmas(9)


def test_edm_discretization():
    disc = EDMDiscretization()
    s = disc(5)
    assert s.dtype == torch.float32 and s.shape == (6,) and s[-1] == 0
    torch.testing.assert_close(s[0], torch.tensor(80.0))
    torch.testing.assert_close(s[4], torch.tensor(0.002))
    ramp = torch.linspace(0, 1, 5, dtype=torch.float64)
    expect = (80 ** (1 / 7) + ramp * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    torch.testing.assert_close(s[:5].double(), expect, rtol=1e-6, atol=0)
    assert torch.all(s[:-1][1:] < s[:-1][:-1])
    assert isinstance(get_discretization("edm"), EDMDiscretization)
    with pytest.raises(ValueError):
        get_discretization("nope")


def test_build_from_reference_config_dicts():
    sampler = EulerEDMSampler(
        num_steps=10,
        discretization_config={"target": "sgm.modules.diffusionmodules.discretizer.AYSDiscretization"},
        guider_config={"target": "sgm.modules.diffusionmodules.guiders.AudioRefMultiCondGuider",
                       "params": {"audio_ratio": 5.0, "ref_ratio": 2.0}},
    )
    assert isinstance(sampler.discretization, AYSDiscretization)
    assert sampler.guider.audio_ratio == 5.0 and sampler.guider.ref_ratio == 2.0
    den = build({"target": "sgm.modules.diffusionmodules.denoiser.DenoiserDub",
                 "params": {"scaling_config": {"target": "sgm.modules.diffusionmodules.denoiser_scaling."
                                                         "VScalingWithEDMcNoise"}}})
    assert type(den).__name__ == "DenoiserDub" and isinstance(den.scaling, VScalingWithEDMcNoise) and den.mask_input
    loss = build({"target": "sgm.modules.diffusionmodules.loss.StandardDiffusionLoss",
                  "params": {"weight_pixel": 1, "n_frames_pixel": 1, "what_pixel_losses": ["l2"], "lambda_lower": 1,
                             "batch2model_keys": ["image_only_indicator", "num_video_frames"],
                             "loss_weighting_config": {"target": "sgm.modules.diffusionmodules.loss_weighting.VWeighting"},
                             "sigma_sampler_config": {"target": "sgm.modules.diffusionmodules.sigma_sampling.EDMSampling",
                                                      "params": {"p_mean": 1.0, "p_std": 1.2}}}})
    assert isinstance(loss.sigma_sampler, EDMSampling) and isinstance(loss.loss_weighting, VWeighting)
    sc = build({"_target_": "keysync.diffusion.scaling.EDMScaling", "sigma_data": 1.0})
    assert isinstance(sc, EDMScaling) and sc.sigma_data == 1.0
    with pytest.raises(ValueError):
        build({"target": "sgm.nothing.Missing"})
