"""Face-module speed: landmark throughput, mask building, crop and paste-back cost per frame.

Frames are synthetic clips made from ``skimage.data.astronaut()`` (moved by small shifts and
scalings), optionally placed on a larger non-square canvas to mimic full-frame video.

    .venv/bin/python benchmarks/bench_face.py                    # 512² and 1080p, 50 frames
    .venv/bin/python benchmarks/bench_face.py --frames 100 --sam2   # + SAM 2 tiny (random weights)
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def _timeit(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def make_clip(frames: int, canvas=None, zoom: float = 1.0) -> np.ndarray:
    import cv2
    from skimage.data import astronaut

    from keysync.face.synthetic import jitter_clip, place_on_canvas

    img = astronaut()
    if zoom != 1.0:
        img = cv2.resize(img, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
    clip, _ = jitter_clip(img, num_frames=frames, max_shift=6 * zoom, max_scale=0.04, seed=0)
    if canvas is not None:
        h, w = canvas
        s = img.shape[0]
        clip = np.stack([place_on_canvas(f, canvas, ((w - s) // 2, max((h - s) // 3, 0)), fill=60) for f in clip])
    return clip


def bench_landmarks(clip: np.ndarray, batch_size: int) -> dict:
    from keysync.face.landmarks import create_backend, extract_landmarks

    out = {}
    for static in (True, False):
        with create_backend("mediapipe", static_image_mode=static) as be:
            extract_landmarks(clip[:2], be, progress=False)  # warm-up (model load)
            track = None

            def run():
                nonlocal track
                track = extract_landmarks(clip, be, batch_size=batch_size, progress=False)

            sec = _timeit(run, repeats=2)
        out["mediapipe" + ("" if static else " (tracking)")] = (len(clip) / sec, int(track.found.sum()))
    return out


def bench_crop_paste(clip: np.ndarray) -> dict:
    from keysync.face.landmarks import create_backend, extract_landmarks
    from keysync.face.masks import build_masks
    from keysync.face.paste import paste_back

    from keysync.face.crop import plan_crops

    with create_backend("mediapipe") as be:
        track = extract_landmarks(clip, be, progress=False)
    n = len(clip)
    res = {}
    plan = None

    def do_plan():
        nonlocal plan
        plan = plan_crops(track.points, clip.shape[1:3])

    res["plan crops (boxes + smoothing)"] = _timeit(do_plan) / n
    crops = plan.crop(clip)
    res["crop to 512²"] = _timeit(lambda: plan.crop(clip)) / n
    lm_crop = plan.to_crop(track.points)
    res["box masks 512² (+ 64² latent)"] = _timeit(lambda: build_masks(lm_crop, (512, 512), "box", latent_size=(64, 64))) / n
    masks = build_masks(lm_crop, (512, 512), "box")
    for mode in ("delta", "replace"):
        res[f"paste back ({mode})"] = _timeit(
            lambda: [paste_back(clip[i], crops[i], plan.boxes[i], masks[i], mode=mode) for i in range(n)]) / n
    res["_box_size"] = float(np.median(plan.boxes[:, 2]))
    return res


def bench_sam2(clip: np.ndarray, image_size: int) -> float:
    import torch

    from keysync.face.occlusion import SAM2Occluder

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        occ = SAM2Occluder.from_files("configs/sam2.1/sam2.1_hiera_t.yaml", None, image_size=image_size,
                                      allow_random_weights=True)
        h, w = clip.shape[1:3]
        sec = _timeit(lambda: occ.segment(clip, [(w / 2, h * 0.7)], prompt_frame=len(clip) // 2, progress=False), 1)
    return sec / len(clip)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--sam2", action="store_true", help="also time SAM 2 (tiny config, random weights)")
    ap.add_argument("--sam2-size", type=int, default=256)
    args = ap.parse_args()

    scenes = (("512x512, face ~100 px", None, 1.0), ("1080p, face ~100 px (5 % of the width)", (1080, 1920), 1.0),
              ("1080p, face ~200 px", (1080, 1920), 2.0))
    for name, canvas, zoom in scenes:
        clip = make_clip(args.frames, canvas, zoom)
        print(f"== {name}, {len(clip)} frames ==")
        for backend, (fps, found) in bench_landmarks(clip, args.batch_size).items():
            print(f"landmarks {backend:<22s} {fps:8.1f} frames/s   (face found in {found}/{len(clip)})")
        res = bench_crop_paste(clip)
        print(f"face box size (median)        {res.pop('_box_size'):8.0f} px")
        for k, v in res.items():
            print(f"{k:<30s}{v * 1e3:8.2f} ms/frame")
        if args.sam2:
            n = min(len(clip), 8)
            print(f"SAM 2 tiny @{args.sam2_size} (random)       {bench_sam2(clip[:n], args.sam2_size) * 1e3:8.1f} ms/frame")


if __name__ == "__main__":
    main()
