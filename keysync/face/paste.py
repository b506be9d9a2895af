"""Paste generated 512×512 faces back into the original frames, at the original resolution.

Only pixels inside the mask (1 = regenerate, given in crop pixels) change; the mask is feathered
*inwards* (a distance ramp of ``feather · box size`` pixels), so every pixel outside it stays
byte-identical to the input frame. Where the mask reaches the frame's edge it is not feathered.

Two blending modes:

* ``"delta"`` (default): ``out = frame + α · W⁻¹(face − crop)``, where ``crop`` is the
  unmodified crop of ``frame`` (recomputed here with the same box, or passed in). An unchanged
  face gives back the frame exactly, and detail finer than the crop's resolution is kept. For
  faces much larger than the crop (``box size > out_size``) that detail includes the original
  mouth's fine edges; use ``"replace"`` if that matters.
* ``"replace"``: ``out = (1 − α) · frame + α · W⁻¹(face)``, the classic paste.

``W⁻¹`` is the inverse of the crop transform (:func:`keysync.face.crop.crop_matrix`). Frames and
faces are uint8 RGB ``(H, W, 3)`` / ``(S, S, 3)`` (faces may also be float in 0..255).
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence

import cv2
import numpy as np

from .crop import crop_faces, crop_matrix, invert_affine, warp_affine

__all__ = ["paste_back", "paste_back_clip", "feather_alpha"]

# Pasting shrinks the 512 face to the box size. Plain bicubic sampling keeps the crop → paste round
# trip closest to the identity; only much smaller faces (box < 512/4 px) are box-averaged first.
_PASTE_ANTIALIAS = 0.25


def feather_alpha(region: np.ndarray, feather_px: float, open_sides: Sequence[bool] = (False,) * 4) -> np.ndarray:
    """Blend weights ``(h, w)`` float32 in [0, 1] for a binary ``region``: 0 outside, rising
    linearly to 1 at ``feather_px`` pixels inside its border. ``open_sides`` (top, bottom, left,
    right) marks sides where the region continues past the array (no ramp there)."""
    region = (np.asarray(region) != 0).astype(np.uint8)
    if feather_px < 1 or not region.any():
        return region.astype(np.float32)
    top, bottom, left, right = (int(bool(v)) for v in open_sides)
    pad = int(np.ceil(feather_px)) + 1
    # open sides: continue the region outwards (replicate) far enough that no ramp shows up there;
    # then close everything with a one-pixel zero frame
    big = cv2.copyMakeBorder(region, pad * top, pad * bottom, pad * left, pad * right, cv2.BORDER_REPLICATE)
    big = cv2.copyMakeBorder(big, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    dist = cv2.distanceTransform(big, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    dist = dist[1 + pad * top: big.shape[0] - 1 - pad * bottom, 1 + pad * left: big.shape[1] - 1 - pad * right]
    return np.clip(dist / float(feather_px), 0.0, 1.0).astype(np.float32) * region


def paste_back(frame: np.ndarray, face: np.ndarray, box: Sequence[float], mask: np.ndarray,
               feather: float = 0.04, mode: str = "delta", original_crop: Optional[np.ndarray] = None,
               border: str = "replicate", interpolation: str = "cubic") -> np.ndarray:
    """Blend ``face`` (crop pixels of ``box``) into a copy of ``frame`` inside ``mask``.

    Args:
        frame: ``(H, W, 3)`` uint8, the original frame.
        face: ``(S, S, 3)`` generated face (uint8, or float in 0..255), crop of ``box``.
        box: ``(cx, cy, size)`` crop box in frame pixels (:mod:`keysync.face.crop`).
        mask: ``(S, S)`` region to take from ``face`` (1 = regenerated), in crop pixels.
        feather: width of the inward blend ramp, as a fraction of the box size.
        mode: "delta" or "replace" (module docstring).
        original_crop: the unmodified crop (``mode="delta"``); recomputed from ``frame`` if None
            with ``border`` and ``interpolation``, which must be those the crop was made with.
    Returns:
        ``(H, W, 3)`` uint8; byte-identical to ``frame`` outside the mask.
    """
    if mode not in ("delta", "replace"):
        raise ValueError(f"mode must be 'delta' or 'replace', got {mode!r}")
    frame = np.asarray(frame)
    size_out = face.shape[0]
    if face.shape[:2] != (size_out, size_out) or np.asarray(mask).shape[:2] != (size_out, size_out):
        raise ValueError(f"face {face.shape} and mask {np.shape(mask)} must be the same square size")
    h, w = frame.shape[:2]
    cx, cy, size = (float(v) for v in box)
    out = frame.copy()
    # frame region covered by the box
    x0, x1 = max(int(np.floor(cx - size / 2)) - 1, 0), min(int(np.ceil(cx + size / 2)) + 2, w)
    y0, y1 = max(int(np.floor(cy - size / 2)) - 1, 0), min(int(np.ceil(cy + size / 2)) + 2, h)
    if x1 <= x0 or y1 <= y0:
        return out
    m = invert_affine(crop_matrix(box, size_out))
    m[:, 2] -= np.array([x0, y0], dtype=np.float64)  # crop -> ROI pixels
    dsize = (x1 - x0, y1 - y0)
    region = warp_affine(np.asarray(mask, dtype=np.float32), m, dsize, "linear", "constant", antialias=0) > 0.5
    if not region.any():
        return out
    alpha = feather_alpha(region, feather * size, open_sides=(y0 == 0, y1 == h, x0 == 0, x1 == w))
    roi = frame[y0:y1, x0:x1].astype(np.float32)
    face = np.asarray(face, dtype=np.float32)
    if mode == "delta":
        if original_crop is None:
            original_crop = crop_faces(frame[None], np.asarray(box, dtype=np.float64)[None], size_out, border,
                                       interpolation)[0]
        delta = warp_affine(face - np.asarray(original_crop, dtype=np.float32), m, dsize, "cubic", "replicate",
                            antialias=_PASTE_ANTIALIAS)
        blended = roi + alpha[..., None] * delta
    else:
        warped = warp_affine(face, m, dsize, "cubic", "replicate", antialias=_PASTE_ANTIALIAS)
        blended = roi + alpha[..., None] * (warped - roi)
    sel = alpha > 0
    out[y0:y1, x0:x1][sel] = np.clip(np.rint(blended[sel]), 0, 255).astype(frame.dtype)
    return out


def paste_back_clip(frames, faces, boxes: np.ndarray, masks, original_crops=None, **kwargs) -> Iterator[np.ndarray]:
    """:func:`paste_back` frame by frame; yields ``(H, W, 3)`` uint8 frames (streaming-friendly).

    ``frames`` ``(N, H, W, 3)`` (or an iterable of frames), ``faces`` ``(N, S, S, 3)``,
    ``boxes`` ``(N, 3)``, ``masks`` ``(N, S, S)`` (or one ``(S, S)`` mask for all frames),
    ``original_crops`` ``(N, S, S, 3)`` or None (recomputed, see :func:`paste_back`).
    """
    masks = np.asarray(masks)
    for i, (frame, face) in enumerate(zip(frames, faces)):
        mask = masks if masks.ndim == 2 else masks[i]
        crop = None if original_crops is None else original_crops[i]
        yield paste_back(frame, face, boxes[i], mask, original_crop=crop, **kwargs)
