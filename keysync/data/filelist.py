"""File lists for training (SPEC §7.4): walk a root, filter, group by speaker id, split.

The speaker id of a file is the part of its name before the first ``_`` or ``-`` (``id01_clip3.mp4``
→ ``id01``), or its parent folder's name when the name has neither. Splits are made by id, so
no speaker appears in two splits, deterministically for a given seed.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from keysync.data.paths import VIDEO_SUFFIXES


def speaker_id(path: Path) -> str:
    parts = re.split(r"[_-]", path.stem, maxsplit=1)
    return parts[0] if len(parts) > 1 else path.parent.name


def find_files(root: str | Path, extensions: Sequence[str] = (".mp4", ".mov"), contains: str | None = None,
               exclude: str | None = None) -> list[Path]:
    """Non-empty files under ``root`` with one of ``extensions``, optionally filtered by substring."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"not a folder: {root}")
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    files = [p for p in sorted(root.rglob("*")) if p.is_file() and p.suffix.lower() in exts and p.stat().st_size > 0]
    if contains:
        files = [p for p in files if contains in str(p)]
    if exclude:
        files = [p for p in files if exclude not in str(p)]
    return files


def split_by_speaker(files: Sequence[Path], fractions: tuple[float, float, float] = (0.9, 0.05, 0.05),
                     seed: int = 0) -> dict[str, list[Path]]:
    """{"train", "val", "test"} lists; whole speakers go to one split (at least one in train)."""
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions must be ≥ 0 and sum to 1, got {fractions}")
    groups: dict[str, list[Path]] = defaultdict(list)
    for f in files:
        groups[speaker_id(f)].append(f)
    ids = sorted(groups)
    random.Random(seed).shuffle(ids)
    n = len(ids)
    n_val, n_test = round(n * fractions[1]), round(n * fractions[2])
    n_train = max(n - n_val - n_test, 1 if n else 0)
    chosen = {"train": ids[:n_train], "val": ids[n_train:n_train + n_val], "test": ids[n_train + n_val:]}
    return {name: sorted(f for i in group for f in groups[i]) for name, group in chosen.items()}


def write_filelist(files: Sequence[Path], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{f}\n" for f in files))
    return path


__all__ = ["VIDEO_SUFFIXES", "find_files", "speaker_id", "split_by_speaker", "write_filelist"]
