"""VideoUNet and its input wrappers reproduce the reference tiny vectors (float32, CPU)."""

from __future__ import annotations

import pytest
import torch

from conftest import load_reference, load_reference_json, max_abs_err
from keysync.models.unet import VideoUNet
from keysync.models.wrappers import DubbingWrapper, InterpolationWrapper

TOL = 1e-4
CASES = {
    "keyframe_both_keyframes": ("unet_keyframe_tiny", DubbingWrapper, "unet_keyframe_tiny_weights", "unet_keyframe_tiny_io"),
    "keyframe_to_time_emb": ("unet_keyframe_tiny_to_time_emb", DubbingWrapper, "unet_keyframe_tiny_weights",
                             "unet_keyframe_tiny_to_time_emb_io"),
    "interpolation": ("unet_interpolation_tiny", InterpolationWrapper, "unet_interpolation_tiny_weights",
                      "unet_interpolation_tiny_io"),
}


def build_wrapper(case: str):
    manifest_key, wrapper_cls, weights, _ = CASES[case]
    entry = load_reference_json("unet_tiny_manifest.json")[manifest_key]
    wrapper = wrapper_cls(VideoUNet(**entry["network_config"]["params"]), **entry.get("wrapper", {}).get("params", {}))
    state = {k.removeprefix("model."): v for k, v in load_reference(f"{weights}.safetensors").items()}
    wrapper.load_state_dict(state, strict=True)
    return wrapper.eval()


@pytest.mark.parametrize("case", sorted(CASES))
def test_wrapper_reproduces_reference(case):
    wrapper = build_wrapper(case)
    io = load_reference(f"{CASES[case][3]}.safetensors")
    cond = {k.removeprefix("wrapper_in_c_"): v for k, v in io.items() if k.startswith("wrapper_in_c_")}
    seen = {}
    wrapper.diffusion_model.register_forward_pre_hook(lambda m, a, kw: seen.update(x=a[0], **kw), with_kwargs=True)
    with torch.no_grad():
        out = wrapper(io["wrapper_in_x"], io["wrapper_in_t"], cond, num_video_frames=14,
                      image_only_indicator=io["wrapper_in_image_only_indicator"])
    # channel assembly is exact; the network output within the float32 tolerance
    assert max_abs_err(seen["x"], io["unet_in_x"]) == 0.0
    assert torch.equal(seen["context"], io["unet_in_context"])
    err = max_abs_err(out, io["output"])
    print(f"{case}: max abs err {err:.2e}")
    assert err <= TOL


def test_keyframe_intermediates_match():
    wrapper = build_wrapper("keyframe_both_keyframes")
    unet = wrapper.diffusion_model
    ref = load_reference("unet_keyframe_tiny_intermediates.safetensors")
    io = load_reference("unet_keyframe_tiny_io.safetensors")
    acts = {}
    for key in ref:
        name = key.removesuffix("_out")
        unet.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: acts.__setitem__(name, o))
    with torch.no_grad():
        unet(io["unet_in_x"], io["unet_in_timesteps"], context=io["unet_in_context"], num_video_frames=14,
             image_only_indicator=io["unet_in_image_only_indicator"])
    for key, value in ref.items():
        err = max_abs_err(acts[key.removesuffix("_out")], value)
        assert err <= TOL * max(1.0, value.abs().max().item()), key


def test_both_keyframes_equals_to_time_emb_with_same_audio():
    """The reference's consistency fact: to_time_emb with audio_emb == crossattn is both_keyframes."""
    both = build_wrapper("keyframe_both_keyframes")
    to_time = build_wrapper("keyframe_to_time_emb")
    io = load_reference("unet_keyframe_tiny_io.safetensors")
    cond = {"concat": io["wrapper_in_c_concat"], "crossattn": io["wrapper_in_c_crossattn"]}
    kw = dict(num_video_frames=14, image_only_indicator=io["wrapper_in_image_only_indicator"])
    with torch.no_grad():
        a = both(io["wrapper_in_x"], io["wrapper_in_t"], cond, **kw)
        b = to_time(io["wrapper_in_x"], io["wrapper_in_t"], {**cond, "audio_emb": cond["crossattn"]}, **kw)
    assert max_abs_err(a, b) == 0.0


def test_audio_matters_and_image_indicator_makes_frames_independent():
    wrapper = build_wrapper("keyframe_both_keyframes")
    io = load_reference("unet_keyframe_tiny_io.safetensors")
    x, t = io["wrapper_in_x"], io["wrapper_in_t"]
    cond = {"concat": io["wrapper_in_c_concat"], "crossattn": io["wrapper_in_c_crossattn"]}
    x_other = x.clone()
    x_other[5] += 1.0  # perturb frame 5 only

    def run(inp, c, indicator):
        with torch.no_grad():
            return wrapper(inp, t, c, num_video_frames=14, image_only_indicator=indicator)

    video, image = torch.zeros(1, 14), torch.ones(1, 14)
    base = run(x, cond, video)
    assert max_abs_err(base, run(x, {**cond, "crossattn": torch.zeros_like(cond["crossattn"])}, video)) > 1e-3
    # temporal layers on: frame 0 sees frame 5; image-only: it does not
    assert max_abs_err(base[0], run(x_other, cond, video)[0]) > 1e-4
    assert max_abs_err(run(x, cond, image)[0], run(x_other, cond, image)[0]) < 1e-6


def test_unsupported_options_raise_clear_errors():
    params = dict(load_reference_json("unet_tiny_manifest.json")["unet_keyframe_tiny"]["network_config"]["params"])
    with pytest.raises(ValueError, match="audio_cond_method='cross_attention' is not supported"):
        VideoUNet(**{**params, "audio_cond_method": "cross_attention"})
    with pytest.raises(ValueError, match="additional_audio_frames"):
        VideoUNet(**{**params, "additional_audio_frames": 2})
    unet = VideoUNet(**params)
    with pytest.raises(ValueError, match="not a multiple of num_video_frames"):
        unet(torch.zeros(13, 8, 16, 16), torch.zeros(13), context=torch.zeros(1, 14, 64), num_video_frames=14)


def test_gradient_checkpointing_gives_same_gradients():
    params = dict(load_reference_json("unet_tiny_manifest.json")["unet_keyframe_tiny"]["network_config"]["params"])
    torch.manual_seed(0)
    plain = VideoUNet(**params).train()
    ckpt = VideoUNet(**{**params, "use_checkpoint": True}).train()
    ckpt.load_state_dict(plain.state_dict())
    for net in (plain, ckpt):
        torch.nn.init.normal_(net.out[2].weight)  # zero-initialised output conv would hide gradients
    ckpt.out[2].weight.data.copy_(plain.out[2].weight)
    x = torch.randn(14, 8, 16, 16)
    t = torch.linspace(-1, 1, 14)
    ctx = torch.randn(1, 14, 64)
    grads = []
    for net in (plain, ckpt):
        net.zero_grad()
        net(x, t, context=ctx, num_video_frames=14).square().mean().backward()
        grads.append(net.input_blocks[0][0].weight.grad.clone())
    assert grads[0].abs().max() > 0
    assert max_abs_err(grads[0], grads[1]) < 1e-5
