"""Keyframe sampling speed: one full AYS "10-step" (11 Euler steps) call with 3-pass guidance.

Prints seconds per generated frame, network calls per step, and (``--flops``) the FLOPs of one
full-size 512² network call counted on the meta device (no memory, no weights), which turns the
CPU timing into an estimate for any accelerator.

    .venv/bin/python benchmarks/bench_sampling.py            # tiny config, CPU
    .venv/bin/python benchmarks/bench_sampling.py --flops    # + full-size FLOP count
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from keysync.models.engine import build_engine


def time_sampling(config: str, latent: int, frames: int, repeats: int) -> dict:
    engine = build_engine(config).eval()
    calls = {"n": 0, "frames": 0}

    def count(module, args, kwargs):
        calls["n"] += 1
        calls["frames"] += args[0].shape[0]

    engine.model.register_forward_pre_hook(count, with_kwargs=True)
    audio_dim = engine.conditioner.embedders[2].linear.in_features
    batch = {"cond_frames": torch.randn(1, 4, latent, latent), "gt": torch.randn(1, 4, frames, latent, latent),
             "audio_emb": torch.randn(1, frames, 2, audio_dim), "masks": torch.ones(1, 1, frames, latent, latent)}
    c, uc = engine.conditioner.get_unconditional_conditioning(batch, force_uc_zero_embeddings=["cond_frames", "audio_emb"])
    noise = torch.randn(frames, 4, latent, latent)
    engine.sample(c, uc, noise, num_video_frames=frames)  # warm-up
    calls.update(n=0, frames=0)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        engine.sample(c, uc, noise, num_video_frames=frames)
        times.append(time.perf_counter() - start)
    steps = len(engine.sampler.get_sigmas()) - 1
    best = min(times)
    return {"config": config, "latent": latent, "frames": frames, "steps": steps, "seconds": best,
            "s_per_frame": best / frames, "calls_per_step": calls["n"] / repeats / steps,
            "frames_per_call": calls["frames"] / max(calls["n"], 1)}


def full_size_flops(frames: int = 14, passes: int = 3) -> float:
    engine = build_engine("keysync_keyframe_inference", device="meta")
    n = frames * passes
    with torch.device("meta"):
        x = torch.randn(n, 4, 64, 64)
        cond = {"concat": torch.randn(passes, 4, 64, 64), "crossattn": torch.randn(passes, frames, 1024)}
        t = torch.randn(n)
        ioi = torch.zeros(passes, frames)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        engine.model(x, t, cond, num_video_frames=frames, image_only_indicator=ioi)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="tiny/keysync_keyframe_inference")
    parser.add_argument("--latent", type=int, default=16, help="latent size h = w (pixels / 8)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--flops", action="store_true", help="also count full-size FLOPs per network call")
    args = parser.parse_args()
    torch.manual_seed(0)
    r = time_sampling(args.config, args.latent, 14, args.repeats)
    print(f"{r['config']} @ {r['latent']}² latents, {torch.get_num_threads()} threads: {r['steps']} Euler steps, "
          f"{r['calls_per_step']:.0f} network call(s) per step ({r['frames_per_call']:.0f} frames each), "
          f"{r['seconds']:.2f} s per 14-frame call = {r['s_per_frame']:.3f} s per generated frame")
    if args.flops:
        flops = full_size_flops()
        per_sample = flops * r["steps"]
        print(f"full size (512², 64² latents): {flops / 1e12:.1f} TFLOP per batched 3-pass network call, "
              f"{per_sample / 1e12:.0f} TFLOP per 14-frame keyframe sampling = {per_sample / 14 / 1e12:.1f} TFLOP per frame")


if __name__ == "__main__":
    main()
