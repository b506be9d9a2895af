"""Short synthetic "videos" made from a still face image, for tests, examples and benchmarks.

No package ships a real talking-face video; a still (e.g. ``skimage.data.astronaut()``) moved by
small shifts and scalings stands in for one. The known per-frame transforms let tests check that
landmarks follow the face.
"""

from __future__ import annotations

from typing import Optional, Tuple

import cv2
import numpy as np

__all__ = ["jitter_clip", "place_on_canvas"]


def jitter_clip(image: np.ndarray, num_frames: int = 8, max_shift: float = 8.0, max_scale: float = 0.05,
                out_size: Optional[Tuple[int, int]] = None, seed: int = 0):
    """Frames ``(N, H, W, 3)`` uint8 of ``image`` moved by smooth shifts and scalings.

    Frame ``i`` is ``image`` warped by ``matrices[i]`` (2×3, image pixels → frame pixels) about
    the image centre: shifts up to ``max_shift`` px, scale within ``1 ± max_scale``. Borders are
    reflected. ``out_size`` = (H, W) of the frames (default: the image's).
    Returns ``(frames, matrices)``; frame 0 is the image itself (identity) when ``out_size`` is None.
    """
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    oh, ow = out_size if out_size is not None else (h, w)
    phase = rng.uniform(0, 2 * np.pi, 3)
    t = np.linspace(0, 2 * np.pi, num_frames, endpoint=False)
    frames, mats = [], []
    for i in range(num_frames):
        s = 1.0 + max_scale * np.sin(t[i] + phase[0]) * (i > 0)
        dx = max_shift * np.sin(t[i] + phase[1]) * (i > 0) + (ow - w) / 2
        dy = max_shift * np.sin(2 * t[i] + phase[2]) * (i > 0) + (oh - h) / 2
        cx, cy = (w - 1) / 2, (h - 1) / 2
        m = np.array([[s, 0.0, cx - s * cx + dx], [0.0, s, cy - s * cy + dy]])
        frames.append(cv2.warpAffine(image, m, (ow, oh), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REFLECT_101))
        mats.append(m)
    return np.stack(frames), np.stack(mats)


def place_on_canvas(image: np.ndarray, canvas_size: Tuple[int, int], top_left: Tuple[int, int],
                    fill: int = 40) -> np.ndarray:
    """``image`` pasted at ``top_left`` = (x, y) on a flat canvas of ``canvas_size`` = (H, W)
    (the part falling outside the canvas is cut off)."""
    ch, cw = canvas_size
    canvas = np.full((ch, cw) + image.shape[2:], fill, dtype=image.dtype)
    x, y = top_left
    h, w = image.shape[:2]
    xa, ya, xb, yb = max(x, 0), max(y, 0), min(x + w, cw), min(y + h, ch)
    if xa < xb and ya < yb:
        canvas[ya:yb, xa:xb] = image[ya - y:yb - y, xa - x:xb - x]
    return canvas
