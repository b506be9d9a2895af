"""StandardDiffusionLoss against hand computation and the recorded reference training loss."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from keysync.diffusion.denoiser import DenoiserDub
from keysync.diffusion.losses import EDMSampling, StandardDiffusionLoss, VWeighting

REF = Path(__file__).parent / "data" / "reference"


def _keyframe_loss(**kw):
    args = dict(sigma_sampler=EDMSampling(p_mean=1.0, p_std=1.2), loss_weighting=VWeighting(), loss_type="l2",
                weight_pixel=1, n_frames_pixel=1, what_pixel_losses=["l2"], lambda_lower=1,
                batch2model_keys=["image_only_indicator", "num_video_frames"])
    args.update(kw)
    return StandardDiffusionLoss(**args)


def test_reproduces_recorded_keyframe_loss():
    d = load_file(REF / "loss_keyframe_tiny.safetensors")
    seen = {}

    def denoiser(network, x, sigma, cond, **kw):
        seen.update(x=x, sigma=sigma, kw=kw, cond=cond)
        return d["denoiser_out"]

    def decode_fn(z):
        seen["z"] = z
        return d["pixel_decoded"]

    batch = {"original_frames": d["batch_original_frames"], "image_only_indicator": d["batch_image_only_indicator"],
             "num_video_frames": 14, "landmarks": None}
    cond = {"gt": d["cond_gt"], "masks": d["cond_masks"], "crossattn": d["cond_crossattn"]}
    loss, parts = _keyframe_loss()(None, denoiser, cond, d["batch_latents"], batch, decode_fn, noise=d["noise"],
                                   sigma_rand=d["sigma_rand"], pixel_frames=d["selected_pixel_frames"])
    torch.testing.assert_close(seen["sigma"], d["sigma"], rtol=1e-6, atol=0)
    torch.testing.assert_close(seen["x"], d["noised_input"], rtol=1e-6, atol=1e-6)
    assert set(seen["kw"]) == {"image_only_indicator", "num_video_frames"}
    torch.testing.assert_close(seen["z"] * 0.18215, d["pixel_decode_in"], rtol=1e-5, atol=1e-6)
    assert loss.shape == (14,)
    torch.testing.assert_close(parts["l2"], d["loss_dict_raw_l2"], rtol=1e-4, atol=0)
    torch.testing.assert_close(parts["pixel_l2"], d["loss_dict_raw_pixel_l2"], rtol=1e-4, atol=0)
    torch.testing.assert_close(parts["loss"], d["loss_dict_raw_loss"], rtol=1e-4, atol=0)
    torch.testing.assert_close(loss.mean(), d["loss"], rtol=1e-4, atol=0)
    for k in ("l2", "pixel_l2", "loss"):
        torch.testing.assert_close(parts[k].mean(), d[f"loss_dict_mean_{k}"], rtol=1e-4, atol=0)
    torch.testing.assert_close(VWeighting()(d["sigma"]), d["loss_weight_w"], rtol=1e-6, atol=0)


def test_reference_loss_is_zero_outside_mask_with_dub_denoiser():
    """With DenoiserDub and gt = target, the unmasked area contributes exactly 0 (still averaged in)."""
    gen = torch.Generator().manual_seed(0)
    B, T, h = 1, 4, 4
    x0 = torch.randn(B, 4, T, h, h, generator=gen)
    masks = torch.zeros(B, 1, T, h, h)
    cond = {"gt": x0, "masks": masks}
    net = lambda x, cn, c, **kw: torch.randn(x.shape, generator=gen)  # noqa: E731
    lf = _keyframe_loss(weight_pixel=0.0, what_pixel_losses=[])
    loss, parts = lf(net, DenoiserDub(), cond, x0, {}, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(loss, torch.zeros(B * T), rtol=0, atol=1e-10)


def test_toy_loss_against_hand_computation():
    gen = torch.Generator().manual_seed(2)
    B, T, C, h, H = 2, 3, 4, 4, 8
    x0 = torch.randn(B, C, T, h, h, generator=gen, dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    rand = torch.tensor([0.1, -0.7], dtype=torch.float64)
    orig = torch.rand(B, 3, T, H, H, generator=gen, dtype=torch.float64) * 2 - 1
    proj = torch.randn(3, C, generator=gen, dtype=torch.float64)

    def denoiser(network, x, sigma, cond):  # toy D: shrink the flattened noisy input
        x = x.permute(0, 2, 1, 3, 4).reshape(B * T, C, h, h)
        return x * 0.5

    def decode_fn(z):  # linear "VAE": 4 → 3 channels, ×2 upsampling
        return torch.einsum("oc,bchw->bohw", proj, z).repeat_interleave(2, 2).repeat_interleave(2, 3)

    lf = StandardDiffusionLoss(EDMSampling(1.0, 1.2), VWeighting(), loss_type="l2", lambda_lower=3.0,
                               lambda_upper=0.5, weight_pixel=2.0, what_pixel_losses=["l2", "l1"])
    frames = torch.tensor([2, 0])
    loss, parts = lf(None, denoiser, {}, x0, {"original_frames": orig}, decode_fn, noise=noise, sigma_rand=rand,
                     pixel_frames=frames)
    sigma = torch.exp(1.0 + 1.2 * rand)
    w = (sigma**2 + 1) / sigma**2
    noisy = x0 + noise * sigma.reshape(B, 1, 1, 1, 1)
    expect = []
    for b in range(B):
        for t in range(T):
            D = noisy[b, :, t] * 0.5
            lam = torch.ones(h, dtype=torch.float64)
            lam[h // 2:] = 3.0
            lam[: h // 2] = 0.5
            expect.append((w[b] * lam.reshape(1, h, 1) * (D - x0[b, :, t]) ** 2).mean())
    expect = torch.stack(expect)
    torch.testing.assert_close(parts["l2"], expect)
    pix_l2, pix_l1 = [], []
    for b in range(B):
        for t in frames.tolist():
            dec = decode_fn((noisy[b, :, t] * 0.5 / 0.18215)[None]).clip(-1, 1)[0]
            pix_l2.append((w[b] * (dec - orig[b, :, t]) ** 2).mean())
            pix_l1.append((w[b] * (dec - orig[b, :, t]).abs()).mean())
    p2, p1 = 2.0 * torch.stack(pix_l2).mean(), 2.0 * torch.stack(pix_l1).mean()
    torch.testing.assert_close(parts["pixel_l2"], p2)
    torch.testing.assert_close(parts["pixel_l1"], p1)
    torch.testing.assert_close(loss, expect + p2 + p1)
    torch.testing.assert_close(parts["loss"], loss)

    l1 = StandardDiffusionLoss(EDMSampling(), VWeighting(), loss_type="l1")
    _, p = l1(None, denoiser, {}, x0, {}, noise=noise, sigma_rand=rand)
    ref_l1 = torch.stack([(w[b] * (noisy[b, :, t] * 0.5 - x0[b, :, t]).abs()).mean()
                          for b in range(B) for t in range(T)])
    torch.testing.assert_close(p["l1"], ref_l1)


def test_gradients_flow_through_decoder_and_randomness_is_reproducible():
    gen = torch.Generator().manual_seed(3)
    B, T = 1, 5
    x0 = torch.randn(B, 4, T, 4, 4, generator=gen)
    orig = torch.zeros(B, 3, T, 4, 4)
    scale = torch.nn.Parameter(torch.tensor(0.7))
    dec_w = torch.nn.Parameter(torch.randn(3, 4, generator=gen) * 0.01)
    chosen = []

    def denoiser(network, x, sigma, cond):
        return x.permute(0, 2, 1, 3, 4).reshape(B * T, 4, 4, 4) * scale

    def decode_fn(z):
        chosen.append(z.shape)
        return torch.einsum("oc,bchw->bohw", dec_w, z)

    lf = _keyframe_loss(n_frames_pixel=2)
    l_a, _ = lf(None, denoiser, {}, x0, {"original_frames": orig}, decode_fn, generator=torch.Generator().manual_seed(9))
    l_b, _ = lf(None, denoiser, {}, x0, {"original_frames": orig}, decode_fn, generator=torch.Generator().manual_seed(9))
    assert torch.equal(l_a, l_b)
    assert chosen[0] == (1, 4, 4, 4) and len(chosen) == 4  # one frame per decode call
    l_a.mean().backward()
    assert dec_w.grad is not None and dec_w.grad.abs().sum() > 0
    assert scale.grad is not None
    with pytest.raises(ValueError, match="decode_fn"):
        lf(None, denoiser, {}, x0, {"original_frames": orig})


def test_lpips_configuration(tmp_path):
    missing = tmp_path / "nope" / "lpips_vgg.pth"
    with pytest.raises(FileNotFoundError, match="lpips_vgg.pth"):
        _keyframe_loss(what_pixel_losses=["l2", "lpips"], lpips_model_path=str(missing))
    with pytest.raises(ValueError, match="lpips_model_path"):
        _keyframe_loss(what_pixel_losses=["lpips"])
    with pytest.raises(ValueError):
        _keyframe_loss(loss_type="huber")
    with pytest.raises(NotImplementedError):
        _keyframe_loss(what_pixel_losses=["id"])

    # an injected LPIPS callable is weighted by the clip's w(σ) per decoded frame
    gen = torch.Generator().manual_seed(4)
    B, T = 2, 3
    x0 = torch.randn(B, 4, T, 4, 4, generator=gen)
    orig = torch.rand(B, 3, T, 4, 4, generator=gen)
    fake_lpips = lambda a, b: ((a - b) ** 2).mean(dim=(1, 2, 3))  # noqa: E731
    lf = _keyframe_loss(what_pixel_losses=["lpips"], lpips_fn=fake_lpips, weight_pixel=0.5)
    den = lambda net, x, s, c, **kw: x.permute(0, 2, 1, 3, 4).reshape(B * T, 4, 4, 4) * 0  # noqa: E731
    dec = lambda z: z[:, :3] + 0.25  # noqa: E731
    rand = torch.tensor([0.0, 1.0])
    _, parts = lf(None, den, {}, x0, {"original_frames": orig}, dec, sigma_rand=rand, pixel_frames=torch.tensor([1]))
    sigma = torch.exp(1.0 + 1.2 * rand)
    w = (sigma**2 + 1) / sigma**2
    per = torch.stack([((0.25 - orig[b, :, 1]) ** 2).mean() for b in range(B)])
    torch.testing.assert_close(parts["pixel_lpips"], 0.5 * (per * w).mean())
