"""Video probing, decoding, frame-rate conversion and encoding.

Decoding uses PyAV (``pip install av``) when it is installed -- the same library and RGB
conversion ``torchvision.io.read_video`` uses -- or an ``ffmpeg`` subprocess piping raw
``rgb24`` (``backend="ffmpeg"``, no Python dependency). Encoding and fps conversion always use
the ``ffmpeg`` executable (libx264 + AAC).

Conventions: frames are ``uint8`` RGB arrays of shape ``(N, H, W, 3)`` (one frame:
``(H, W, 3)``); ``fps`` is frames per second (``float``; :class:`VideoInfo` also has the exact
:class:`fractions.Fraction`); durations are seconds; frame ``i`` is the ``i``-th frame in
presentation order, counted from 0. Rotation metadata is ignored (frames come out as stored,
like torchvision/PyAV). Audio passed to :func:`write_video` is float32 in [-1, 1], ``(n,)`` mono
or ``(channels, n)``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Tuple, Union

import numpy as np

from . import _decoders as _dec
from . import _ffmpeg
from .audio import write_audio
from .errors import (CorruptMediaError, EmptyMediaError, MediaWriteError,
                     NoVideoStreamError, PathLike, check_input_file)

__all__ = ["VideoInfo", "probe_video", "iter_video_frames", "read_video", "write_video", "convert_fps"]

Size = Union[int, Tuple[int, int], None]


@dataclass(frozen=True)
class VideoInfo:
    """First video stream of a file (plus whether an audio stream exists).

    ``fps`` (float) / ``fps_fraction`` (exact) are the average frame rate; ``num_frames`` comes
    from the container header, or from counting packets when the header lacks it
    (``frames_counted``); ``width``/``height`` in pixels as stored; ``duration`` in seconds of
    the video stream; ``audio_sample_rate``/``audio_channels`` are None without audio.
    """

    path: str
    fps: float
    fps_fraction: Fraction
    num_frames: int
    width: int
    height: int
    duration: float
    has_audio: bool
    codec: str
    audio_sample_rate: Optional[int] = None
    audio_channels: Optional[int] = None
    frames_counted: bool = False


# ----------------------------------------------------------------------------- probing
def probe_video(path: PathLike, backend: str = "auto", count_frames: bool = True) -> VideoInfo:
    """Describe the first video stream of ``path``.

    If the header has no frame count (e.g. mkv/webm) the packets are counted (demux only, no
    decoding); with ``count_frames=False`` it is estimated as ``round(duration * fps)``.

    Raises MediaNotFoundError, NotAFileError, EmptyMediaError, CorruptMediaError,
    NoVideoStreamError, FFmpegNotFoundError (ffmpeg backend), MissingDependencyError.
    """
    p = check_input_file(path)
    if _dec.resolve_backend(backend) == "pyav":
        av = _dec.import_av()
        with _dec.av_open(p) as c:
            s = _dec.av_video_stream(c, p)
            fps = _dec.av_rate(s, p)
            if s.duration is not None and s.time_base:
                duration = float(s.duration * s.time_base)
            else:
                duration = c.duration / 1e6 if c.duration else 0.0
            n, counted = int(s.frames or 0), False
            if n <= 0:
                if count_frames:
                    try:
                        n, counted = sum(1 for pk in c.demux(s) if pk.size), True
                    except av.FFmpegError as e:
                        raise CorruptMediaError(f"'{p}' could not be read to count its frames: {e}", p) from e
                else:
                    n = int(round(duration * fps))
            a = c.streams.audio[0] if c.streams.audio else None
            cc = s.codec_context
            return VideoInfo(p, float(fps), fps, n, int(cc.width), int(cc.height),
                             duration or float(n / fps), a is not None, str(cc.name),
                             int(a.rate) if a is not None else None,
                             int(a.channels) if a is not None else None, counted)
    entries = ("stream=index,codec_type,codec_name,width,height,avg_frame_rate,r_frame_rate,"
               "nb_frames,duration,sample_rate,channels:format=duration")
    meta = _ffmpeg.ffprobe_json(p, ["-show_entries", entries])
    streams = meta.get("streams") or []
    vs = [s for s in streams if s.get("codec_type") == "video"]
    aus = [s for s in streams if s.get("codec_type") == "audio"]
    if not vs:
        if not streams and not meta.get("format"):
            raise CorruptMediaError(f"'{p}' is not a media file ffprobe can read.", p)
        raise NoVideoStreamError(f"'{p}' has no video stream.", p)
    v = vs[0]
    fps = _dec.parse_rate(v.get("avg_frame_rate")) or _dec.parse_rate(v.get("r_frame_rate"))
    if fps is None:
        raise CorruptMediaError(f"'{p}' declares no frame rate for its video stream.", p)
    dur_text = v.get("duration") or (meta.get("format") or {}).get("duration")
    duration = float(dur_text) if dur_text not in (None, "N/A") else 0.0
    n, counted = (int(v["nb_frames"]) if str(v.get("nb_frames", "")).isdigit() else 0), False
    if n <= 0:
        if count_frames:
            cnt = _ffmpeg.ffprobe_json(p, ["-select_streams", "v:0", "-count_packets",
                                           "-show_entries", "stream=nb_read_packets"])
            n, counted = int((cnt.get("streams") or [{}])[0].get("nb_read_packets", 0)), True
        else:
            n = int(round(duration * fps))
    a = aus[0] if aus else None
    return VideoInfo(p, float(fps), fps, n, int(v.get("width", 0)), int(v.get("height", 0)),
                     duration or float(n / fps), a is not None, str(v.get("codec_name", "")),
                     int(a["sample_rate"]) if a and a.get("sample_rate") else None,
                     int(a["channels"]) if a and a.get("channels") else None, counted)


# ----------------------------------------------------------------------------- decoding
def _hw(size: Size) -> Optional[Tuple[int, int]]:
    if size is None:
        return None
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive, got {size!r}")
    return h, w


def iter_video_frames(path: PathLike, chunk: int = 32, start: int = 0, num_frames: Optional[int] = None,
                      size: Size = None, backend: str = "auto", seek: Optional[bool] = None
                      ) -> Iterator[np.ndarray]:
    """Decode frames lazily, ``chunk`` at a time; memory stays O(chunk) for any video length.

    Args:
        path: any video file ffmpeg can read.
        chunk: frames per yielded array (the last one may be shorter).
        start: index of the first frame to return.
        num_frames: how many frames at most (None: to the end).
        size: output ``H`` (square) or ``(H, W)``; resized with bilinear swscale (not the
            reference's float ``F.interpolate``: resize float tensors yourself for that).
        backend: ``"auto"`` (PyAV if installed), ``"pyav"`` or ``"ffmpeg"``.
        seek: PyAV only. Jump to the keyframe before ``start`` instead of decoding from the
            beginning; frame indices are then derived from timestamps, which assumes a constant
            frame rate. None: only for constant-rate streams with start >= 250.

    Yields:
        uint8 arrays ``(n, H, W, 3)``, RGB, ``1 <= n <= chunk``.
    """
    if chunk < 1 or start < 0 or (num_frames is not None and num_frames < 0):
        raise ValueError("chunk must be >= 1, start and num_frames >= 0")
    p = check_input_file(path)  # checked now, not at the first next()
    return _iter_chunks(p, chunk, start, num_frames, _hw(size), _dec.resolve_backend(backend), seek)


def _iter_chunks(p: str, chunk: int, start: int, num_frames: Optional[int], hw, backend: str,
                 seek: Optional[bool]) -> Iterator[np.ndarray]:
    if num_frames == 0:
        return
    if backend == "ffmpeg":
        info = probe_video(p, backend="ffmpeg", count_frames=False)
        yield from _dec.ffmpeg_chunks(p, start, num_frames, hw, chunk, (info.height, info.width))
        return
    buf: List[np.ndarray] = []
    for frame in _dec.pyav_frames(p, start, num_frames, hw, seek):
        buf.append(frame)
        if len(buf) == chunk:
            yield np.stack(buf)
            buf = []
    if buf:
        yield np.stack(buf)


def read_video(path: PathLike, start: int = 0, num_frames: Optional[int] = None, size: Size = None,
               backend: str = "auto", seek: Optional[bool] = None) -> Tuple[np.ndarray, float]:
    """Read frames ``[start, start + num_frames)`` into memory.

    Returns ``(frames, fps)``: uint8 ``(N, H, W, 3)`` RGB (``N`` may be 0 when ``start`` is past
    the end) and the average frame rate as ``float``. Arguments as :func:`iter_video_frames`.
    Raises the errors of :func:`probe_video`; a file whose stream ends before its header says
    raises CorruptMediaError.
    """
    info = probe_video(path, backend=backend, count_frames=False)
    chunks = list(iter_video_frames(info.path, 256, start, num_frames, size, backend, seek))
    if not chunks:
        h, w = _hw(size) or (info.height, info.width)
        return np.zeros((0, h, w, 3), np.uint8), info.fps
    frames = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
    return frames, info.fps


# ----------------------------------------------------------------------------- encoding
class VideoFrames:
    """Random access to a video's uint8 frames (H, W, 3): ``chunk``-frame blocks are decoded
    (seeking) and the last two kept, so forward and backward (ping-pong) reads both stay cheap
    and memory stays at two blocks whatever the video's length."""

    def __init__(self, path: PathLike, chunk: int = 64):
        self.path, self.chunk, self.cache = Path(path), chunk, {}

    def __getitem__(self, i: int) -> np.ndarray:
        block = int(i) // self.chunk
        if block not in self.cache:
            frames, _ = read_video(self.path, start=block * self.chunk, num_frames=self.chunk)
            if len(frames) <= int(i) - block * self.chunk:
                raise IndexError(f"{self.path}: frame {i} is past the end ({block * self.chunk + len(frames)} frames)")
            if len(self.cache) >= 2:
                self.cache.pop(next(iter(self.cache)))
            self.cache[block] = frames
        return self.cache[block][int(i) - block * self.chunk]


def _iter_frame_chunks(frames) -> Iterator[np.ndarray]:
    if isinstance(frames, np.ndarray) or (hasattr(frames, "__array__") and hasattr(frames, "ndim")):
        a = np.asarray(frames)
        yield a[None] if a.ndim == 3 else a
        return
    for item in frames:
        a = np.asarray(item)
        yield a[None] if a.ndim == 3 else a


def _fix_dims(x: np.ndarray, odd_dims: str) -> np.ndarray:
    h, w = x.shape[1:3]
    if h % 2 == 0 and w % 2 == 0:
        return x
    if odd_dims == "crop":
        return x[:, : h - h % 2, : w - w % 2]
    return np.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def write_video(path: PathLike, frames: Union[np.ndarray, Iterable[np.ndarray]], fps=25,
                audio: Optional[np.ndarray] = None, audio_path: Optional[PathLike] = None,
                sample_rate: int = 16000, crf: int = 18, preset: str = "medium",
                odd_dims: str = "pad", audio_bitrate: str = "128k", shortest: bool = False) -> str:
    """Encode frames to H.264 (yuv420p) with optional AAC audio, atomically.

    Args:
        path: destination (``.mp4``, ``.mkv``, ``.mov``); parent folders are created.
        frames: uint8 RGB ``(N, H, W, 3)`` array, or an iterable of ``(H, W, 3)`` frames and/or
            ``(n, H, W, 3)`` chunks (streamed to ffmpeg, never all in memory).
        fps: frame rate (int, float, Fraction or "30000/1001").
        audio: float32 samples at ``sample_rate`` Hz, ``(n,)`` mono or ``(channels, n)``.
        audio_path: or an audio/video file whose first audio stream is muxed in (re-encoded).
        crf, preset: libx264 quality (lower crf = better; 18 is visually lossless).
        odd_dims: yuv420p needs even sizes: ``"pad"`` repeats the last row/column, ``"crop"``
            drops it.
        shortest: stop at the end of the shorter of video and audio.

    Writes to ``.<name>.<random>.tmp<ext>`` in the destination folder and renames it onto
    ``path`` only after ffmpeg succeeded. If anything fails (including the frame iterator
    raising) the temporary file is removed and an existing ``path`` is left unchanged.
    Returns the absolute destination path.
    """
    if audio is not None and audio_path is not None:
        raise ValueError("give either audio or audio_path, not both")
    if odd_dims not in ("pad", "crop"):
        raise ValueError(f"odd_dims must be 'pad' or 'crop', got {odd_dims!r}")
    rate = _ffmpeg.fraction_arg(fps)
    src_audio = check_input_file(audio_path) if audio_path is not None else None
    chunks = _iter_frame_chunks(frames)
    first = next((c for c in chunks if c.shape[0:1] != (0,)), None)
    if first is None:
        raise EmptyMediaError(f"No frames given to write to '{os.fspath(path)}'.", path)
    shape = first.shape[1:]
    if first.ndim != 4 or shape[2] != 3:
        raise ValueError(f"frames must be (N, H, W, 3) RGB; got a chunk of shape {first.shape}")
    if first.dtype != np.uint8:
        raise TypeError(f"frames must be uint8 RGB, got dtype {first.dtype}")
    h, w = _fix_dims(first[:1], odd_dims).shape[1:3]
    exe = _ffmpeg.find_executable("ffmpeg", path)
    dst = os.path.abspath(os.fspath(path))
    with tempfile.TemporaryDirectory(prefix="keysync_media_") as td, _ffmpeg.atomic_output(dst) as tmp:
        if audio is not None:
            src_audio = write_audio(os.path.join(td, "audio.wav"), np.asarray(audio, np.float32),
                                    sample_rate, subtype="FLOAT")
        args = _ffmpeg.base_args(exe) + ["-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                                         "-framerate", rate, "-i", "pipe:0"]
        if src_audio is not None:
            args += ["-i", src_audio, "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", audio_bitrate]
        args += ["-c:v", "libx264", "-preset", preset, "-crf", str(int(crf)), "-pix_fmt", "yuv420p"]
        if shortest:
            args += ["-shortest"]
        if os.path.splitext(dst)[1].lower() in (".mp4", ".mov", ".m4v"):
            args += ["-movflags", "+faststart"]
        with tempfile.TemporaryFile() as errf:
            proc = subprocess.Popen(args + [tmp], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errf)
            try:
                for c in _chain(first, chunks):
                    if c.ndim != 4 or c.shape[1:] != shape:
                        raise ValueError(f"all frames must have shape {shape}; got a chunk of shape {c.shape}")
                    if c.dtype != np.uint8:
                        raise TypeError(f"frames must be uint8 RGB, got dtype {c.dtype}")
                    try:
                        proc.stdin.write(np.ascontiguousarray(_fix_dims(c, odd_dims)).data)
                    except (BrokenPipeError, ValueError) as e:
                        proc.wait()
                        raise MediaWriteError(f"ffmpeg stopped while writing '{dst}':\n"
                                              f"{_ffmpeg.read_stderr(errf).strip()[-2000:]}", dst) from e
                proc.stdin.close()
                rc = proc.wait()
            except BaseException:
                _ffmpeg._terminate(proc)
                raise
            if rc != 0:
                err = _ffmpeg.read_stderr(errf)
                if src_audio is not None and "matches no streams" in err:
                    raise _ffmpeg.classify_failure(err, src_audio, "reading the audio for")
                raise MediaWriteError(f"ffmpeg failed (exit status {rc}) writing '{dst}':\n{err.strip()[-2000:]}", dst)
    return dst


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    for c in rest:
        if c.shape[0] != 0:
            yield c


def convert_fps(src: PathLike, dst: PathLike, fps=25, crf: int = 18, preset: str = "medium",
                audio_bitrate: str = "192k") -> str:
    """Re-encode ``src`` at a constant ``fps`` (H.264 yuv420p, first audio stream as AAC).

    Uses ffmpeg's ``fps`` filter: output frame ``k`` shows the input frame nearest to time
    ``k / fps``, so a ``D``-second clip gets ``round(D * fps)`` frames. Odd frame sizes get a
    1-pixel black pad. Atomic like :func:`write_video`; ``dst`` may equal ``src``.
    Returns the absolute destination path.
    """
    p = check_input_file(src)
    info = probe_video(p, count_frames=False)  # raises NoVideoStreamError etc. early
    exe = _ffmpeg.find_executable("ffmpeg", p)
    rate = _ffmpeg.fraction_arg(fps)
    vf = f"fps=fps={rate}"
    if info.width % 2 or info.height % 2:
        vf += ",pad=ceil(iw/2)*2:ceil(ih/2)*2"
    out = os.path.abspath(os.fspath(dst))
    with _ffmpeg.atomic_output(out) as tmp:
        args = _ffmpeg.base_args(exe) + ["-y", "-i", p, "-map", "0:v:0", "-map", "0:a:0?", "-vf", vf,
                                         "-c:v", "libx264", "-preset", preset, "-crf", str(int(crf)),
                                         "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", audio_bitrate]
        if os.path.splitext(out)[1].lower() in (".mp4", ".mov", ".m4v"):
            args += ["-movflags", "+faststart"]
        _ffmpeg.run(args + [tmp], p, "converting the frame rate of")
    return out
