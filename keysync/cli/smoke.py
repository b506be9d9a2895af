"""``keysync smoke``: build the models from their configs and run them once on random inputs.

Until the dubbing pipeline exists this is the "main job" of the README's first command: it
proves the install works end to end (configs → models → forward passes → VAE decode) and
prints what it did. Full-size models are built on the meta device (no memory) to list their
sizes; the tiny variants actually run.
"""

from __future__ import annotations

import argparse
import time

import torch

from keysync.models.engine import build_engine


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("smoke", help="build the models and run tiny ones once (install check)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def run(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    for name in ("keysync_keyframe_inference", "keysync_interpolation_inference"):
        engine = build_engine(name, device="meta")
        print(f"[full size, meta] {name}: {len(engine.state_dict())} state-dict keys, "
              f"UNet {_count(engine.diffusion_model):,} params, total {_count(engine):,}")

    frames, latent = 14, 16
    for name in ("tiny/keysync_keyframe_inference", "tiny/keysync_interpolation_inference"):
        engine = build_engine(name).eval()
        n_cond = 2 if "interpolation" in name else 1
        batch = {
            "cond_frames": torch.randn(1, 4, n_cond, latent, latent) if n_cond == 2 else torch.randn(1, 4, latent, latent),
            "gt": torch.randn(1, 4, frames, latent, latent),
            "audio_emb": torch.randn(1, frames, 2, 32),
            "masks": torch.ones(1, 1, frames, latent, latent),
        }
        start = time.perf_counter()
        cond, uc = engine.conditioner.get_unconditional_conditioning(
            batch, force_uc_zero_embeddings=["cond_frames", "audio_emb"])
        latents = engine.sample(cond, uc, torch.randn(frames, 4, latent, latent), num_video_frames=frames)
        pixels = engine.decode_first_stage(latents)
        elapsed = time.perf_counter() - start
        steps = len(engine.sampler.get_sigmas()) - 1
        print(f"[tiny, cpu] {name}: conditioner keys {sorted(cond)}; {steps} Euler steps × "
              f"{engine.sampler.guider.n_passes} guidance passes → latents {tuple(latents.shape)}; "
              f"VAE decode → {tuple(pixels.shape)}; {elapsed:.2f} s; finite={bool(torch.isfinite(pixels).all())}")
    print("smoke run OK")
    return 0
