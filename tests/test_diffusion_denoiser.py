"""Denoisers: scaling arithmetic, KeySync masking, chunked evaluation, multi-diffusion, autoguidance."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from keysync.diffusion.denoiser import (Denoiser, DenoiserDub, KarrasTemporalMultiDiffusion,
                                        TemporalMultiDiffusionDenoiser, average_segment_overlaps)
from keysync.diffusion.guidance import AudioRefMultiCondGuider, VanillaCFG
from keysync.diffusion.scaling import VScalingWithEDMcNoise

REF = Path(__file__).parent / "data" / "reference"
T = 14


class ToyNet(torch.nn.Module):
    """F depends on x, c_noise, per-clip cond (concat, crossattn), per-frame cond (vector),
    image_only_indicator and a mean over each clip's frames (so clip boundaries matter)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, c_noise, cond, num_video_frames=None, image_only_indicator=None):
        n, t = x.shape[0], num_video_frames
        clips = n // t
        assert cond["concat"].shape[0] == clips and cond["crossattn"].shape[0] == clips
        assert cond["vector"].shape[0] == n and image_only_indicator.shape == (clips, t)
        self.calls.append(n)
        concat = cond["concat"].repeat_interleave(t, 0)
        ctx = cond["crossattn"].reshape(n, -1).mean(1).reshape(n, 1, 1, 1)
        clip_mean = x.reshape(clips, t, *x.shape[1:]).mean(1, keepdim=True).expand(clips, t, *x.shape[1:])
        out = torch.tanh(x) * 1.5 + concat[:, : x.shape[1]] * 0.3 + ctx + clip_mean.reshape(x.shape) * 0.7
        out = out + c_noise.reshape(n, 1, 1, 1) + cond["vector"].sum(1).reshape(n, 1, 1, 1) * 0.1
        return out + image_only_indicator.reshape(n, 1, 1, 1)


def _cond(clips, gen, h=4):
    return {
        "concat": torch.randn(clips, 4, h, h, generator=gen),
        "crossattn": torch.randn(clips, T, 8, generator=gen),
        "vector": torch.randn(clips * T, 3, generator=gen),
        "gt": torch.randn(clips, 4, T, h, h, generator=gen),
        "masks": (torch.rand(clips, 1, T, h, h, generator=gen) > 0.5).float(),
    }


def test_plain_denoiser_formula():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2 * T, 4, 4, 4, generator=gen, dtype=torch.float64)
    sigma = torch.rand(2 * T, generator=gen, dtype=torch.float64) * 10 + 0.1
    net = lambda xi, cn, c, **kw: xi * 3.0 + cn.reshape(-1, 1, 1, 1)  # noqa: E731
    got = Denoiser(VScalingWithEDMcNoise())(net, x, sigma, {})
    s = sigma.reshape(-1, 1, 1, 1)
    c_in = 1 / (s**2 + 1).sqrt()
    expect = (x * c_in * 3.0 + 0.25 * s.log()) * (-s / (s**2 + 1).sqrt()) + x / (s**2 + 1)
    torch.testing.assert_close(got, expect)


def test_5d_input_and_per_clip_sigma():
    gen = torch.Generator().manual_seed(1)
    x5 = torch.randn(2, 4, T, 4, 4, generator=gen)
    sigma = torch.tensor([0.5, 7.0])
    net = lambda xi, cn, c, **kw: torch.sin(xi) + cn.reshape(-1, 1, 1, 1)  # noqa: E731
    den = Denoiser()
    out5 = den(net, x5, sigma, {})
    x4 = x5.permute(0, 2, 1, 3, 4).reshape(2 * T, 4, 4, 4)
    out4 = den(net, x4, sigma.repeat_interleave(T), {})
    assert out5.shape == (2 * T, 4, 4, 4)
    torch.testing.assert_close(out5, out4, rtol=0, atol=0)
    with pytest.raises(ValueError):
        den(net, x4, torch.ones(3), {})


def test_dub_masking_output_equals_gt_outside_mask():
    gen = torch.Generator().manual_seed(2)
    clips = 2
    cond = _cond(clips, gen)
    x = torch.randn(clips * T, 4, 4, 4, generator=gen) * 5
    sigma = torch.full((clips * T,), 3.0)
    seen = {}

    def net(xi, cn, c, **kw):
        seen["x_in"] = xi
        return torch.randn(xi.shape, generator=gen)

    out = DenoiserDub(VScalingWithEDMcNoise())(net, x, sigma, cond)
    gt = cond["gt"].permute(0, 2, 1, 3, 4).reshape(clips * T, 4, 4, 4)
    m = cond["masks"].permute(0, 2, 1, 3, 4).reshape(clips * T, 1, 4, 4).expand_as(gt)
    assert torch.equal(out[m == 0], gt[m == 0])
    assert not torch.allclose(out[m == 1], gt[m == 1])
    c_in = 1 / (3.0**2 + 1) ** 0.5
    torch.testing.assert_close(seen["x_in"][m == 0], gt[m == 0] * c_in)  # clean gt fed outside
    torch.testing.assert_close(seen["x_in"][m == 1], x[m == 1] * c_in)
    # mask_input=False: noisy input reaches the network but the output is still blended
    DenoiserDub(mask_input=False)(net, x, sigma, cond)
    torch.testing.assert_close(seen["x_in"], x * c_in)
    with pytest.raises(ValueError, match="gt"):
        DenoiserDub()(net, x, sigma, {"gt": cond["gt"]})


@pytest.mark.parametrize("name, guider, kwargs", [
    ("sampler_keyframe_tiny_audioref", AudioRefMultiCondGuider(5.0, 2.0), {}),
    ("sampler_keyframe_tiny_cfg2", VanillaCFG(2.0), {}),
    ("sampler_interpolation_tiny_audioref", AudioRefMultiCondGuider(5.0, 2.0),
     dict(num_overlap_frames=1, num_frames=14, n_skips=3, chunk_size=28)),
])
def test_dub_denoiser_reproduces_recorded_step00(name, guider, kwargs):
    """Feed the recorded raw UNet output: network input, c_noise and D must match the recording."""
    d = load_file(REF / f"{name}.safetensors")
    keys = ("concat", "crossattn", "gt", "masks")
    c, uc = {k: d["c_" + k] for k in keys}, {k: d["uc_" + k] for k in keys}
    x, s, cb = guider.prepare_inputs(d["step00_x_in"], d["step00_sigma"], c, uc)
    calls = []

    def net(xi, cn, cond, num_video_frames=None, image_only_indicator=None):
        calls.append((xi, cn, cond, image_only_indicator))
        return d["step00_unet_out"] if len(calls) == 1 else torch.zeros_like(xi)

    n_ioi = guider.n_passes * c["concat"].shape[0]
    out = DenoiserDub(VScalingWithEDMcNoise())(net, x, s, cb, num_video_frames=14,
                                               image_only_indicator=torch.zeros(n_ioi, 14), **kwargs)
    xi, cn, cond, ioi = calls[0]
    n = xi.shape[0]
    assert len(calls) == (3 if kwargs else 1)
    torch.testing.assert_close(xi, d["step00_unet_in_x"][:, :4], rtol=0, atol=1e-5)
    torch.testing.assert_close(cn, d["step00_unet_in_timesteps"], rtol=1e-6, atol=0)
    torch.testing.assert_close(cond["crossattn"], d["step00_unet_in_context"], rtol=0, atol=0)
    assert ioi.shape == d["step00_unet_in_image_only_indicator"].shape
    torch.testing.assert_close(out[:n], d["step00_denoiser_out"][:n], rtol=0, atol=1e-4)


@pytest.mark.parametrize("chunk_size", [14, 28, 42])
def test_chunked_equals_unchunked(chunk_size):
    gen = torch.Generator().manual_seed(3)
    clips = 3
    cond = _cond(clips, gen)
    x = torch.randn(clips * T, 4, 4, 4, generator=gen)
    sigma = torch.rand(clips * T, generator=gen) * 5 + 0.1
    kw = dict(num_video_frames=T, image_only_indicator=torch.randn(clips, T, generator=gen))
    net = ToyNet()
    den = DenoiserDub()
    full = den(net, x, sigma, cond, **kw)
    chunked = den(net, x, sigma, cond, chunk_size=chunk_size, num_frames=T, **kw)
    assert net.calls == [clips * T] + [min(chunk_size, clips * T - i) for i in range(0, clips * T, chunk_size)]
    torch.testing.assert_close(chunked, full, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="multiple"):
        den(net, x, sigma, cond, chunk_size=20, num_frames=T, **kw)


def test_overlap_averaging():
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2 * 3 * 4, 1, 1, 1)  # 2 groups × 3 segments × 4 frames
    y = average_segment_overlaps(x, num_frames=4, num_overlap_frames=1, n_groups=2).reshape(2, 3, 4)
    v = x.reshape(2, 3, 4)
    for g in range(2):
        for s in range(2):
            avg = (v[g, s, -1] + v[g, s + 1, 0]) / 2
            assert y[g, s, -1] == avg and y[g, s + 1, 0] == avg
        assert torch.equal(y[g, :, 1:3], v[g, :, 1:3])
    assert torch.equal(y[0, 2, -1], v[0, 2, -1]) and torch.equal(y[1, 0, 0], v[1, 0, 0])  # no cross-group mixing
    assert torch.equal(x.reshape(2, 3, 4), v)  # input untouched

    # denoiser level: default = reference behaviour (no averaging); opt-in averages the input
    seen = []
    net = lambda xi, cn, c, **kw: seen.append(xi) or torch.zeros_like(xi)  # noqa: E731
    xs = torch.randn(2 * T, 4, 2, 2)
    TemporalMultiDiffusionDenoiser()(net, xs, torch.ones(2 * T), {}, num_overlap_frames=1, num_frames=T, n_skips=1)
    torch.testing.assert_close(seen[-1], xs / 2**0.5)
    TemporalMultiDiffusionDenoiser(average_overlap=True)(net, xs, torch.ones(2 * T), {}, num_overlap_frames=1,
                                                         num_frames=T, n_skips=1)
    expect = average_segment_overlaps(xs, T, 1, 1) / 2**0.5
    torch.testing.assert_close(seen[-1], expect)
    assert not torch.allclose(seen[-1][T - 1], xs[T - 1] / 2**0.5)


def test_karras_two_network_denoiser():
    gen = torch.Generator().manual_seed(4)
    clips = 2  # 1 segment × 2 passes
    x = torch.randn(clips * T, 4, 2, 2, generator=gen)
    sigma = torch.full((clips * T,), 2.0)
    cond = {"concat": torch.randn(clips, 4, 2, 2, generator=gen)}
    good = lambda xi, cn, c, **kw: xi + c["concat"].repeat_interleave(T, 0)  # noqa: E731
    bad = lambda xi, cn, c, **kw: -xi  # noqa: E731
    den = KarrasTemporalMultiDiffusion(VScalingWithEDMcNoise())
    with pytest.raises(RuntimeError):
        den(good, x, sigma, cond, num_overlap_frames=1, num_frames=T, n_skips=2)
    den.set_bad_network(bad)
    out = den(good, x, sigma, cond, num_overlap_frames=1, num_frames=T, n_skips=2,
              image_only_indicator=torch.zeros(clips, T), num_video_frames=T)
    plain = Denoiser(VScalingWithEDMcNoise())
    torch.testing.assert_close(out[:T], plain(bad, x[:T], sigma[:T], {"concat": cond["concat"][:1]}))
    torch.testing.assert_close(out[T:], plain(good, x[T:], sigma[T:], {"concat": cond["concat"][1:]}))
