"""End to end with the real tiny networks: sampler trajectories, decoding and the training loss
reproduce the reference engine (SPEC §4, reference README §4–5)."""

from __future__ import annotations

import pytest
import torch

from conftest import load_reference, max_abs_err
from keysync.models.checkpoints import load_checkpoint
from keysync.models.engine import build_engine
from safetensors.torch import save_file

FORCE_UC = ["cond_frames", "audio_emb"]


def engine_state(unet_file: str) -> dict[str, torch.Tensor]:
    state = dict(load_reference(unet_file))
    state.update({k: v for k, v in load_reference("embedders_tiny.safetensors").items()
                  if k.startswith("conditioner.embedders.2.")})
    state.update({k: v for k, v in load_reference("vae_tiny_weights.safetensors").items()
                  if k.startswith("first_stage_model.decoder.")})
    return state


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    save_file(engine_state("unet_keyframe_tiny_weights.safetensors"), str(folder / "keyframe.safetensors"))
    save_file(engine_state("unet_interpolation_tiny_weights.safetensors"), str(folder / "interpolation.safetensors"))
    return folder


def tiny_engine(config: str, weights) -> torch.nn.Module:
    engine = build_engine(config).eval()
    load_checkpoint(engine, weights, strict=True)
    return engine


def check_trajectory(ref, inter, final, n_steps=11):
    """Every recorded intermediate state and the final sample within 1e-3·max(1, max|ref|)."""
    worst = 0.0
    assert int(ref["n_steps_run"]) == n_steps == len(inter["x"])
    for i in range(n_steps):
        for key, ours in (("x_in", inter["x"][i]), ("guided_denoised", inter["denoised"][i])):
            want = ref[f"step{i:02d}_{key}"]
            err = max_abs_err(ours, want) / max(1.0, want.abs().max().item())
            worst = max(worst, err)
            assert err <= 1e-3, f"step {i} {key}: relative error {err:.2e}"
        assert torch.equal(inter["sigma"][i].float(), ref[f"step{i:02d}_sigma"])
    err = max_abs_err(final, ref["final_sample"]) / max(1.0, ref["final_sample"].abs().max().item())
    assert err <= 1e-3
    return max(worst, err)


@pytest.mark.parametrize("variant,guider", [("audioref", None), ("cfg2", "cfg")])
def test_keyframe_sampler_reproduces_reference(weights_dir, variant, guider):
    ref = load_reference(f"sampler_keyframe_tiny_{variant}.safetensors")
    engine = tiny_engine("tiny/keysync_keyframe_inference", weights_dir / "keyframe.safetensors")
    if guider == "cfg":
        from keysync.diffusion.guidance import VanillaCFG
        engine.sampler.guider = VanillaCFG(scale=2.0)
    batch = {"cond_frames": ref["input_cond_frames"], "gt": ref["input_gt"], "audio_emb": ref["input_audio_emb"],
             "masks": ref["input_masks"]}
    c, uc = engine.conditioner.get_unconditional_conditioning(batch, force_uc_zero_embeddings=FORCE_UC)
    final, inter = engine.sample(c, uc, ref["initial_noise"], num_video_frames=14, return_intermediates=True)
    worst = check_trajectory(ref, inter, final)
    decoded = engine.decode_first_stage(final)
    dec_err = max_abs_err(decoded, ref["final_decoded"])
    print(f"keyframe {variant}: worst relative state error {worst:.2e}, decoded {dec_err:.2e}")
    assert dec_err <= 1e-3
    # the mask is honoured: outside it the sample is the ground truth (up to the last Euler
    # step's float rounding, x + (0 − σ)(x − D)/σ)
    outside = (ref["input_masks"] == 0).expand_as(ref["input_gt"]).permute(0, 2, 1, 3, 4).reshape(final.shape)
    gt = ref["input_gt"].permute(0, 2, 1, 3, 4).reshape(final.shape)
    assert max_abs_err(final[outside], gt[outside]) <= 1e-5


def test_interpolation_sampler_reproduces_reference(weights_dir):
    ref = load_reference("sampler_interpolation_tiny_audioref.safetensors")
    engine = tiny_engine("tiny/keysync_interpolation_inference", weights_dir / "interpolation.safetensors")
    batch = {"cond_frames": ref["input_cond_frames"], "gt": ref["input_gt"], "audio_emb": ref["input_audio_emb"],
             "masks": ref["input_masks"]}
    c, uc = engine.conditioner.get_unconditional_conditioning(batch, force_uc_zero_embeddings=FORCE_UC)
    for key in ("concat", "crossattn"):
        assert max_abs_err(c[key], ref[f"c_{key}"]) <= 1e-5
    # the pipeline's denoiser kwargs: 3 passes × 2 segments evaluated in 28-frame chunks
    final, inter = engine.sample(c, uc, ref["initial_noise"], num_video_frames=14, return_intermediates=True,
                                 num_overlap_frames=1, num_frames=14, n_skips=3, chunk_size=28)
    worst = check_trajectory(ref, inter, final)
    pasted = final.clone()
    kf = ref["input_keyframe_latents"]
    pasted[[0, 13, 14, 27]] = kf[[0, 1, 1, 2]]
    want = ref["final_sample_with_keyframes_pasted"]
    assert torch.equal(pasted[[0, 13, 14, 27]], want[[0, 13, 14, 27]])
    assert max_abs_err(pasted, want) <= 1e-3 * max(1.0, want.abs().max().item())
    dec_err = max_abs_err(engine.decode_first_stage(pasted), ref["final_decoded"])
    print(f"interpolation: worst relative state error {worst:.2e}, decoded {dec_err:.2e}")
    assert dec_err <= 1e-3


def test_chunked_network_evaluation_is_identical(weights_dir):
    ref = load_reference("sampler_interpolation_tiny_audioref.safetensors")
    engine = tiny_engine("tiny/keysync_interpolation_inference", weights_dir / "interpolation.safetensors")
    batch = {"cond_frames": ref["input_cond_frames"], "gt": ref["input_gt"], "audio_emb": ref["input_audio_emb"],
             "masks": ref["input_masks"]}
    c, _ = engine.conditioner.get_unconditional_conditioning(batch, force_uc_zero_embeddings=FORCE_UC)
    x = ref["step03_x_in"]
    sigma = ref["step03_sigma"]
    with torch.no_grad():
        whole = engine.denoise_fn(14)(x, sigma, c)
        chunked = engine.denoise_fn(14, chunk_size=14)(x, sigma, c)
    assert max_abs_err(whole, chunked) <= 1e-5


def test_training_loss_reproduces_reference(weights_dir):
    ref = load_reference("loss_keyframe_tiny.safetensors")
    engine = build_engine("tiny/keysync_keyframe", overrides=["conditioner.emb_models.cond_frames.ucg_rate=0",
                                                              "conditioner.emb_models.audio_emb.ucg_rate=0"])
    load_checkpoint(engine, weights_dir / "keyframe.safetensors", strict=True)
    batch = {"latents": ref["batch_latents"], "gt": ref["batch_gt"], "cond_frames": ref["batch_cond_frames"],
             "audio_emb": ref["batch_audio_emb"], "masks": ref["batch_masks"],
             "original_frames": ref["batch_original_frames"], "image_only_indicator": ref["batch_image_only_indicator"],
             "num_video_frames": 14}
    cond = engine.conditioner(batch)
    assert max_abs_err(cond["concat"], ref["cond_concat"]) <= 1e-5
    loss, logs = engine(batch, noise=ref["noise"], sigma_rand=torch.tensor([0.3]),
                        pixel_frames=ref["selected_pixel_frames"].reshape(-1))
    rel = abs(loss.item() - ref["loss"].item()) / ref["loss"].item()
    rel_l2 = abs(logs["l2"].item() - ref["loss_dict_mean_l2"].item()) / ref["loss_dict_mean_l2"].item()
    rel_pix = abs(logs["pixel_l2"].item() - ref["loss_dict_raw_pixel_l2"].item()) / ref["loss_dict_raw_pixel_l2"].item()
    print(f"loss {loss.item():.6f} vs {ref['loss'].item():.6f}: rel {rel:.2e}; l2 {rel_l2:.2e}; pixel {rel_pix:.2e}")
    assert max(rel, rel_l2, rel_pix) <= 1e-4
    # gradients reach the trainable parts only: UNet and the audio Linear, not the frozen VAE
    loss.backward()
    assert engine.diffusion_model.input_blocks[0][0].weight.grad.abs().sum() > 0
    assert engine.conditioner.embedders[2].linear.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in engine.first_stage_model.parameters())
