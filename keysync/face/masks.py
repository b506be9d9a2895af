"""Lower-face masks from 68-point landmarks (SPEC §1.2 item 6), at any frame size.

Convention: masks are ``uint8`` arrays ``(N, H, W)`` with **1 = region to regenerate** (the lower
face) and 0 = keep. Landmarks are ``(N, 68, 2)`` (or ``(68, 2)``) iBUG points, ``(x, y)`` in
pixels of the frame the mask is built for (x = column, y = row).

Kinds (``MASK_KINDS``), each matching the reference bit for bit:

* ``"box"`` (default, the only one the reference scripts use): columns from the leftmost to the
  rightmost landmark x, rows from y(landmark ``nose_index``=28) down to the bottom of the frame.
* ``"full"``: every row from y(landmark ``nose_index``) + offset down to the bottom.
* ``"mouth"``: the box, but from y(nose) - 1 % of the width down to the lowest landmark + 1 %.
* ``"heart"``: the box from y(landmark 29) down, minus a rectangle over the nose (kept).
* ``"face"``: the jaw-line polygon (landmarks 2..14) pushed out by 5 % of the height.

Coordinates are truncated to integers the way the reference does (towards zero) and the
rectangles are inclusive of their end rows/columns. :func:`downsample_masks` brings masks to
latent resolution with nearest sampling (``F.interpolate(mode="nearest")``, as the reference).
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "MASK_KINDS",
    "build_masks",
    "box_masks",
    "full_masks",
    "mouth_masks",
    "heart_masks",
    "face_contour_masks",
    "downsample_masks",
    "scale_landmarks",
]

MASK_KINDS = ("box", "full", "mouth", "heart", "face")
Size = Tuple[int, int]


def _as_batch(landmarks) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=np.float64)[..., :2]
    if lm.ndim == 2:
        lm = lm[None]
    if lm.ndim != 3 or lm.shape[1] != 68:
        raise ValueError(f"landmarks must be (N, 68, 2) or (68, 2), got {np.shape(landmarks)}")
    return lm


def _trunc(v: float) -> int:
    """float -> int the way ``np.int32(v)`` / ``int(v)`` does it: towards zero."""
    return int(np.trunc(v))


def _fill_rect(mask: np.ndarray, x0: int, y0: int, x1: int, y1: int, value: int = 1) -> None:
    """Set ``mask[y0..y1, x0..x1]`` (inclusive, clipped to the frame) to ``value``."""
    h, w = mask.shape
    xa, xb = max(min(x0, x1), 0), min(max(x0, x1), w - 1)
    ya, yb = max(min(y0, y1), 0), min(max(y0, y1), h - 1)
    if xa <= xb and ya <= yb:
        mask[ya:yb + 1, xa:xb + 1] = value


def _expand_px(expand: float, ref: int) -> float:
    """Fractions in [0, 1) are relative to ``ref`` pixels (then truncated); larger values are pixels."""
    return float(int(expand * ref)) if 0 <= expand < 1 else float(expand)


def box_masks(landmarks, size: Size, nose_index: int = 28, box_expand: float = 0.0) -> np.ndarray:
    """Box mask ``(N, H, W)`` uint8, 1 = regenerate. ``size`` = (H, W).

    Columns trunc(min x) .. trunc(max x), rows trunc(y[nose_index] - expand) .. H-1, where
    ``box_expand`` in [0, 1) is a fraction of the width.
    """
    lm = _as_batch(landmarks)
    h, w = size
    expand = _expand_px(box_expand, w)
    out = np.zeros((len(lm), h, w), dtype=np.uint8)
    for i, pts in enumerate(lm):
        x0, x1 = _trunc(pts[:, 0].min()), _trunc(pts[:, 0].max())
        _fill_rect(out[i], x0, _trunc(pts[nose_index, 1] - expand), x1, h)
    return out


def mouth_masks(landmarks, size: Size, nose_index: int = 28, box_expand: float = 0.01) -> np.ndarray:
    """Mouth box ``(N, H, W)`` uint8: the box mask cut at the lowest landmark + expand.

    Rows trunc(y[nose_index] - e) .. trunc(min(H, max y + e)); ``e`` = ``box_expand`` · W.
    """
    lm = _as_batch(landmarks)
    h, w = size
    expand = _expand_px(box_expand, w)
    out = np.zeros((len(lm), h, w), dtype=np.uint8)
    for i, pts in enumerate(lm):
        x0, x1 = _trunc(pts[:, 0].min()), _trunc(pts[:, 0].max())
        bottom = _trunc(min(float(h), pts[:, 1].max() + expand))
        _fill_rect(out[i], x0, _trunc(pts[nose_index, 1] - expand), x1, bottom)
    return out


def full_masks(landmarks, size: Size, nose_index: int = 28, offset: float = 0.0) -> np.ndarray:
    """Full-width mask ``(N, H, W)`` uint8: rows y >= clip(y[nose_index] + offset, 0, H-1).

    ``offset`` with 0 < |offset| < 1 is a fraction of the height (truncated to pixels).
    """
    lm = _as_batch(landmarks)
    h, w = size
    if 0 < abs(offset) < 1:
        offset = int(offset * h)
    cut = np.clip(lm[:, nose_index, 1] + offset, 0, h - 1)
    rows = (np.arange(h)[None, :] >= cut[:, None]).astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(rows[:, :, None], (len(lm), h, w)))


def heart_masks(landmarks, size: Size, box_expand: float = 0.0, keep_nose: bool = True) -> np.ndarray:
    """"Heart" mask ``(N, H, W)`` uint8: box from y(landmark 29) down, minus the nose.

    The nose rectangle (kept, 0) spans x[31] - d .. x[35] + d, rows trunc(y[29]) .. trunc(y[33]),
    with d = 0.1·|x[2] - x[29]|. ``box_expand`` (fraction of the height) raises the top edge.
    Two reference quirks are not copied: where the nose rectangle sticks out of the box the
    reference's uint8 ``1 - 2`` gives 255 (we give 0), and when box corners fall outside the
    frame its self-crossing contour leaves stray diagonal pixels (we fill the plain rectangle).
    """
    lm = _as_batch(landmarks)
    h, w = size
    out = np.zeros((len(lm), h, w), dtype=np.uint8)
    for i, pts in enumerate(lm):
        cut = int(pts[29, 1])
        if box_expand > 0:
            cut = max(0, cut - int(box_expand * h))
        x0, x1 = _trunc(pts[:, 0].min()), _trunc(pts[:, 0].max())
        _fill_rect(out[i], x0, cut, x1, h)
        if keep_nose:
            d = abs(pts[2, 0] - pts[29, 0]) * 0.10
            _fill_rect(out[i], int(pts[31, 0] - d), cut, int(pts[35, 0] + d), int(pts[33, 1]), 0)
    return out


def _push_out(poly: Sequence[Tuple[int, int]], amount: float) -> list:
    """Move each vertex ``amount`` px away from the vertex centroid (then truncate to int)."""
    if amount == 0:
        return list(poly)
    cx = sum(p[0] for p in poly) / len(poly)
    cy = sum(p[1] for p in poly) / len(poly)
    out = []
    for x, y in poly:
        vx, vy = x - cx, y - cy
        norm = float(np.sqrt(vx * vx + vy * vy))
        out.append((x, y) if norm == 0 else (int(x + amount * vx / norm), int(y + amount * vy / norm)))
    return out


def face_contour_masks(landmarks, size: Size, mask_expand: float = 0.05) -> np.ndarray:
    """Face-contour mask ``(N, H, W)`` uint8: filled polygon of jaw landmarks 2..14.

    The polygon (integer vertices) is pushed out by ``mask_expand`` (a fraction of the height when
    0 < |mask_expand| < 1, else pixels) and rasterised with PIL, outline included.
    """
    from PIL import Image, ImageDraw

    lm = _as_batch(landmarks)
    h, w = size
    if 0 < abs(mask_expand) < 1:
        mask_expand = int(mask_expand * h)
    out = np.zeros((len(lm), h, w), dtype=np.uint8)
    for i, pts in enumerate(lm):
        poly = [(int(x), int(y)) for x, y in pts[2:15]]
        img = Image.new("L", (w, h), 0)
        ImageDraw.Draw(img).polygon(_push_out(poly, mask_expand), outline=1, fill=1)
        out[i] = np.asarray(img)
    return out


def build_masks(landmarks, size: Size, kind: str = "box", latent_size: Union[Size, None] = None,
                **kwargs) -> Union[np.ndarray, torch.Tensor]:
    """Masks of ``kind`` for ``landmarks`` (x, y pixels of a frame of ``size`` = (H, W)).

    Returns uint8 ``(N, H, W)`` (1 = regenerate) or, with ``latent_size`` = (h, w), the float
    tensor ``(N, 1, h, w)`` from :func:`downsample_masks`. ``kwargs`` go to the kind's builder.
    """
    builders = {"box": box_masks, "full": full_masks, "mouth": mouth_masks,
                "heart": heart_masks, "face": face_contour_masks}
    if kind not in builders:
        raise ValueError(f"unknown mask kind {kind!r}; expected one of {MASK_KINDS}")
    masks = builders[kind](landmarks, tuple(size), **kwargs)
    return masks if latent_size is None else downsample_masks(masks, latent_size)


def downsample_masks(masks, size: Size = (64, 64)) -> torch.Tensor:
    """Nearest-resize masks ``(N, H, W)`` to float ``(N, 1, h, w)`` (top-left sample of each cell)."""
    m = torch.as_tensor(np.asarray(masks) if not torch.is_tensor(masks) else masks)
    if m.ndim == 2:
        m = m[None]
    if m.ndim == 3:
        m = m[:, None]
    return F.interpolate(m.float(), size=tuple(size), mode="nearest")


def scale_landmarks(landmarks, from_size: Size, to_size: Size, to_int: bool = False) -> np.ndarray:
    """Rescale (x, y) points from a frame of ``from_size`` (H, W) to ``to_size`` (H, W).

    ``to_int=True`` truncates like the reference pipeline (which scales to 512 and casts to int).
    """
    lm = np.asarray(landmarks, dtype=np.float64)[..., :2]
    scale = np.array([to_size[1] / from_size[1], to_size[0] / from_size[0]])
    out = lm * scale
    return out.astype(np.int64) if to_int else out.astype(np.float32)

