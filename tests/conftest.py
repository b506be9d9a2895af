"""Shared test fixtures: reference vectors copied from ../shared/reference (see tests/data/README.md)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REFERENCE_DIR = Path(__file__).parent / "data" / "reference"


def reference_path(name: str) -> Path:
    path = REFERENCE_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"reference vector missing: {path}")
    return path


def load_reference(name: str) -> dict[str, torch.Tensor]:
    return load_file(str(reference_path(name)))


def load_reference_json(name: str) -> dict:
    return json.loads(reference_path(name).read_text())


def max_abs_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, f"shape {tuple(a.shape)} != {tuple(b.shape)}"
    return (a.double() - b.double()).abs().max().item()


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def single_thread():
    """One intra-op thread for a module (``pytestmark = pytest.mark.usefixtures("single_thread")``):
    small models gain little from two, and on a busy 2-core machine OpenMP's spinning workers can
    make two threads many times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def speech(path: Path, text: str, seconds: float) -> Path:
    """espeak-ng speech of ``text`` padded/cut to exactly ``seconds``, encoded by ffmpeg from the
    extension of ``path``."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "espeak.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True)
        subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(wav), "-af", f"apad=whole_dur={seconds}",
                        "-t", str(seconds), str(path)], check=True)
    return path
