"""Guiders: batch layouts and combinations against the recorded reference sampler runs."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from keysync.diffusion.denoiser import Denoiser
from keysync.diffusion.guidance import (AudioRefMultiCondGuider, IdentityGuider, KarrasGuider,
                                        LinearPredictionGuider, VanillaCFG, autoguidance_denoiser)

REF = Path(__file__).parent / "data" / "reference"
KEYS = ("concat", "crossattn", "gt", "masks")
CASES = [
    ("sampler_keyframe_tiny_audioref", lambda: AudioRefMultiCondGuider(audio_ratio=5.0, ref_ratio=2.0)),
    ("sampler_keyframe_tiny_cfg2", lambda: VanillaCFG(scale=2.0)),
    ("sampler_interpolation_tiny_audioref", lambda: AudioRefMultiCondGuider(audio_ratio=5.0, ref_ratio=2.0)),
]


def _load(name):
    d = load_file(REF / f"{name}.safetensors")
    return d, {k: d["c_" + k] for k in KEYS}, {k: d["uc_" + k] for k in KEYS}


@pytest.mark.parametrize("name, make", CASES)
def test_batch_layout_matches_recording(name, make):
    d, c, uc = _load(name)
    g = make()
    x, s, cb = g.prepare_inputs(d["step00_x_in"], d["step00_sigma"], c, uc)
    n = d["step00_x_in"].shape[0]
    assert x.shape[0] == g.n_passes * n and torch.equal(x, torch.cat([d["step00_x_in"]] * g.n_passes))
    for i in range(11):
        ref_sigma = d[f"step{i:02d}_denoiser_in_sigma"]
        assert ref_sigma.shape == (g.n_passes * n,)
        torch.testing.assert_close(torch.cat([d[f"step{i:02d}_sigma"]] * g.n_passes), ref_sigma, rtol=0, atol=0)
    torch.testing.assert_close(s, d["step00_denoiser_in_sigma"], rtol=0, atol=0)
    assert set(cb) == set(KEYS)
    for k in KEYS:
        torch.testing.assert_close(cb[k], d[f"step00_guider_batched_cond_{k}"], rtol=0, atol=0)


def test_audioref_pass_contents():
    _, c, uc = _load("sampler_keyframe_tiny_audioref")
    _, _, cb = AudioRefMultiCondGuider().prepare_inputs(torch.zeros(14, 4, 16, 16), torch.ones(14), c, uc)
    base, ref, full = (dict((k, v.chunk(3)[i]) for k, v in cb.items()) for i in range(3))
    assert torch.equal(base["crossattn"], uc["crossattn"]) and torch.equal(base["concat"], uc["concat"])
    assert torch.equal(ref["crossattn"], uc["crossattn"]) and torch.equal(ref["concat"], c["concat"])
    assert torch.equal(full["crossattn"], c["crossattn"]) and torch.equal(full["concat"], c["concat"])
    for p in (base, ref, full):
        assert torch.equal(p["gt"], c["gt"]) and torch.equal(p["masks"], c["masks"])


@pytest.mark.parametrize("name, make", CASES)
@pytest.mark.parametrize("step", ["00", "10"])
def test_combination_of_recorded_raw_outputs(name, make, step):
    d, _, _ = _load(name)
    got = make()(d[f"step{step}_denoiser_out"], d[f"step{step}_sigma"])
    torch.testing.assert_close(got, d[f"step{step}_guided_denoised"], rtol=0, atol=1e-4)


def test_formulas_and_set_scale():
    e = [torch.randn(6, 2) for _ in range(3)]
    g = AudioRefMultiCondGuider(audio_ratio=5.0, ref_ratio=2.0)
    torch.testing.assert_close(g(torch.cat(e), None), e[0] + 2 * (e[1] - e[0]) + 5 * (e[2] - e[1]))
    g.set_scale([3.0, 1.5])
    assert (g.audio_ratio, g.ref_ratio) == (3.0, 1.5)
    torch.testing.assert_close(g(torch.cat(e), None), e[0] + 1.5 * (e[1] - e[0]) + 3 * (e[2] - e[1]))
    torch.testing.assert_close(VanillaCFG(2.5)(torch.cat(e[:2]), None), e[0] + 2.5 * (e[1] - e[0]))
    torch.testing.assert_close(KarrasGuider(2.0)(torch.cat(e[:2]), None), e[0] + 2.0 * (e[1] - e[0]))
    assert torch.equal(IdentityGuider()(e[0], None), e[0])


def test_audioref_normalized_variant_runs():
    g = AudioRefMultiCondGuider(use_normalized=True)
    e = torch.randn(3 * 14, 4, 8, 8)
    out = g(e, None)
    assert out.shape == (14, 4, 8, 8) and torch.isfinite(out).all()
    # ratios of 1 remove all guidance
    g1 = AudioRefMultiCondGuider(audio_ratio=1.0, ref_ratio=1.0, use_normalized=True)
    torch.testing.assert_close(g1(e, None), e[:14])


def test_karras_and_identity_layouts():
    c = {"concat": torch.randn(2, 8, 4, 4), "crossattn": torch.randn(2, 14, 6), "num_video_frames": 14}
    uc = {"concat": torch.zeros(2, 8, 4, 4), "crossattn": torch.zeros(2, 14, 6), "num_video_frames": 14}
    x, s = torch.randn(28, 4, 4, 4), torch.ones(28)
    xb, sb, cb = KarrasGuider(2.0).prepare_inputs(x, s, c, uc)
    assert xb.shape[0] == 56 and sb.shape[0] == 56 and cb["num_video_frames"] == 14
    assert torch.equal(cb["concat"], torch.cat([c["concat"]] * 2))  # both halves get c
    xi, si, ci = IdentityGuider().prepare_inputs(x, s, c, uc)
    assert xi is x and si is s and ci["concat"] is c["concat"]
    xv, _, cv = VanillaCFG(2.0).prepare_inputs(x, s, c, uc)
    assert torch.equal(cv["crossattn"], torch.cat([uc["crossattn"], c["crossattn"]]))


def test_autoguidance_helper_routes_halves():
    gen = torch.Generator().manual_seed(0)
    T = 14
    c = {"concat": torch.randn(1, 4, 2, 2, generator=gen)}
    x = torch.randn(T, 4, 2, 2, generator=gen)
    g = KarrasGuider(2.0)
    calls = []
    good = lambda xi, cn, cc, **kw: xi * 2  # noqa: E731
    bad = lambda xi, cn, cc, **kw: xi * 0.5  # noqa: E731
    den = Denoiser()

    def spy(net, xi, s, cc, **kw):
        calls.append(("good" if net is good else "bad", tuple(kw["image_only_indicator"].shape), kw["n_skips"]))
        return den(net, xi, s, cc, **kw)

    fn = autoguidance_denoiser(spy, good, bad, num_video_frames=T, image_only_indicator=torch.zeros(2, T), n_skips=2)
    xb, sb, cb = g.prepare_inputs(x, torch.full((T,), 3.0), c, c)
    out = g(fn(xb, sb, cb), sb[:T])
    assert calls == [("bad", (1, T), 1), ("good", (1, T), 1)]
    d_bad = den(bad, x, torch.full((T,), 3.0), c)
    d_good = den(good, x, torch.full((T,), 3.0), c)
    torch.testing.assert_close(out, d_bad + 2.0 * (d_good - d_bad))


def test_linear_prediction_guider():
    T = 14
    g = LinearPredictionGuider(max_scale=2.5, num_frames=T, min_scale=1.0)
    torch.testing.assert_close(g.scale, torch.linspace(1.0, 2.5, T).unsqueeze(0))
    x_u, x_c = torch.randn(2 * T, 4, 3, 3), torch.randn(2 * T, 4, 3, 3)
    out = g(torch.cat([x_u, x_c]), None)
    scale = torch.linspace(1.0, 2.5, T).repeat(2).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(out, x_u + scale * (x_c - x_u))
    c = {"crossattn": torch.randn(2, T, 4), "gt": torch.randn(2, 4, T, 3, 3)}
    uc = {"crossattn": torch.zeros(2, T, 4), "gt": c["gt"]}
    _, _, cb = g.prepare_inputs(x_u, torch.ones(2 * T), c, uc)
    assert torch.equal(cb["crossattn"], torch.cat([uc["crossattn"], c["crossattn"]]))
    g.set_scale(1.5)
    torch.testing.assert_close(g.scale, torch.linspace(1.5, 2.5, T).unsqueeze(0))
    g2 = LinearPredictionGuider(max_scale=3.0, num_frames=4, min_scale=1.0, only_first=True)
    torch.testing.assert_close(g2.scale, torch.tensor([[1.0, 3.0, 3.0, 3.0]]))
