"""Exceptions raised by :mod:`keysync.media`.

Every error derives from :class:`MediaError` and carries ``path`` (the file concerned, or
``None``) so callers can catch one type and still report which file failed. Messages always
name the file and say what is wrong with it.

Where a matching builtin exists the error also derives from it, so generic handlers keep
working: :class:`MediaNotFoundError` is a :class:`FileNotFoundError`, :class:`NotAFileError`
an :class:`IsADirectoryError`, :class:`FFmpegNotFoundError` a :class:`RuntimeError`, and
:class:`MissingDependencyError` an :class:`ImportError`.
"""

from __future__ import annotations

import os
from typing import Optional, Union

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "MediaError",
    "MediaNotFoundError",
    "NotAFileError",
    "EmptyMediaError",
    "CorruptMediaError",
    "NoVideoStreamError",
    "NoAudioStreamError",
    "FFmpegNotFoundError",
    "FFmpegError",
    "MediaWriteError",
    "MissingDependencyError",
    "check_input_file",
]


class MediaError(Exception):
    """Base class of all media I/O errors. ``path`` is the file concerned (``str`` or None)."""

    def __init__(self, message: str, path: Optional[PathLike] = None):
        super().__init__(message)
        self.path = os.fspath(path) if path is not None else None


class MediaNotFoundError(MediaError, FileNotFoundError):
    """The input file does not exist."""


class NotAFileError(MediaError, IsADirectoryError):
    """The input path exists but is a directory (or another non-regular file)."""


class EmptyMediaError(MediaError):
    """The input file is zero bytes long, or holds no decodable samples/frames."""


class CorruptMediaError(MediaError):
    """The file cannot be parsed (unknown format, missing header, truncated data...)."""


class NoVideoStreamError(MediaError):
    """Video frames were requested from a file that has no video stream."""


class NoAudioStreamError(MediaError):
    """Audio was requested from a file that has no audio stream (e.g. a silent mp4)."""


class FFmpegNotFoundError(MediaError, RuntimeError):
    """The ``ffmpeg``/``ffprobe`` executable is not on ``PATH``."""


class FFmpegError(MediaError):
    """ffmpeg/ffprobe failed for a reason not covered by a more specific class.

    ``stderr`` holds the tail of ffmpeg's diagnostic output.
    """

    def __init__(self, message: str, path: Optional[PathLike] = None, stderr: str = ""):
        super().__init__(message, path)
        self.stderr = stderr


class MediaWriteError(MediaError):
    """Encoding or writing an output file failed; no partial output is left behind."""


class MissingDependencyError(MediaError, ImportError):
    """An optional Python package (e.g. PyAV for ``backend="pyav"``) is not installed."""


def check_input_file(path: PathLike) -> str:
    """Validate that ``path`` is an existing, non-empty regular file; return it as ``str``.

    Raises:
        MediaNotFoundError: nothing exists at ``path``.
        NotAFileError: ``path`` is a directory or not a regular file.
        EmptyMediaError: the file is zero bytes long.
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise MediaNotFoundError(f"Media file not found: '{p}' does not exist.", p)
    if os.path.isdir(p):
        raise NotAFileError(f"Expected a media file but '{p}' is a directory.", p)
    if not os.path.isfile(p):
        raise NotAFileError(f"Expected a regular media file but '{p}' is not a regular file.", p)
    if os.path.getsize(p) == 0:
        raise EmptyMediaError(f"Media file '{p}' is empty (0 bytes).", p)
    return p
