"""KeyFace long-video planning (keysync.pipelines.planning_keyface) against the recorded reference runs
(tests/data/reference/planning_keyface.json.gz and planning_keyface_mismatch_check.json.gz, gzip'd
copies of ../shared/reference/*.json) and properties of the full (default) mode.

The recorded runs used a stand-in interpolation engine (pair s ↔ segment s), so they are compared
with ``on_pair_mismatch="standin"``; the real engine's failures (mismatch check file) are checked
with the default ``"raise"``. Fields not compared: as in test_planning.py.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache

import pytest

from conftest import reference_path
from keysync.pipelines.planning import PlanningError
from keysync.pipelines.planning_keyface import (keyface_engine_outcome, keyface_lengths, plan_keyface,
                                                plan_keyface_from_lengths)
from test_planning import check_full_plan, compare_case, cpi_json, chunk_json, sweep_json


@lru_cache(maxsize=None)
def load_gz(name: str) -> dict:
    with gzip.open(reference_path(name), "rt") as f:
        return json.load(f)


def ref() -> dict:
    return load_gz("planning_keyface.json.gz")


CASES = {c["case"]["name"]: c for c in ref()["cases"]}

# reference/README §12: lengths where the real KeyFace engine fails
RUNTIME_ERROR_L = [14, 40, 66, 92, 118, 144, 170, 196, 222, 248, 274, 300, 339, 365, 391, 417, 443, 469, 495, 521,
                   547, 573, 599, 625, 651, 677, 703, 729, 755, 781, 807, 833, 859, 885, 911, 937, 963, 989, 1015,
                   1041, 1067, 1093, 1119]
ZERO_DIVISION_L = list(range(158, 170))


def case_plan(c: dict, on_pair_mismatch: str = "standin", force_raw: bool = False):
    raw = c["raw_audio_samples"] if "raw_audio_samples" in c else c["audio_frames"] * 640
    if force_raw and raw is None:
        raw = c["audio_frames"] * 640
    return plan_keyface_from_lengths(c["audio_frames"], mode="reference",
                                     interp_audio_frames=c.get("interp_audio_frames"),
                                     beats_frames=c.get("beats_frames"), raw_audio_samples=raw,
                                     video_frames=c["video_frames"], on_pair_mismatch=on_pair_mismatch)


@pytest.mark.parametrize("name", list(CASES))
def test_keyface_reference_case(name):
    case = CASES[name]
    if case["error"] is not None:
        with pytest.raises(PlanningError) as e:
            case_plan(case["case"])
        assert e.value.reference_error == case["error"]["type"]
        if "chunks" in case:  # it crashed at the very end: everything before is recorded
            plan = case_plan(case["case"], force_raw=True)
            assert cpi_json(plan, True) == case["create_pipeline_inputs"]
            for got, want in zip(plan.chunks, case["chunks"]):
                g = chunk_json(got, True)
                g["interp_call_info"]["audio_emb_shape"] = want["interp_call_info"]["audio_emb_shape"]
                assert g == want
        return
    compare_case(case, case_plan(case["case"]), keyface=True)
    # the real engine: fails exactly where a chunk's pairs / audio chunks disagree that way
    fails = [keyface_engine_outcome(c["n_keyframe_pairs"], c["n_audio_chunks"]) for c in case["chunks"]]
    fails = [f for f in fails if f.endswith("Error")]
    if fails:
        with pytest.raises(PlanningError) as e:
            case_plan(case["case"], on_pair_mismatch="raise")
        assert e.value.reference_error == fails[0]
    else:
        assert case_plan(case["case"], on_pair_mismatch="raise").n_out == case["output"]["n_frames"]


def sweep_plan(n: int, on_pair_mismatch: str = "standin"):
    return plan_keyface_from_lengths(n, mode="reference", raw_audio_samples=n * 640, video_frames=n,
                                     on_pair_mismatch=on_pair_mismatch)


def test_keyface_reference_sweep():
    rows = ref()["sweep"]["rows"]
    assert len(rows) == 647
    for row in rows:
        got = dict(sweep_json(sweep_plan(row["L"]), keyface=True), L=row["L"])
        assert set(got) == set(row)
        for k in row:
            assert got[k] == row[k], f"L={row['L']}: {k}"


def test_keyface_reference_engine_failures():
    """Default reference mode (real engine) on every planning length 14..1125."""
    errors: dict[str, list[int]] = {}
    surplus = []
    for n in range(14, 1126):
        try:
            plan = sweep_plan(n, on_pair_mismatch="raise")
        except PlanningError as e:
            errors.setdefault(e.reference_error, []).append(n)
            continue
        outcomes = {keyface_engine_outcome(c.n_pairs, c.n_audio_chunks) for c in plan.chunks}
        assert outcomes <= {"ok", "surplus_pair_unused"}
        if "surplus_pair_unused" in outcomes:
            surplus.append(n)
    assert set(errors) == {"RuntimeError", "ZeroDivisionError"}  # nothing unmodelled is ever reached
    assert errors["RuntimeError"] == RUNTIME_ERROR_L
    assert errors["ZeroDivisionError"] == ZERO_DIVISION_L
    swept = {r["L"] for r in ref()["sweep"]["rows"]}
    assert len([n for n in surplus if n in swept]) == 39 and surplus[:6] == [27, 53, 79, 105, 131, 183]
    for n in range(1, 14):
        with pytest.raises(PlanningError) as e:
            plan_keyface(n, mode="reference")
        assert e.value.reference_error == "UnboundLocalError"


def test_keyface_mismatch_check_file():
    data = load_gz("planning_keyface_mismatch_check.json.gz")
    for r in data["results"]:
        a, p = r["n_audio_chunks"], r["n_keyframe_pairs"]
        outcome = keyface_engine_outcome(p, a)
        if r["error"] is not None:
            assert r["error"].startswith(outcome + ":"), (a, p, r["error"])
            continue
        assert outcome in ("ok", "surplus_pair_unused", "one_pair_for_two_segments"), (a, p)
        codes = [x for call in r["network_calls"] if call["net"] == "good" for x in call["concat_channel_codes"]]
        assert len(codes) == 14 * a
        if outcome == "one_pair_for_two_segments":
            continue  # the engine runs but not as planned; reference mode refuses this case
        for f, code in enumerate(codes):  # pair s conditions segment s: start at row 0, end at row 13
            s, pos = divmod(f, 14)
            want = 100 * s + 1 if pos == 0 else 100 * s + 2 if pos == 13 else -1.275
            assert code == pytest.approx(want), (a, p, f)


def test_keyface_reference_lengths():
    assert keyface_lengths(1200, raw_audio_samples=1200 * 640, video_frames=1200, mode="reference") == \
        type(keyface_lengths(1, mode="reference"))(1125, 1125, 1125, 1125 * 640)
    # a short video does not cut the raw audio; the output is cut by the assembled length instead
    lens = keyface_lengths(1200, raw_audio_samples=1200 * 640, video_frames=10, mode="reference")
    assert (lens.n_key, lens.raw_frames) == (1125, 1200)
    lens = keyface_lengths(100, beats_frames=97, interp_audio_frames=99, raw_audio_samples=64000, mode="reference")
    assert (lens.n_key, lens.n_interp) == (97, 97)
    lens = keyface_lengths(100, interp_audio_frames=110, beats_frames=120, raw_audio_samples=64000, mode="reference")
    assert (lens.n_key, lens.n_interp) == (100, 110)
    plan = plan_keyface(100, mode="reference", n_interp_frames=110, raw_audio_frames=200)
    assert plan.interp_audio[-1] == tuple(range(92, 106)) and plan.n_out == 105


# ---------------------------------------------------------------------------------------------
# full mode


def test_keyface_full_mode_properties():
    for n in range(1, 1201):
        plan = plan_keyface(n)
        check_full_plan(plan, n, keysync=False)
        assert all(f.source.kind == "interp" for f in plan.frames)  # KeyFace never pastes keyframes
        assert {keyface_engine_outcome(c.n_pairs, c.n_audio_chunks) for c in plan.chunks} == {"ok"}


def test_keyface_full_mode_examples():
    p = plan_keyface(100)  # tail aligned: frame i > 91 made with audio i, the last segment padded with 99
    assert p.chunks[-1].segments[-1].audio == tuple(range(91, 100)) + (99,) * 5
    assert [f.audio for f in p.frames] == list(range(100))
    for n in (170, 326, 352, 366):
        p = plan_keyface(n)
        assert p.n_out == n and all(s.keyframes_match_audio_ends for c in p.chunks for s in c.segments)
    assert plan_keyface_from_lengths(1132, raw_audio_samples=1132 * 640).n_out == 1125
    assert plan_keyface_from_lengths(100, raw_audio_samples=95 * 640).n_out == 95
    assert plan_keyface_from_lengths(100, raw_audio_samples=110 * 640).n_out == 100
    assert plan_keyface_from_lengths(100, raw_audio_samples=63680).n_out == 100
    assert plan_keyface_from_lengths(100, beats_frames=97, raw_audio_samples=64000).n_out == 97
    p = plan_keyface_from_lengths(100, raw_audio_samples=None)
    assert p.n_out == 100 and p.saved_audio_samples is None
    assert plan_keyface_from_lengths(5, raw_audio_samples=5 * 640).n_out == 5
    with pytest.raises(ValueError):
        plan_keyface(100, on_pair_mismatch="ignore")
