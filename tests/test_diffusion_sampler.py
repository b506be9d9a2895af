"""EulerEDMSampler: step arithmetic with toy denoisers and replay of the recorded reference runs."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from keysync.diffusion.guidance import AudioRefMultiCondGuider, IdentityGuider, VanillaCFG
from keysync.diffusion.samplers import EulerEDMSampler
from keysync.diffusion.schedules import AYSDiscretization, EDMDiscretization

REF = Path(__file__).parent / "data" / "reference"
KEYS = ("concat", "crossattn", "gt", "masks")


def _sampler(guider=None, **kw):
    return EulerEDMSampler(AYSDiscretization(), guider or IdentityGuider(), num_steps=10, **kw)


@pytest.mark.parametrize("name, guider", [
    ("sampler_keyframe_tiny_audioref", AudioRefMultiCondGuider(5.0, 2.0)),
    ("sampler_keyframe_tiny_cfg2", VanillaCFG(2.0)),
    ("sampler_interpolation_tiny_audioref", AudioRefMultiCondGuider(5.0, 2.0)),
])
def test_replay_recorded_trajectory(name, guider):
    """Feed recorded denoiser outputs (raw for steps 0 and 10, else the guided D repeated per
    pass, which every guider maps back to D): the whole trajectory must match."""
    d = load_file(REF / f"{name}.safetensors")
    c, uc = {k: d["c_" + k] for k in KEYS}, {k: d["uc_" + k] for k in KEYS}
    step = [0]

    def denoiser(x, sigma, cond):
        i = step[0]
        step[0] += 1
        torch.testing.assert_close(sigma, d[f"step{i:02d}_denoiser_in_sigma"], rtol=0, atol=0)
        if f"step{i:02d}_denoiser_out" in d:
            return d[f"step{i:02d}_denoiser_out"]
        return torch.cat([d[f"step{i:02d}_guided_denoised"]] * guider.n_passes)

    noise = d["initial_noise"].clone()
    sampler = _sampler(guider)
    torch.testing.assert_close(sampler.get_sigmas(), d["sampler_sigmas"], rtol=1e-12, atol=0)
    out, inter = sampler(denoiser, noise, cond=c, uc=uc, return_intermediates=True)
    assert step[0] == int(d["n_steps_run"]) == 11 and len(inter["x"]) == 11
    assert torch.equal(noise, d["initial_noise"])  # not modified in place
    for i in range(11):
        xi = d[f"step{i:02d}_x_in"]
        torch.testing.assert_close(inter["x"][i], xi, rtol=0, atol=1e-4 * xi.abs().max().item())
        torch.testing.assert_close(inter["sigma"][i], d[f"step{i:02d}_sigma"], rtol=0, atol=0)
        torch.testing.assert_close(inter["next_sigma"][i], d[f"step{i:02d}_next_sigma"], rtol=0, atol=0)
        torch.testing.assert_close(inter["denoised"][i], d[f"step{i:02d}_guided_denoised"], rtol=0, atol=1e-4)
    torch.testing.assert_close(out, d["final_sample"], rtol=0, atol=1e-3)


def test_euler_arithmetic_with_toy_denoiser():
    """D(x, σ) = a·x: each step is x ← x·(1 + (σ' − σ)(1 − a)/σ)."""
    a = 0.3
    x0 = torch.randn(6, 4, 2, 2, dtype=torch.float64)
    calls = []
    den = lambda x, s, c: calls.append(s.clone()) or a * x  # noqa: E731
    sampler = _sampler()
    out = sampler(den, x0, cond={})
    sigmas = AYSDiscretization()(10)
    expect = x0 * torch.sqrt(1 + sigmas[0] ** 2)
    for i in range(len(sigmas) - 1):
        expect = expect * (1 + (sigmas[i + 1] - sigmas[i]) * (1 - a) / sigmas[i])
    assert len(calls) == 11  # "10 steps" = 11 Euler steps
    assert all(c.shape == (6,) for c in calls)
    torch.testing.assert_close(out, expect)
    # D = const: the last step (σ → 0) returns D exactly up to roundoff
    k = torch.randn(6, 4, 2, 2, dtype=torch.float64)
    torch.testing.assert_close(_sampler()(lambda x, s, c: k.clone(), x0, cond={}), k)


def test_strength_truncation_and_num_steps():
    sampler = _sampler()
    full = sampler.get_sigmas()
    assert len(full) == 12
    half = sampler.get_sigmas(strength=0.5)
    torch.testing.assert_close(half, full[-6:])
    calls = []
    sampler(lambda x, s, c: calls.append(float(s[0])) or x * 0, torch.randn(2, 1, 1, 1), {}, strength=0.5)
    assert len(calls) == 5 and calls[0] == pytest.approx(float(full[6]))
    assert len(sampler.get_sigmas(num_steps=25)) == 26
    with pytest.raises(ValueError):
        sampler.get_sigmas(strength=0.0)
    edm = EulerEDMSampler(EDMDiscretization(), num_steps=4)
    calls.clear()
    edm(lambda x, s, c: calls.append(1) or x * 0, torch.randn(2, 1, 1, 1), {})
    assert len(calls) == 4


def test_churn_determinism_with_generator():
    den = lambda x, s, c: torch.tanh(x / (1 + s.reshape(-1, 1, 1, 1)))  # noqa: E731
    sampler = _sampler(s_churn=5.0, s_tmin=0.01, s_tmax=100.0)
    x = torch.randn(3, 2, 4, 4)
    a = sampler(den, x, {}, generator=torch.Generator().manual_seed(1))
    b = sampler(den, x, {}, generator=torch.Generator().manual_seed(1))
    c = sampler(den, x, {}, generator=torch.Generator().manual_seed(2))
    no_churn = _sampler()(den, x, {})
    assert torch.equal(a, b) and not torch.allclose(a, c) and not torch.allclose(a, no_churn)
    # σ̂ = σ(1+γ) with γ = min(s_churn/(n−1), √2−1) only inside [s_tmin, s_tmax]
    seen = []
    sampler(lambda x, s, c: seen.append(float(s[0])) or x * 0, x, {}, generator=torch.Generator().manual_seed(0))
    sig = AYSDiscretization()(10)
    gamma = min(5.0 / 11, 2**0.5 - 1)
    for s_hat, s in zip(seen, sig[:-1].tolist()):
        assert s_hat == pytest.approx(s * (1 + gamma) if 0.01 <= s <= 100.0 else s, rel=1e-6)


def test_5d_input_and_one_batched_call_per_step():
    """x (B, C, T, h, w); the guider stacks passes into one call; output keeps the 5-D layout."""
    B, T = 2, 3
    x = torch.randn(B, 4, T, 2, 2)
    c = {"crossattn": torch.randn(B, T, 5), "concat": torch.randn(B, 4, 2, 2)}
    uc = {"crossattn": torch.zeros(B, T, 5), "concat": torch.zeros(B, 4, 2, 2)}
    shapes = []

    def den(xb, s, cond):
        shapes.append((tuple(xb.shape), tuple(s.shape), tuple(cond["crossattn"].shape)))
        flat = xb.permute(0, 2, 1, 3, 4).reshape(-1, 4, 2, 2)
        return flat * 0.5

    out = _sampler(AudioRefMultiCondGuider())(den, x, c, uc)
    assert out.shape == x.shape and len(shapes) == 11
    assert shapes[0] == ((3 * B, 4, T, 2, 2), (3 * B,), (3 * B, T, 5))


def test_api_with_denoiser_closure():
    """The call pattern the pipelines use: a closure binding network and kwargs."""
    from keysync.diffusion.denoiser import DenoiserDub

    T = 14
    net = lambda x, cn, c, num_video_frames, image_only_indicator: x * 0.1 + cn.reshape(-1, 1, 1, 1)  # noqa: E731
    den = DenoiserDub()
    gt, masks = torch.randn(1, 4, T, 4, 4), torch.ones(1, 1, T, 4, 4)
    masks[..., :2, :] = 0
    c = {"gt": gt, "masks": masks, "crossattn": torch.randn(1, T, 8), "concat": torch.randn(1, 4, 4, 4)}
    uc = {**c, "crossattn": torch.zeros(1, T, 8), "concat": torch.zeros(1, 4, 4, 4)}
    sampler = _sampler(AudioRefMultiCondGuider(), verbose=True)
    out = sampler(lambda x, s, cc: den(net, x, s, cc, num_video_frames=T, image_only_indicator=torch.zeros(3, T)),
                  torch.randn(T, 4, 4, 4), cond=c, uc=uc)
    gt_flat = gt[0].permute(1, 0, 2, 3)
    torch.testing.assert_close(out[:, :, :2], gt_flat[:, :, :2])
