"""Audio decoding and writing.

Decoding goes through an ``ffmpeg`` subprocess that writes 32-bit float little-endian PCM
(``f32le``) to a pipe, so anything ffmpeg reads works: wav, flac, mp3, m4a/aac, ogg, and the
audio track of a video (mp4, mkv, mov, ...). Integer PCM is scaled by ``1/32768`` (int16) as
``torchaudio.load``/``soundfile`` do, so a 16-bit wav decodes to exactly ``int16 / 32768``.

Conventions (the project's §0: 16 kHz, 25 fps, 640 samples per video frame):

* samples are ``float32``, nominally in [-1, 1];
* mono audio has shape ``(samples,)``; multi-channel audio has shape ``(channels, samples)``
  (the layout of ``torchaudio.load``);
* mono mixing is the plain **mean over channels**, done in numpy (as the reference
  ``get_raw_audio`` does), never ffmpeg's weighted downmix;
* resampling (``sample_rate=...``) uses ffmpeg's ``swresample``. It is *not* bit-identical to
  ``torchaudio.functional.resample``; callers needing reference-exact numbers should use
  :func:`read_audio_native` (native rate, all channels) and resample themselves.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from . import _ffmpeg
from .errors import CorruptMediaError, EmptyMediaError, NoAudioStreamError, PathLike, check_input_file

SAMPLE_RATE = 16000
FPS = 25
SAMPLES_PER_FRAME = math.ceil(SAMPLE_RATE / FPS)  # 640

__all__ = [
    "SAMPLE_RATE",
    "FPS",
    "SAMPLES_PER_FRAME",
    "AudioInfo",
    "probe_audio",
    "read_audio",
    "read_audio_native",
    "write_audio",
    "audio_to_frames",
]


@dataclass(frozen=True)
class AudioInfo:
    """First audio stream of a file: ``sample_rate`` in Hz, ``channels``, ``duration`` in
    seconds (``None`` if the container does not say), ``codec`` and ``container`` names."""

    path: str
    sample_rate: int
    channels: int
    duration: Optional[float]
    codec: str
    container: str = ""


def probe_audio(path: PathLike) -> AudioInfo:
    """Describe the first audio stream of ``path`` (uses ``ffprobe``).

    Raises :class:`NoAudioStreamError` if the file has no audio stream, plus the input-file
    errors of :func:`keysync.media.errors.check_input_file`.
    """
    p = check_input_file(path)
    info = _ffmpeg.ffprobe_json(
        p,
        ["-select_streams", "a:0", "-show_entries",
         "stream=codec_name,sample_rate,channels,duration:format=duration,format_name"],
    )
    streams = info.get("streams") or []
    if not streams:
        raise NoAudioStreamError(f"'{p}' has no audio stream.", p)
    s = streams[0]
    dur = s.get("duration") or (info.get("format") or {}).get("duration")
    try:
        duration = float(dur) if dur not in (None, "N/A") else None
    except ValueError:
        duration = None
    return AudioInfo(
        path=p,
        sample_rate=int(s.get("sample_rate") or 0),
        channels=int(s.get("channels") or 0),
        duration=duration,
        codec=str(s.get("codec_name", "")),
        container=str((info.get("format") or {}).get("format_name", "")),
    )


# Containers whose header states the exact duration; elsewhere (mp3, adts, ogg) it may be a
# bitrate-based estimate, so a short decode there is not evidence of truncation.
_EXACT_DURATION_CONTAINERS = ("mov", "mp4", "wav", "flac", "w64", "aiff", "caf")


def _wav_missing_bytes(path: str) -> int:
    """For a RIFF/WAVE file: bytes the ``data`` chunk declares beyond the end of the file.

    ffmpeg silently decodes what is there (and ffprobe reports the shortened duration), so a
    truncated WAV is only detectable from its header. Streaming placeholders (0, 0xFFFFFFFF)
    count as unknown.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            cid, csize = struct.unpack("<4sI", f.read(8))
            if cid == b"data":
                if csize in (0, 0xFFFFFFFF, 0x7FFFFFFF):
                    return 0
                return max(0, csize - (size - pos - 8))
            pos += 8 + csize + (csize & 1)
    return 0


def _check_complete(info: AudioInfo, got: int, rate: int, offset: float, duration: Optional[float]) -> None:
    """Raise CorruptMediaError if far fewer samples were decoded than the header declares."""
    if "wav" in info.container.split(","):
        missing = _wav_missing_bytes(info.path)
        if missing > 64 * max(info.channels, 1):
            raise CorruptMediaError(
                f"'{info.path}' is truncated: its WAV header declares {missing} more bytes of audio "
                f"than the file holds.", info.path)
    if not info.duration or not any(c in info.container for c in _EXACT_DURATION_CONTAINERS):
        return
    expected = max(info.duration - offset, 0.0)
    if duration is not None:
        expected = min(expected, duration)
    got_s = got / rate
    if expected - got_s > 0.1 + 0.01 * info.duration:
        raise CorruptMediaError(
            f"'{info.path}' is truncated: its header declares {info.duration:.2f} s of audio but only "
            f"{offset + got_s:.2f} s could be decoded.", info.path)


def _decode(p: str, channels: int, sample_rate: Optional[int], mono: bool,
            offset: float, duration: Optional[float]) -> np.ndarray:
    """Decode the first audio stream to float32 ``(channels, n)`` or mono ``(n,)``."""
    exe = _ffmpeg.find_executable("ffmpeg", p)
    args = _ffmpeg.base_args(exe)
    if offset:
        args += ["-ss", f"{float(offset):.6f}"]
    args += ["-i", p]
    if duration is not None:
        args += ["-t", f"{float(duration):.6f}"]
    args += ["-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", str(channels)]
    if sample_rate is not None:
        args += ["-ar", str(int(sample_rate))]
    args += ["-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]

    frame_bytes = 4 * channels
    block = frame_bytes * 65536
    parts = []
    leftover = b""
    for data in _ffmpeg.stream_blocks(args, p, block, "decoding the audio of"):
        if leftover:
            data = leftover + data
        usable = len(data) - len(data) % frame_bytes
        leftover = data[usable:]
        x = np.frombuffer(data[:usable], dtype="<f4").reshape(-1, channels)
        if mono:
            parts.append(x.mean(axis=1, dtype=np.float32) if channels > 1 else x[:, 0].copy())
        else:
            parts.append(x.T.copy())
    if mono:
        out = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    else:
        out = np.concatenate(parts, axis=1) if parts else np.zeros((channels, 0), np.float32)
    return out.astype(np.float32, copy=False)


def read_audio(
    path: PathLike,
    sample_rate: Optional[int] = SAMPLE_RATE,
    mono: bool = True,
    offset: float = 0.0,
    duration: Optional[float] = None,
) -> np.ndarray:
    """Decode the first audio stream of any file ffmpeg reads.

    Args:
        path: audio file or video with an audio track.
        sample_rate: output rate in Hz (ffmpeg resampler); ``None`` keeps the native rate.
        mono: average all channels (numpy mean) into one; otherwise keep them all.
        offset: start time in seconds (decoded and discarded, sample-accurate).
        duration: maximum seconds to return (``None``: to the end).

    Returns:
        float32 array: ``(samples,)`` if ``mono`` else ``(channels, samples)``.

    Raises:
        MediaNotFoundError, NotAFileError, EmptyMediaError (0-byte file, or no samples at all),
        NoAudioStreamError (e.g. a silent video), CorruptMediaError, FFmpegNotFoundError.
    """
    p = check_input_file(path)
    info = probe_audio(p)
    out = _decode(p, max(info.channels, 1), sample_rate, mono, offset, duration)
    if out.shape[-1] == 0 and not offset and duration is None:
        raise EmptyMediaError(f"The audio stream of '{p}' decodes to no samples.", p)
    _check_complete(info, out.shape[-1], sample_rate or info.sample_rate, offset, duration)
    return out


def read_audio_native(path: PathLike, mono: bool = False) -> Tuple[np.ndarray, int]:
    """Decode without resampling: ``(samples, sample_rate)``.

    ``samples`` is float32 ``(channels, n)`` (every channel, file order, like
    ``torchaudio.load``), or ``(n,)`` channel mean when ``mono``. ``sample_rate`` is the
    stream's native rate in Hz. Use this when reference-exact channel handling matters
    (e.g. "channel 0 only when resampling, mean otherwise").
    """
    p = check_input_file(path)
    info = probe_audio(p)
    out = _decode(p, max(info.channels, 1), None, mono, 0.0, None)
    if out.shape[-1] == 0:
        raise EmptyMediaError(f"The audio stream of '{p}' decodes to no samples.", p)
    _check_complete(info, out.shape[-1], info.sample_rate, 0.0, None)
    return out, info.sample_rate


def _wav_bytes_header(n_frames: int, channels: int, sample_rate: int, float32: bool) -> bytes:
    bits = 32 if float32 else 16
    block_align = channels * bits // 8
    data_size = n_frames * block_align
    fmt_tag = 3 if float32 else 1  # WAVE_FORMAT_IEEE_FLOAT / WAVE_FORMAT_PCM
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, sample_rate, sample_rate * block_align, block_align, bits)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if float32:
        chunks += b"fact" + struct.pack("<II", 4, n_frames)
    riff_size = 4 + len(chunks) + 8 + data_size
    if riff_size > 0xFFFFFFFF:
        raise ValueError("audio too long for a RIFF/WAV file (> 4 GiB)")
    return b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + chunks + b"data" + struct.pack("<I", data_size)


def write_audio(path: PathLike, samples, sample_rate: int = SAMPLE_RATE, subtype: str = "PCM_16") -> str:
    """Write a WAV file atomically (temporary file in the same folder, then ``os.replace``).

    Args:
        path: destination ``.wav``; parent folders are created.
        samples: ``(n,)`` mono or ``(channels, n)`` array. Floats are taken as [-1, 1];
            int16 input is written unchanged (``subtype`` PCM_16).
        sample_rate: in Hz.
        subtype: ``"PCM_16"`` (float -> ``clip(round(x * 32768), -32768, 32767)``, so any
            ``int16 / 32768`` value round-trips exactly through :func:`read_audio`) or
            ``"FLOAT"`` (32-bit IEEE float, lossless for float32 input).

    Returns:
        the destination path as ``str``.
    """
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"samples must be (n,) or (channels, n); got shape {x.shape}")
    if x.shape[0] > 64 and x.shape[1] <= 64:
        raise ValueError(
            f"samples has shape {x.shape}; expected (channels, n). Transpose (n, channels) input."
        )
    subtype = subtype.upper()
    if subtype not in ("PCM_16", "FLOAT"):
        raise ValueError(f"subtype must be 'PCM_16' or 'FLOAT', got {subtype!r}")
    if int(sample_rate) <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if subtype == "FLOAT":
        data = (x / 32768.0 if x.dtype == np.int16 else x).astype("<f4")
    elif x.dtype == np.int16:
        data = x.astype("<i2")
    else:
        xf = x.astype(np.float64)
        if not np.all(np.isfinite(xf)):
            raise ValueError("samples contain NaN or infinite values")
        data = np.clip(np.round(xf * 32768.0), -32768, 32767).astype("<i2")
    channels, n = data.shape
    header = _wav_bytes_header(n, channels, int(sample_rate), subtype == "FLOAT")
    with _ffmpeg.atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(header)
            f.write(np.ascontiguousarray(data.T).tobytes())
    return os.path.abspath(os.fspath(path))


def audio_to_frames(samples: np.ndarray, samples_per_frame: int = SAMPLES_PER_FRAME) -> np.ndarray:
    """Zero-pad 1-D ``samples`` to a multiple of ``samples_per_frame`` and reshape to
    ``(F, samples_per_frame)``: row f holds samples ``[640 f, 640 f + 640)`` (§1.4)."""
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"expected 1-D samples, got shape {x.shape}")
    n_frames = -(-x.shape[0] // samples_per_frame)
    out = np.zeros(n_frames * samples_per_frame, dtype=x.dtype)
    out[: x.shape[0]] = x
    return out.reshape(n_frames, samples_per_frame)
