"""Token <-> frame alignment rules (pure functions; SPEC §1.4, §11.25; README §10 traps 2-6)."""

import json
from pathlib import Path

import pytest
import torch

from keysync.audio.alignment import (
    aligned_chunk_plan,
    calculate_splits,
    nearest_resize_index,
    nearest_resize_tokens,
    num_frames,
    num_tokens,
    pad_frames_to_even,
    pair_tokens_zero_pad,
)

REF = Path(__file__).parent / "data" / "reference"


@pytest.fixture(scope="module")
def manifest():
    return json.loads((REF / "audio_manifest.json").read_text())


def test_token_counts():
    assert all(num_tokens(640 * f) == 2 * f - 1 for f in range(1, 5000))
    assert num_tokens(399) == 0 and num_tokens(400) == 1 and num_tokens(5000) == 15
    assert num_frames(5000) == 8 and num_frames(900) == 2 and num_frames(640) == 1


def test_pair_tokens_zero_pad_hand_checked():
    tokens = torch.arange(1, 6, dtype=torch.float32)[:, None].repeat(1, 3)  # 5 tokens = 2F-1, F=3
    out = pair_tokens_zero_pad(tokens)
    assert out.shape == (3, 2, 3)
    assert out[:, :, 0].tolist() == [[1, 2], [3, 4], [5, 0]]  # frame i: tokens 2i, 2i+1; last is zero
    assert torch.equal(pair_tokens_zero_pad(tokens[:4]), tokens[:4].reshape(2, 2, 3))
    with pytest.raises(ValueError):
        pair_tokens_zero_pad(tokens[:0])


def test_nearest_resize_duplicates_token0_hand_checked():
    tokens = torch.arange(7, dtype=torch.float32)[:, None]  # 2F'-1 tokens, F'=4
    out = nearest_resize_tokens(tokens, 4)
    assert out[:, :, 0].tolist() == [[0, 0], [1, 2], [3, 4], [5, 6]]  # frame i: (2i-1, 2i)


def test_nearest_resize_index_pattern(manifest):
    assert nearest_resize_index(15, 16) == manifest["wavlm"]["cases"]["f7"]["nearest_resize_source_index"]
    for fp in list(range(1, 200)) + [512, 1026, 2999, 3000]:
        assert nearest_resize_index(2 * fp - 1, 2 * fp) == [max(j - 1, 0) for j in range(2 * fp)]


def test_pad_frames_to_even():
    f = torch.ones(7, 640)
    p = pad_frames_to_even(f)
    assert p.shape == (8, 640) and torch.all(p[-1] == 0)
    assert pad_frames_to_even(p) is p


def test_calculate_splits_reference_cases(manifest):
    cases = []
    for model in ("hubert", "wavlm"):
        for case in manifest[model]["cases"].values():
            cases += case.get("rawpipe_calculate_splits", [])
    assert cases
    for c in cases:
        assert calculate_splits(c["total"], c["min_last_size"]) == c["sizes"]
    assert calculate_splits(639_999, 320_000) == [639_999]  # nothing split below 2x
    sizes = calculate_splits(2_000_000, 320_000)
    assert len(sizes) == 6 and sum(sizes) == 2_000_000 and sizes[-1] >= 320_000


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 500])
def test_aligned_chunk_plan_covers_every_token(chunk):
    for n in range(1, 60):
        # HuBERT-style: chunk k yields tokens 2a .. 2b-1 (last chunk one fewer)
        plan = aligned_chunk_plan(n, chunk, lead_in=0, lookahead=80)
        assert plan[0][0] == 0 and plan[-1][1] == n
        assert all(p[1] == q[0] for p, q in zip(plan, plan[1:]))
        counts = [num_tokens(s1 - s0) for _, _, s0, s1 in plan]
        assert counts == [2 * (b - a) - (b == n) for a, b, _, _ in plan]
        assert all(s0 == 640 * a for a, _, s0, _ in plan)  # token 0 of chunk = global token 2a
        # WavLM-style: chunk k (a >= 1) yields raw tokens 2a-1 .. 2b-2
        plan = aligned_chunk_plan(n, chunk, lead_in=320, lookahead=0)
        for a, b, s0, s1 in plan:
            assert num_tokens(s1 - s0) == 2 * (b - a) - (a == 0)
            assert s0 == max(640 * a - 320, 0)
