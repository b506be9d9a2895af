"""Exceptions of a job → the one-line message the page shows (never a stack trace).

Bad inputs (unreadable or empty files, no face, too long, missing weights, occlusion without
SAM 2) are the errors the pipelines raise as ``ValueError`` / ``FileNotFoundError`` /
:class:`~keysync.media.MediaError` with a message that names the file: the message is shown as
is, with the upload's temporary path replaced by the name the user chose. Anything else is a
bug: it is logged with its traceback on the server and the page says so in one line.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class DemoInputError(ValueError):
    """An input the demo refuses before running (too long, missing, inconsistent options)."""


def _expected(err: BaseException) -> bool:
    from keysync.media.errors import MediaError

    return isinstance(err, (ValueError, FileNotFoundError, IsADirectoryError, MediaError, ImportError))


def friendly_paths(message: str, uploads: dict[str, str | Path | None]) -> str:
    """Replace each upload's server path in ``message`` by ``label (file name)``."""
    for label, path in uploads.items():
        if path:
            message = message.replace(str(path), f"{label} ({Path(path).name})")
    return message


def user_message(err: BaseException, uploads: dict[str, str | Path | None] | None = None) -> str:
    """The text the page shows for ``err``."""
    if _expected(err):
        text = str(err) or type(err).__name__
        if isinstance(err, KeyError):  # str(KeyError) quotes its argument
            text = str(err.args[0]) if err.args else text
    else:
        log.error("demo job failed", exc_info=err)
        text = f"internal error ({type(err).__name__}: {err}); the server log has the details"
    return friendly_paths(text, uploads or {})


class ErrorBoard:
    """The last error message of each browser session, so that a follow-up event can write it into
    the page (Gradio's error pop-up does not always render, e.g. after an unplayable video upload)."""

    def __init__(self, capacity: int = 256):
        self.capacity = capacity
        self._messages: dict[str, str] = {}
        self._lock = threading.Lock()

    def post(self, session: str | None, message: str) -> None:
        with self._lock:
            self._messages.pop(session or "", None)
            self._messages[session or ""] = message
            while len(self._messages) > self.capacity:
                self._messages.pop(next(iter(self._messages)))

    def take(self, session: str | None) -> str | None:
        with self._lock:
            return self._messages.pop(session or "", None)


def error_markdown(message: str | None) -> str:
    """An error message as Markdown for the page (Markdown's own characters escaped)."""
    if not message:
        return ""
    escaped = "".join("\\" + c if c in "\\`*_[]<>#|" else c for c in message)
    return f"**Error:** {escaped}"
