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
    for name in ("tiny/keysync_keyframe", "tiny/keysync_interpolation"):
        engine = build_engine(name, overrides=["conditioner.emb_models.cond_frames.embedder.n_copies=1"]).eval()
        n_cond = 2 if "interpolation" in name else 1
        batch = {
            "cond_frames": torch.randn(1, 4, n_cond, latent, latent) if n_cond == 2 else torch.randn(1, 4, latent, latent),
            "gt": torch.randn(1, 4, frames, latent, latent),
            "audio_emb": torch.randn(1, frames, 2, 32),
            "masks": torch.ones(1, 1, frames, latent, latent),
        }
        start = time.perf_counter()
        cond = engine.conditioner(batch)
        x = torch.randn(frames, 4, latent, latent)
        sigma = torch.full((frames,), 10.0)
        out = engine.model(x / (1 + sigma[:, None, None, None] ** 2).sqrt(), 0.25 * sigma.log(), cond,
                           num_video_frames=frames, image_only_indicator=torch.zeros(1, frames))
        pixels = engine.decode_first_stage(out)
        elapsed = time.perf_counter() - start
        print(f"[tiny, cpu] {name}: conditioner keys {sorted(cond)}; UNet {tuple(x.shape)} → {tuple(out.shape)}; "
              f"VAE decode → {tuple(pixels.shape)}; {elapsed:.2f} s; finite={bool(torch.isfinite(pixels).all())}")
    print("smoke run OK")
    return 0
