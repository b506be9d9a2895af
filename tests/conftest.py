"""Shared test fixtures: reference vectors copied from ../shared/reference (see tests/data/README.md)."""

from __future__ import annotations

import json
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
