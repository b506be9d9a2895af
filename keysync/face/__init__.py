"""Face processing for keysync: landmarks, masks, occlusion (SAM 2) and crop / paste-back.

Conventions: frames are ``uint8`` RGB ``(N, H, W, 3)``; points are ``(x, y)`` pixels (x =
column, y = row) of the frame they belong to; masks are ``(N, H, W)`` with **1 = regenerate**
(occluder masks: 1 = occluder).

Typical use on a full-frame video::

    from keysync import face
    with face.create_backend("mediapipe") as backend:          # offline, weights in the wheel
        track = face.extract_landmarks(frames, backend)         # (N, 68, 2) + found flags
    plan = face.plan_crops(track.points, frames.shape[1:3])     # smoothed square boxes
    crops = plan.crop(frames)                                   # (N, 512, 512, 3)
    masks = face.build_masks(plan.to_crop(track.points), (512, 512), "box")
    latent_masks = face.downsample_masks(masks, (64, 64))       # (N, 1, 64, 64) float
    ... generate 512² faces ...
    out = list(face.paste_back_clip(frames, generated, plan.boxes, masks))

Modules: :mod:`.landmarks` (interface, :func:`extract_landmarks`), :mod:`.backend_mediapipe`,
:mod:`.backend_fan`, :mod:`.tracking`, :mod:`.masks`, :mod:`.occlusion`, :mod:`.crop`,
:mod:`.paste`, :mod:`.synthetic`. Names are imported lazily, so using the masks does not need
OpenCV, MediaPipe or SAM 2.
"""

from importlib import import_module

_EXPORTS = {
    "LandmarkBackend": "landmarks", "LandmarkTrack": "landmarks", "extract_landmarks": "landmarks",
    "create_backend": "landmarks", "landmarks_for_frames": "landmarks",
    "FaceCandidate": "tracking", "NoFaceFoundError": "tracking", "MainFaceTracker": "tracking",
    "fill_missing": "tracking", "gaussian_smooth": "tracking",
    "MASK_KINDS": "masks", "build_masks": "masks", "downsample_masks": "masks", "scale_landmarks": "masks",
    "box_masks": "masks", "full_masks": "masks", "mouth_masks": "masks", "heart_masks": "masks",
    "face_contour_masks": "masks",
    "CropPlan": "crop", "plan_crops": "crop", "face_boxes": "crop", "smooth_boxes": "crop",
    "crop_faces": "crop", "crop_masks": "crop", "crop_matrix": "crop",
    "paste_back": "paste", "paste_back_clip": "paste", "feather_alpha": "paste",
    "SAM2Occluder": "occlusion", "OcclusionResult": "occlusion", "apply_occlusion": "occlusion",
    "build_sam2_video_predictor": "occlusion",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
