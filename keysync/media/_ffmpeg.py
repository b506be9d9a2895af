"""Internal helpers: locating ffmpeg/ffprobe, running them, mapping failures to
:mod:`keysync.media.errors`, streaming raw bytes from a pipe, and atomic output files.

Not part of the public API.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager, suppress
from typing import IO, Iterator, List, Optional, Sequence

from .errors import (
    CorruptMediaError,
    FFmpegError,
    FFmpegNotFoundError,
    MediaNotFoundError,
    MediaWriteError,
    NoAudioStreamError,
    NoVideoStreamError,
    NotAFileError,
    PathLike,
)

#: Environment variables that override the executables looked up on PATH.
ENV_FFMPEG = "KEYSYNC_FFMPEG"
ENV_FFPROBE = "KEYSYNC_FFPROBE"

_INSTALL_HINT = (
    "Install FFmpeg (Debian/Ubuntu: `apt-get install ffmpeg`; macOS: `brew install ffmpeg`; "
    "conda: `conda install -c conda-forge ffmpeg`) or set {env} to the executable's path."
)

# ffmpeg messages meaning the input itself is unreadable or truncated.
_CORRUPT_MARKERS = (
    "moov atom not found",
    "invalid data found when processing input",
    "partial file",
    "could not find codec parameters",
    "error opening input",
    "ebml header parsing failed",
    "header missing",
    "end of file",
    "failed to read frame size",
    "format not recognized",
)


def find_executable(name: str = "ffmpeg", for_path: Optional[PathLike] = None) -> str:
    """Return the path of ``ffmpeg`` or ``ffprobe``.

    ``$KEYSYNC_FFMPEG`` / ``$KEYSYNC_FFPROBE`` take precedence over ``PATH``.
    Raises :class:`FFmpegNotFoundError` (naming ``for_path`` if given) when it is missing.
    """
    env = ENV_FFMPEG if name == "ffmpeg" else ENV_FFPROBE
    hint = _INSTALL_HINT.format(env=env)
    where = f" (needed to process '{os.fspath(for_path)}')" if for_path is not None else ""
    override = os.environ.get(env)
    if override:
        if os.path.isfile(override) and os.access(override, os.X_OK):
            return override
        raise FFmpegNotFoundError(
            f"${env} points to '{override}', which is not an executable file{where}. {hint}",
            for_path,
        )
    exe = shutil.which(name)
    if exe is None:
        raise FFmpegNotFoundError(
            f"The '{name}' executable was not found on PATH{where}; keysync.media uses FFmpeg "
            f"to decode and encode audio/video. {hint}",
            for_path,
        )
    return exe


def classify_failure(stderr: str, path: Optional[PathLike], action: str, returncode=None) -> Exception:
    """Turn ffmpeg's stderr into the most specific :class:`MediaError` subclass."""
    p = os.fspath(path) if path is not None else "<unknown>"
    tail = stderr.strip()[-2000:]
    low = tail.lower()
    detail = f"\nffmpeg said: {tail}" if tail else ""
    if "matches no streams" in low or "does not contain any stream" in low:
        if ":a" in low or "audio" in action:
            return NoAudioStreamError(f"'{p}' has no audio stream ({action}).", p)
        return NoVideoStreamError(f"'{p}' has no video stream ({action}).", p)
    if "no such file or directory" in low and not os.path.exists(p):
        return MediaNotFoundError(f"Media file not found: '{p}' does not exist.", p)
    if "is a directory" in low:
        return NotAFileError(f"Expected a media file but '{p}' is a directory.", p)
    if any(m in low for m in _CORRUPT_MARKERS):
        what = "truncated (the file ends before its last frame/sample)" if "partial file" in low else (
            "corrupt or not a media file ffmpeg can read"
        )
        return CorruptMediaError(f"'{p}' is {what} ({action}).{detail}", p)
    rc = f" with exit status {returncode}" if returncode is not None else ""
    return FFmpegError(f"ffmpeg failed{rc} while {action} '{p}'.{detail}", p, stderr=tail)


def run(args: Sequence[str], path: Optional[PathLike], action: str) -> bytes:
    """Run an ffmpeg/ffprobe command line; return stdout or raise a classified error."""
    proc = subprocess.run(list(args), stdin=subprocess.DEVNULL, capture_output=True)
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise classify_failure(err, path, action, proc.returncode)
    if "partial file" in err.lower():
        raise classify_failure(err, path, action)
    return proc.stdout


def ffprobe_json(path: str, extra: Sequence[str] = ()) -> dict:
    """``ffprobe -of json`` on ``path`` with the given ``-show_*`` arguments."""
    exe = find_executable("ffprobe", path)
    out = run([exe, "-v", "error", "-of", "json", *extra, path], path, "probing")
    try:
        return json.loads(out.decode("utf-8", "replace") or "{}")
    except json.JSONDecodeError as e:  # pragma: no cover - ffprobe always prints JSON
        raise FFmpegError(f"ffprobe printed unreadable output for '{path}': {e}", path) from e


def stream_blocks(args: Sequence[str], path: PathLike, block_bytes: int, action: str) -> Iterator[bytes]:
    """Run ffmpeg writing raw data to stdout; yield blocks of exactly ``block_bytes``
    (the last one may be shorter). After EOF the exit status and stderr are checked and
    a classified error is raised on failure or truncation. Closing the generator early
    kills ffmpeg.
    """
    with tempfile.TemporaryFile() as errf:
        proc = subprocess.Popen(list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf)
        try:
            assert proc.stdout is not None
            while True:
                block = proc.stdout.read(block_bytes)
                if not block:
                    break
                yield block
            rc = proc.wait()
            errf.seek(0)
            err = errf.read().decode("utf-8", "replace")
            if rc != 0 or "partial file" in err.lower():
                raise classify_failure(err, path, action, rc if rc != 0 else None)
        finally:
            _terminate(proc)


def _terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    for f in (proc.stdin, proc.stdout):
        if f is not None:
            with suppress(OSError):
                f.close()
    with suppress(Exception):
        proc.wait(timeout=30)


def read_stderr(errf: IO[bytes]) -> str:
    errf.flush()
    errf.seek(0)
    return errf.read().decode("utf-8", "replace")


def _default_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_output(path: PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    The temporary file lives in the destination folder (``.<stem>.<random>.tmp<ext>``, same
    extension so ffmpeg picks the right muxer) so the final :func:`os.replace` is atomic. On any
    exception (including KeyboardInterrupt) it is deleted and ``path`` is left untouched.
    Missing parent folders are created.
    """
    dst = os.path.abspath(os.fspath(path))
    if os.path.isdir(dst):
        raise NotAFileError(f"Cannot write '{dst}': it is a directory.", dst)
    folder = os.path.dirname(dst)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise MediaWriteError(f"Cannot create the output folder '{folder}' for '{dst}': {e}", dst) from e
    stem, ext = os.path.splitext(os.path.basename(dst))
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{ext}", dir=folder)
    os.close(fd)
    try:
        yield tmp
        mode = os.stat(dst).st_mode & 0o7777 if os.path.exists(dst) else _default_file_mode()
        os.chmod(tmp, mode)
        os.replace(tmp, dst)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def fraction_arg(value) -> str:
    """Format a rate (int, float, Fraction, 'n/d' string) as an exact ffmpeg 'n/d' string."""
    from fractions import Fraction

    if isinstance(value, str):
        value = Fraction(value)
    elif isinstance(value, float):
        value = Fraction(value).limit_denominator(1001 * 1000)
    else:
        value = Fraction(value)
    if value <= 0:
        raise ValueError(f"frame rate must be positive, got {value}")
    return f"{value.numerator}/{value.denominator}"


def base_args(exe: str) -> List[str]:
    """Common leading ffmpeg arguments: quiet, never read stdin, no banner."""
    return [exe, "-hide_banner", "-nostdin", "-loglevel", "error"]
