"""Offline landmark backend: MediaPipe Face Mesh (468 points) mapped to iBUG-68.

The face-mesh and face-detection models ship inside the ``mediapipe`` wheel (0.10.21; newer
releases ship no face models), so nothing is downloaded. Install with
``pip install --no-deps mediapipe==0.10.21 absl-py attrs flatbuffers "protobuf>=4.25.3,<5" matplotlib``.

Each iBUG point is one mesh vertex or the mean of two (:data:`MESH_TO_IBUG68`). Against dlib's
68-point predictor this map gives a mean error of 2.8 % (astronaut) and 3.5 % (Grace Hopper) of
the inter-ocular distance; the jaw is the least accurate (2.7 / 5.7 px), the mouth 1.3 / 2.9 px.
MediaPipe reports no per-face score, so candidates get ``score = 1.0``.
Points are ``(x, y)`` pixels of the input frame.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

from .landmarks import FaceCandidate, LandmarkBackend
from .tracking import box_iou

__all__ = ["MediaPipeBackend", "MESH_TO_IBUG68", "mesh_to_ibug68"]

# iBUG-68 index -> Face Mesh vertex (or pair of vertices, averaged). Left/right pairs are mirror
# vertices of the mesh, so the mapped shape stays symmetric.
MESH_TO_IBUG68 = (
    # jaw 0-16 (image left to right, via the chin 152)
    127, 93, 132, 58, 172, 150, 149, 148, 152, 377, 378, 379, 397, 288, 361, 323, 356,
    # brows 17-26: mean of the upper and lower brow outline
    (70, 46), (63, 53), (105, 52), (66, 65), (107, 55),
    (336, 285), (296, 295), (334, 282), (293, 283), (300, 276),
    # nose 27-35
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    # eyes 36-47
    33, 159, 158, 133, 153, 144, 362, 385, 386, 263, 373, 380,
    # outer lips 48-59
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
    # inner lips 60-67
    78, 82, 13, 312, 308, 317, 14, 87,
)
assert len(MESH_TO_IBUG68) == 68

_IDX_A = np.array([m[0] if isinstance(m, tuple) else m for m in MESH_TO_IBUG68])
_IDX_B = np.array([m[1] if isinstance(m, tuple) else m for m in MESH_TO_IBUG68])


def mesh_to_ibug68(mesh: np.ndarray) -> np.ndarray:
    """(..., 468 or 478, 2) mesh points -> (..., 68, 2) iBUG points (same units)."""
    mesh = np.asarray(mesh, dtype=np.float32)
    return 0.5 * (mesh[..., _IDX_A, :] + mesh[..., _IDX_B, :])


class MediaPipeBackend(LandmarkBackend):
    """MediaPipe Face Mesh, up to ``max_num_faces`` faces per frame.

    ``static_image_mode=True`` (default) runs the detector on every frame: as fast here as
    MediaPipe's own frame-to-frame tracking (``False``, reset for every clip), which lags behind
    fast head motion (5 px mouth error after a 22 px jump on the test clip, < 1 px in static
    mode). Temporal smoothing is done afterwards by :func:`keysync.face.extract_landmarks`.

    Face Mesh's own detector only finds faces that fill a good part of the frame. When it finds
    none and ``small_faces`` is True, MediaPipe's full-range face detector looks for smaller faces
    (on the whole frame, then on overlapping square tiles) and the mesh runs on an enlarged
    square crop around each (``score`` = that detector's score); this finds faces down to about
    5 % of the frame width (100 px in 1080p).
    """

    name = "mediapipe"

    def __init__(self, max_num_faces: int = 4, static_image_mode: bool = True,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 small_faces: bool = True, small_face_crop: int = 384):
        try:
            from mediapipe.python.solutions import face_detection, face_mesh
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError(
                "the 'mediapipe' landmark backend needs mediapipe==0.10.21: pip install --no-deps "
                "mediapipe==0.10.21 absl-py attrs flatbuffers 'protobuf>=4.25.3,<5' matplotlib") from e
        self._fm, self._fd = face_mesh, face_detection
        self._kwargs = dict(max_num_faces=max_num_faces, static_image_mode=static_image_mode,
                            refine_landmarks=False, min_detection_confidence=min_detection_confidence,
                            min_tracking_confidence=min_tracking_confidence)
        self.max_num_faces = int(max_num_faces)
        self.min_detection_confidence = float(min_detection_confidence)
        self.small_faces = bool(small_faces)
        self.small_face_crop = int(small_face_crop)
        self._mesh = self._crop_mesh = self._detector = None

    def reset(self) -> None:
        if self._mesh is not None:  # only the tracking mesh carries state between frames
            self._mesh.close()
            self._mesh = None

    def close(self) -> None:
        for obj in (self._mesh, self._crop_mesh, self._detector):
            if obj is not None:
                obj.close()
        self._mesh = self._crop_mesh = self._detector = None

    def _run_mesh(self, mesh, image: np.ndarray) -> List[np.ndarray]:
        """(468, 2) mesh points per face, pixel-centred (MediaPipe's [0, 1] spans the pixel edges)."""
        h, w = image.shape[:2]
        res = mesh.process(np.ascontiguousarray(image))
        return [np.array([(p.x * w - 0.5, p.y * h - 0.5) for p in lm.landmark], dtype=np.float32)
                for lm in res.multi_face_landmarks or []]

    def _candidate(self, mesh_pts: np.ndarray, score: float) -> FaceCandidate:
        box = np.concatenate([mesh_pts.min(0), mesh_pts.max(0)])
        return FaceCandidate(points=mesh_to_ibug68(mesh_pts), score=score, box=box)

    def _detect_boxes(self, image: np.ndarray, x0: int = 0, y0: int = 0) -> List[Tuple[np.ndarray, float]]:
        """Full-range detector boxes ``(x0, y0, x1, y1)`` (frame pixels, offset by the tile origin)."""
        h, w = image.shape[:2]
        res = self._detector.process(np.ascontiguousarray(image))
        out = []
        for d in res.detections or []:
            b = d.location_data.relative_bounding_box
            box = np.array([b.xmin * w + x0, b.ymin * h + y0, (b.xmin + b.width) * w + x0,
                            (b.ymin + b.height) * h + y0], dtype=np.float32)
            out.append((box, float(d.score[0])))
        return out

    def _find_small_faces(self, frame: np.ndarray) -> List[Tuple[np.ndarray, float]]:
        """Detector boxes on the whole frame, else on overlapping square tiles (side min(H, W),
        then half that), where a small face covers more of the detector's 192×192 input."""
        h, w = frame.shape[:2]
        found = self._detect_boxes(frame)
        side = min(h, w)
        for _level in range(2):
            if found or side < 128:
                break
            for ty in _tile_starts(h, side):
                for tx in _tile_starts(w, side):
                    if side >= max(h, w) and (tx, ty) == (0, 0):
                        continue  # the whole (square) frame was already searched
                    found += self._detect_boxes(frame[ty:ty + side, tx:tx + side], tx, ty)
            side //= 2
        keep: List[Tuple[np.ndarray, float]] = []
        for box, score in sorted(found, key=lambda t: -t[1]):  # greedy NMS across tiles
            if all(box_iou(box, k[0]) < 0.3 for k in keep):
                keep.append((box, score))
        return keep[: self.max_num_faces]

    def _small_faces(self, frame: np.ndarray) -> List[FaceCandidate]:
        from .crop import crop_matrix, invert_affine, transform_points, warp_affine

        if self._detector is None:
            self._detector = self._fd.FaceDetection(model_selection=1,
                                                    min_detection_confidence=self.min_detection_confidence)
            self._crop_mesh = self._fm.FaceMesh(static_image_mode=True, max_num_faces=1,
                                                refine_landmarks=False,
                                                min_detection_confidence=self.min_detection_confidence)
        faces = []
        s = self.small_face_crop
        for box, score in self._find_small_faces(frame):
            size = 2.0 * float(max(box[2] - box[0], box[3] - box[1]))
            m = crop_matrix(((box[0] + box[2]) / 2 - 0.5, (box[1] + box[3]) / 2 - 0.5, size), s)  # edges -> centres
            crop = warp_affine(frame, m, (s, s), "linear", "replicate")
            for pts in self._run_mesh(self._crop_mesh, crop)[:1]:
                faces.append(self._candidate(transform_points(pts, invert_affine(m)).astype(np.float32), score))
        return faces

    def detect(self, frames: np.ndarray) -> List[List[FaceCandidate]]:
        if self._mesh is None:
            self._mesh = self._fm.FaceMesh(**self._kwargs)
        out: List[List[FaceCandidate]] = []
        for frame in frames:
            faces = [self._candidate(p, 1.0) for p in self._run_mesh(self._mesh, frame)]
            if not faces and self.small_faces:
                faces = self._small_faces(frame)
            out.append(faces)
        return out


def _tile_starts(length: int, side: int) -> List[int]:
    """Start offsets of tiles of ``side`` px covering ``length`` px with about half overlap."""
    if side >= length:
        return [0]
    n = int(np.ceil((length - side) / (side / 2))) + 1
    return [int(round(v)) for v in np.linspace(0, length - side, n)]
