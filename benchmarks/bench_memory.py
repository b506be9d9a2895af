"""Memory against clip length: dub the same video with 2, 20 and 60 s of audio and report what the
job holds (held = Python/numpy memory traced by tracemalloc + CPU tensor storages, sampled every
25 output frames; CUDA: peak allocated), so growth with length shows directly.

    .venv/bin/python benchmarks/bench_memory.py                          # demo model (or tiny), CPU
    .venv/bin/python benchmarks/bench_memory.py --weights_root pretrained_models --device cuda --seconds 2 60

The video is ping-pong looped to the audio's length; the audio is white noise (the content does
not change what is held). Expected: held memory flat in the length but for the plan's index
records (~300 B per model frame) and, below ``--audio_in_file_after`` seconds, the audio and its
features (64 KB/s of samples + (D_hubert + D_wavlm) · 200 B/s; past it they are in files).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=None,
                    help="default: examples/world/face.mp4 with its known landmarks (demo model), else examples/face.mp4")
    ap.add_argument("--weights_root", type=Path, default=Path("pretrained_models"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seconds", type=float, nargs="+", default=[2, 20, 60])
    ap.add_argument("--fast_steps", type=int, default=2, help="sampler steps (memory does not depend on them)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--audio_in_file_after", type=float, default=300.0,
                    help="seconds of audio past which audio and features go to temporary files (0: always)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from keysync.media import write_audio
    from keysync.pipelines.default_models import load_default_dubbing_models
    from keysync.pipelines.dubbing import dub
    from keysync.utils.memory import held_bytes

    chosen = load_default_dubbing_models(args.weights_root, args.device)
    models, base = chosen.models, chosen.options
    models.use_fast_sampler(args.fast_steps)
    landmarks = None
    if args.video is None:
        world = chosen.kind == "demo"
        args.video = EXAMPLES / "world" / "face.mp4" if world else EXAMPLES / "face.mp4"
        landmarks = EXAMPLES / "world" / "face_landmarks.npy" if world else None
    cuda = args.device.startswith("cuda")
    print(f"model: {chosen.kind}; device {args.device}; {args.video.name}; {args.fast_steps} sampler steps; "
          f"audio in files past {args.audio_in_file_after:g} s")
    print(f"{'seconds':>8}{'frames':>8}{'held MB':>10}{'traced peak MB':>16}" + (f"{'CUDA peak GiB':>15}" if cuda else "")
          + f"{'s/frame':>9}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.seconds:
            audio = Path(tmp) / f"{seconds}.wav"
            noise = 0.1 * np.random.default_rng(0).standard_normal(int(16000 * seconds))
            write_audio(audio, noise.astype(np.float32), 16000)
            peak = [0]

            def on_frame(i, *_):
                if i % 25 == 0:
                    peak[0] = max(peak[0], held_bytes())

            opts = type(base)(**{**base.__dict__, "compute_until": None, "progress": False, "landmarks": landmarks,
                                            "audio_in_file_after": args.audio_in_file_after})
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            gc.collect()
            tracemalloc.start()
            start = time.perf_counter()
            r = dub(models, args.video, audio, Path(tmp) / f"{seconds}.mp4", opts, on_frame=on_frame)
            wall = time.perf_counter() - start
            traced = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            rows.append((seconds, r.frames, peak[0] / 1e6))
            print(f"{seconds:>8g}{r.frames:>8}{peak[0] / 1e6:>10.1f}{traced / 1e6:>16.1f}"
                  + (f"{torch.cuda.max_memory_allocated() / 2**30:>15.2f}" if cuda else "")
                  + f"{wall / r.frames:>9.3f}", flush=True)
    if len(rows) > 1:
        (s0, _, m0), (s1, _, m1) = rows[0], rows[-1]
        print(f"held growth {s0:g} s → {s1:g} s: {m1 - m0:+.2f} MB ({(m1 - m0) / (s1 - s0) * 1000:.1f} KB per second)")
    models.close()


if __name__ == "__main__":
    main()
