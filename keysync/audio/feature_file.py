"""Long audio tracks and their features kept in memory-mapped temporary files, not host memory.

HuBERT / WavLM features of a 512² dubbing job take 2 · 768 · 4 B per model frame and encoder,
about 1.1 GB per hour for the two. :func:`encode_to_file` writes the blocks that
:meth:`~keysync.audio.encoders.SpeechEncoder.iter_encode` yields (one per 20 s encoder chunk) into
an unlinked temporary file and returns a tensor backed by it: the operating system pages rows in
when the sampling loop reads them and drops them under pressure, so the job holds one block, not
the track. The values are exactly those of ``encoder(audio, sr, n_frames)``.
"""

from __future__ import annotations

import tempfile
from itertools import chain

import numpy as np
import torch


def file_backed_array(shape: tuple[int, ...], dtype, directory: str | None = None) -> np.memmap:
    """A zero-filled writable array in an unlinked temporary file (freed with the array)."""
    with tempfile.TemporaryFile(dir=directory, prefix="keysync-") as handle:
        return np.memmap(handle, dtype=dtype, mode="w+", shape=shape)


def to_file(array: np.ndarray, directory: str | None = None) -> np.memmap:
    """A file-backed copy of ``array`` (e.g. an hour of 16 kHz samples, 230 MB)."""
    out = file_backed_array(array.shape, array.dtype, directory)
    out[:] = array
    return out


def encode_to_file(encoder, audio: np.ndarray, sr: int, n_frames: int, directory: str | None = None) -> torch.Tensor:
    """``encoder``'s (n_frames, 2, D) float32 features, backed by a temporary file in ``directory``
    (default: the system's temporary folder; the file is removed when the tensor is freed).
    Encoders without ``iter_encode`` are run whole and their output returned as it is."""
    iterate = getattr(encoder, "iter_encode", None)
    if iterate is None:
        return encoder(audio, sr, n_frames).float()
    blocks = iterate(audio, sr, n_frames)
    first = next(blocks)
    rows = file_backed_array((n_frames,) + tuple(first.shape[1:]), np.float32, directory)
    done = 0
    for block in chain([first], blocks):
        if done + len(block) > n_frames:
            raise RuntimeError(f"{type(encoder).__name__} gave more than {n_frames} frames of features")
        rows[done:done + len(block)] = block.float().numpy()
        done += len(block)
    if done != n_frames:
        raise RuntimeError(f"{type(encoder).__name__} gave {done} frames of features, expected {n_frames}")
    return torch.from_numpy(rows)
