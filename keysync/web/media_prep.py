"""Input preparation for the demo's jobs: the frame shown for occlusion clicks, the clicked
points drawn on it, and the optional downscale of the input video (output size)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: output sizes offered (label → output height; None: the input's size).
OUTPUT_SIZES: dict[str, int | None] = {"as the input": None, "1080p": 1080, "720p": 720, "480p": 480,
                                       "360p": 360, "240p": 240}


def frame_image(video: str | Path, index: int) -> tuple[np.ndarray, int]:
    """Frame ``index`` of ``video`` (clamped to the clip) as uint8 (H, W, 3) RGB, and that index."""
    from keysync.media import probe_video, read_video

    info = probe_video(video)
    if info.num_frames <= 0:
        raise ValueError(f"{video}: the video has no frames")
    index = int(min(max(int(index), 0), info.num_frames - 1))
    frames, _ = read_video(video, start=index, num_frames=1)
    if len(frames) == 0:  # header overstates the count: fall back to the last readable frame
        frames, _ = read_video(video)
        index = len(frames) - 1
        frames = frames[index:]
    return frames[0], index


def draw_points(image: np.ndarray, points: list[tuple[float, float]]) -> np.ndarray:
    """A copy of ``image`` with each (x, y) marked by a ring and a cross, sized to the image."""
    import cv2

    out = np.ascontiguousarray(image).copy()
    r = max(4, round(min(out.shape[:2]) / 40))
    for x, y in points:
        c = (int(round(x)), int(round(y)))
        cv2.circle(out, c, r, (255, 255, 255), max(2, r // 3), cv2.LINE_AA)
        cv2.circle(out, c, r, (230, 40, 40), max(1, r // 5), cv2.LINE_AA)
        cv2.drawMarker(out, c, (230, 40, 40), cv2.MARKER_CROSS, r, max(1, r // 5), cv2.LINE_AA)
    return out


def scaled_size(width: int, height: int, target_height: int | None) -> tuple[int, int] | None:
    """(width, height) for ``target_height`` keeping the aspect (even sizes, never upscaled);
    None when the video keeps its size."""
    if target_height is None or target_height >= height:
        return None
    h = max(2, int(target_height) // 2 * 2)
    w = max(2, int(round(width * h / height / 2)) * 2)
    return w, h


def downscale_video(src: str | Path, size: tuple[int, int], dst: str | Path, crf: int = 14) -> Path:
    """``src`` resized to ``size`` (w, h) into ``dst`` (H.264, near-lossless; audio dropped: the job
    replaces it anyway). Frame rate and frame count are kept."""
    from keysync.media import _ffmpeg

    exe = _ffmpeg.find_executable("ffmpeg", src)
    dst = Path(dst)
    with _ffmpeg.atomic_output(dst) as tmp:
        args = ["-y", "-i", str(src), "-map", "0:v:0", "-an", "-vf", f"scale={size[0]}:{size[1]}:flags=area",
                "-fps_mode", "passthrough", "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf),
                "-pix_fmt", "yuv420p", tmp]
        _ffmpeg.run(_ffmpeg.base_args(exe) + args, src, "resizing")
    return dst
