"""Internal decoding backends for :mod:`keysync.media.video` (not public API).

* PyAV: ``frame.to_ndarray(format="rgb24")`` -- the conversion ``torchvision.io.read_video``
  uses, so full-size frames match it bit for bit.
* ffmpeg subprocess: raw ``rgb24`` on a pipe; identical to PyAV at native size (same swscale
  conversion), slightly different when resizing.
"""

from __future__ import annotations

import functools
import re
import subprocess
from fractions import Fraction
from typing import Iterator, List, Optional, Tuple

import numpy as np

from . import _ffmpeg
from .errors import CorruptMediaError, MissingDependencyError, NoVideoStreamError

#: ``seek=None`` seeks only when skipping at least this many frames of a constant-rate stream.
AUTO_SEEK_MIN_FRAMES = 250


def import_av():
    try:
        import av  # noqa: F401
    except ImportError:
        return None
    return av


def resolve_backend(backend: str) -> str:
    if backend == "auto":
        return "pyav" if import_av() is not None else "ffmpeg"
    if backend == "pyav" and import_av() is None:
        raise MissingDependencyError("backend='pyav' needs PyAV: `pip install av` (or use backend='ffmpeg').")
    if backend not in ("pyav", "ffmpeg"):
        raise ValueError(f"backend must be 'auto', 'pyav' or 'ffmpeg', got {backend!r}")
    return backend


def av_open(p: str):
    av = import_av()
    try:
        return av.open(p, metadata_errors="ignore")
    except av.FFmpegError as e:
        raise CorruptMediaError(
            f"'{p}' is corrupt, truncated or not a media file: {getattr(e, 'strerror', None) or e}", p
        ) from e


def av_video_stream(c, p: str):
    if not c.streams.video:
        raise NoVideoStreamError(f"'{p}' has no video stream.", p)
    return c.streams.video[0]


def av_rate(s, p: str) -> Fraction:
    rate = s.average_rate or s.guessed_rate or s.base_rate
    if not rate:
        raise CorruptMediaError(f"'{p}' declares no frame rate for its video stream.", p)
    return Fraction(rate)


def parse_rate(text) -> Optional[Fraction]:
    try:
        r = Fraction(str(text))
    except (ValueError, ZeroDivisionError):
        return None
    return r if r > 0 else None


def pyav_frames(p: str, start: int, num_frames: Optional[int], size, seek: Optional[bool]):
    """Yield (H, W, 3) uint8 frames with PyAV; optional keyframe seek for large ``start``."""
    av = import_av()
    kw = {"format": "rgb24"}
    if size is not None:
        kw.update(height=size[0], width=size[1], interpolation="BILINEAR")
    with av_open(p) as c:
        s = av_video_stream(c, p)
        s.thread_type = "AUTO"
        fps, tb = av_rate(s, p), s.time_base
        cfr = bool(s.base_rate) and abs(float(fps) / float(s.base_rate) - 1) < 1e-3
        do_seek = bool(start) and (seek if seek is not None else (cfr and start >= AUTO_SEEK_MIN_FRAMES))
        first_pts = None
        if do_seek:
            try:
                first = next(iter(c.decode(s)), None)
                first_pts = first.pts if first is not None else None
                if first_pts is not None and tb:
                    target = first_pts + int((Fraction(start) - Fraction(1, 2)) / fps / tb)
                    c.seek(max(target, first_pts), stream=s, backward=True, any_frame=False)
            except av.FFmpegError:
                first_pts = None
        if first_pts is None and do_seek:  # seeking impossible: restart from the beginning
            yield from pyav_frames(p, start, num_frames, size, False)
            return
        idx, produced, last_pts = -1, 0, None
        try:
            for frame in c.decode(s):
                if first_pts is not None and frame.pts is not None:
                    i = int(round((frame.pts - first_pts) * tb * fps))
                    if idx < 0 and i > start:  # overshot the target: decode sequentially
                        yield from pyav_frames(p, start, num_frames, size, False)
                        return
                    idx = i
                else:
                    idx += 1
                last_pts = frame.pts if frame.pts is not None else last_pts
                if idx < start:
                    continue
                yield frame.to_ndarray(**kw)
                produced += 1
                if num_frames is not None and produced >= num_frames:
                    return
        except av.FFmpegError as e:
            raise CorruptMediaError(f"Decoding '{p}' failed after frame {idx}: {e}", p) from e
        # Reached EOF. Fewer frames than the header counts *and* a header promising much more
        # time than was decoded means truncation (either alone can be a long last frame of a
        # variable-rate video, or an edit list).
        if last_pts is not None and s.duration and tb and s.frames and idx + 1 < s.frames:
            end = (s.start_time or 0) + s.duration
            if float((end - last_pts) * tb) > 2.0 / float(fps) + 0.05:
                raise CorruptMediaError(
                    f"'{p}' is truncated: its header declares {float(s.duration * tb):.2f} s of video "
                    f"but decoding stopped at {float((last_pts - (s.start_time or 0)) * tb):.2f} s.", p)


@functools.lru_cache(maxsize=4)
def _fps_mode_flag(exe: str) -> List[str]:
    try:
        out = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True).stdout
        m = re.search(r"version n?(\d+)\.(\d+)", out)
        if m and (int(m.group(1)), int(m.group(2))) < (5, 1):
            return ["-vsync", "passthrough"]
    except OSError:
        pass
    return ["-fps_mode", "passthrough"]


def ffmpeg_chunks(p: str, start: int, num_frames: Optional[int], size: Optional[Tuple[int, int]],
                  chunk: int, native_hw: Tuple[int, int]) -> Iterator[np.ndarray]:
    """Yield (n, H, W, 3) uint8 chunks decoded by an ffmpeg subprocess (exact frame indices)."""
    h, w = size if size is not None else native_hw
    exe = _ffmpeg.find_executable("ffmpeg", p)
    args = _ffmpeg.base_args(exe) + ["-noautorotate", "-i", p, "-map", "0:v:0", "-an", "-sn", "-dn"]
    filters = [f"trim=start_frame={int(start)}"] if start else []
    if size is not None:
        filters.append(f"scale={w}:{h}:flags=bilinear")
    if filters:
        args += ["-vf", ",".join(filters)]
    if num_frames is not None:
        args += ["-frames:v", str(int(num_frames))]
    args += ["-sws_flags", "bilinear"] + _fps_mode_flag(exe) + ["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    fb = h * w * 3
    for block in _ffmpeg.stream_blocks(args, p, fb * chunk, "decoding the video of"):
        n = len(block) // fb
        if n:
            yield np.frombuffer(block[: n * fb], np.uint8).reshape(n, h, w, 3).copy()
