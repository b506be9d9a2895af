"""Reference path vs fast path vs fast mode, side by side in one process on the same inputs.

    .venv/bin/python benchmarks/bench_fast.py                    # tiny random models, CPU (ratios)
    .venv/bin/python benchmarks/bench_fast.py --weights_root pretrained_models --device cuda

Modes: ``reference`` (fp32, 11 Euler steps, the reference's sampler), ``bf16`` (the same under
bfloat16 autocast), ``fast`` (DPM-Solver++(2M), 5 steps, fp32). For each: seconds per output
frame by stage, output frames/s, the process's peak memory so far (CUDA: peak allocated per
mode), and the deviation of its output frames from the reference mode's inside the changed
region (PSNR, dB; identical frames = inf). On CPU with tiny models only the ratios mean
anything; the full-size work is ~55 TFLOP per output frame (benchmarks/bench_sampling.py).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from work_counter import WorkCounter

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STAGES = ("landmarks", "audio", "encode", "keyframes", "interpolation", "decode", "paste", "mux")


def psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    """PSNR of frames (N, H, W, 3) over the pixels of ``region`` (N, H, W)."""
    mse = float(np.mean((a[region].astype(np.float64) - b[region].astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=None,
                    help="default: examples/world/face.mp4 with its known landmarks (demo model), else examples/face.mp4")
    ap.add_argument("--audio", type=Path, default=None, help="default: the speech.wav beside the default video")
    ap.add_argument("--weights_root", type=Path, default=Path("pretrained_models"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fast_steps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from keysync.pipelines.default_models import load_default_dubbing_models
    from keysync.pipelines.dubbing import dub

    chosen = load_default_dubbing_models(args.weights_root, args.device)
    models, base = chosen.models, chosen.options
    if args.video is None:
        folder = EXAMPLES / "world" if chosen.kind == "demo" else EXAMPLES
        args.video = folder / "face.mp4"
        if chosen.kind == "demo":
            base = type(base)(**{**base.__dict__, "landmarks": folder / "face_landmarks.npy"})
    args.audio = args.audio or args.video.parent / "speech.wav"
    work = WorkCounter({"keyframes": models.keyframe.model, "interpolation": models.interpolation.model,
                        "encode": models.vae.encoder, "decode": models.interpolation.first_stage_model.decoder})
    with tempfile.TemporaryDirectory() as tmp:  # warm-up (and FLOPs per frame of every network), not timed
        warm = type(base)(**{**base.__dict__, "compute_until": 0.6, "progress": False})
        dub(models, args.video, args.audio, Path(tmp) / "warm.mp4", warm)
    print(f"model: {chosen.kind}; device {args.device}; {args.threads} threads; {args.video.name} + {args.audio.name}")
    samplers = {"keyframe": models.keyframe.sampler, "interpolation": models.interpolation.sampler}
    modes = {"reference": dict(dtype=None, fast=False), "bf16": dict(dtype=torch.bfloat16, fast=False),
             "fast": dict(dtype=None, fast=True)}
    results, frames, regions, flops = {}, {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, mode in modes.items():
            models.keyframe.sampler, models.interpolation.sampler = samplers["keyframe"], samplers["interpolation"]
            if mode["fast"]:
                models.use_fast_sampler(args.fast_steps)
            opts = type(base)(**{**base.__dict__, "autocast_dtype": mode["dtype"], "progress": False})
            out_frames, out_regions = [], []
            if args.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            work.reset()
            start = time.perf_counter()
            r = dub(models, args.video, args.audio, Path(tmp) / f"{name}.mp4", opts,
                    on_frame=lambda i, out, src, region: (out_frames.append(out), out_regions.append(region)))
            wall = time.perf_counter() - start
            peak = (torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda")
                    else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
            results[name], frames[name], regions[name] = (r, wall, peak), np.stack(out_frames), np.stack(out_regions)
            flops[name] = dict(work.flops)
    models.close()
    ref_r, ref_wall, _ = results["reference"]
    print(f"\n{'stage (s/frame)':<16}" + "".join(f"{n:>12}" for n in modes) + f"{'fast/ref':>10}{'bf16/ref':>10}")
    for stage in STAGES:
        vals = [results[n][0].seconds_per_frame().get(stage, 0.0) for n in modes]
        ratio = lambda v: f"{v / vals[0]:>10.2f}" if vals[0] > 0 else f"{'-':>10}"
        print(f"{stage:<16}" + "".join(f"{v:>12.4f}" for v in vals) + ratio(vals[2]) + ratio(vals[1]))
    walls = [results[n][1] / results[n][0].frames for n in modes]
    print(f"{'total (wall)':<16}" + "".join(f"{v:>12.4f}" for v in walls) + f"{walls[2] / walls[0]:>10.2f}"
          f"{walls[1] / walls[0]:>10.2f}")
    print(f"{'output fps':<16}" + "".join(f"{1 / v:>12.2f}" for v in walls))
    per_frame = [sum(flops[n].values()) / results[n][0].frames for n in modes]
    print(f"{'TFLOP/frame':<16}" + "".join(f"{v / 1e12:>12.4g}" for v in per_frame)
          + "   (counted: UNets + VAE; 512² default schedule ≈ 55)")
    print(f"{'TFLOP/s':<16}" + "".join(f"{v / w / 1e12:>12.4g}" for v, w in zip(per_frame, walls)))
    unit = "GiB alloc" if args.device.startswith("cuda") else "GiB RSS*"
    print(f"{'peak ' + unit:<16}" + "".join(f"{results[n][2]:>12.2f}" for n in modes))
    region = np.logical_or.reduce([regions[n] for n in modes])
    print(f"{'PSNR vs ref dB':<16}" + "".join(f"{psnr(frames[n], frames['reference'], region):>12.1f}" for n in modes)
          + "   (inside the regenerated region)")
    if not args.device.startswith("cuda"):
        print("* CPU: process high-water mark so far (monotonic over the modes)")


if __name__ == "__main__":
    main()
