"""Precompute throughput on this machine: VAE encoding and audio features, frames per second.

    .venv/bin/python benchmarks/bench_precompute.py [--resolution 128] [--frames 50]

Small random-weight configs by default (a reduced-width VAE at --resolution, a 2-layer HuBERT);
``--full-vae`` uses the full SVD VAE width (slow on a CPU).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from keysync.data.precompute import compute_audio_features, encode_video_latents
from keysync.models.vae import AutoencodingEngine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--full-vae", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    dd = dict(ch=128 if args.full_vae else 32, ch_mult=[1, 2, 4, 4] if args.full_vae else [1, 2, 2, 2],
              num_res_blocks=2 if args.full_vae else 1, z_channels=4, double_z=True, resolution=256, in_channels=3,
              out_ch=3, attn_resolutions=[], dropout=0.0)
    vae = AutoencodingEngine(encoder_config=dd, decoder_config={**dd, "video_kernel_size": [3, 1, 1]}).eval()
    frames = np.random.default_rng(0).integers(0, 255, (args.frames, args.resolution, args.resolution, 3), np.uint8)
    encode_video_latents([frames[:10]], vae, args.resolution, mode="mode")  # warm-up
    start = time.perf_counter()
    latents = encode_video_latents([frames], vae, args.resolution, chunk_size=10, mode="mode")
    vae_s = time.perf_counter() - start
    print(f"VAE encode ({'full' if args.full_vae else 'small'} width, {args.resolution}² → "
          f"{tuple(latents.shape[1:])}): {args.frames / vae_s:.1f} frames/s ({torch.get_num_threads()} threads)")

    from transformers import HubertConfig, HubertModel

    from keysync.audio.encoders import HubertEncoder

    for layers, width in ((2, 64), (12, 768)):
        cfg = HubertConfig(hidden_size=width, num_hidden_layers=layers, num_attention_heads=max(width // 64, 1),
                           intermediate_size=width * 4)
        encoder = HubertEncoder(HubertModel(cfg).eval(), show_progress=False)
        audio = np.random.default_rng(1).standard_normal(16000 * 10).astype(np.float32)
        compute_audio_features(audio[:16000], encoder)
        start = time.perf_counter()
        feats = compute_audio_features(audio, encoder)
        sec = time.perf_counter() - start
        print(f"HuBERT {layers} layers × {width} (random weights{', full Base size' if width == 768 else ''}): "
              f"{feats.shape[0] / sec:.0f} frames/s ({feats.shape[0]} frames of 10 s audio in {sec:.2f} s)")


if __name__ == "__main__":
    main()
