"""KeySync long-video planning (keysync.pipelines.planning) against the recorded reference runs
(tests/data/reference/planning_keysync.json.gz = ../shared/reference/planning_keysync.json, gzip'd
losslessly), the pipeline helpers of dataset_helpers.*, and properties of the full (default) mode.

Compared field by field: every detailed case (create_pipeline_inputs, chunks, segments, output
frames) and every sweep row. Not compared (not planning, or artefacts of the recording):
``main_kwargs_used`` (CLI arguments), ``keyframe_denoiser_kwargs`` / ``interp_denoiser_kwargs`` /
``force_uc_zero_embeddings`` (engine call arguments), the feature widths in
``interp_call_info.audio_emb_shape`` (synthetic file layout; only its first two dims are checked),
the ``message`` / ``where`` text of errors (their type is checked).
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache

import pytest
import torch

from conftest import load_reference, load_reference_json, reference_path
from keysync.pipelines.planning import (LongVideoPlan, PlanningError, get_audio_indexes, keysync_max_frames,
                                        keysync_planning_length, merge_overlapping_segments, plan_keysync,
                                        plan_keysync_from_lengths)


@lru_cache(maxsize=None)
def ref() -> dict:
    with gzip.open(reference_path("planning_keysync.json.gz"), "rt") as f:
        return json.load(f)


CASES = {c["case"]["name"]: c for c in ref()["cases"]}


# ---------------------------------------------------------------------------------------------
# JSON views of a plan (the recording's conventions, reference/README §12)


def encode_frames(xs):
    xs = list(xs)
    if all(b == a + 1 for a, b in zip(xs, xs[1:])):
        return f"{xs[0]}..{xs[-1]}"
    return xs


def kf_json(s, keyface=False):
    d = {"uid": s.uid, "batch": s.batch, "slot": s.slot, "plan_idx": s.frame, "to_remove_planned": s.to_remove,
         "audio": s.audio}
    if not keyface:
        d["gt"] = s.gt
    return d


def slot_json(s, keyface=False):
    d = {"kind": s.kind, "plan_idx": s.frame, "to_remove": s.to_remove, "audio": s.audio}
    if keyface:
        d["audio2"] = s.audio
    else:
        d.update(gt=s.gt, mask=s.mask)
    return d


def segment_json(seg, keyface=False):
    d = {"seg": seg.seg, "start_kf": kf_json(seg.start, keyface) if seg.start else None,
         "end_kf": kf_json(seg.end, keyface) if seg.end else None, "audio": encode_frames(seg.audio),
         "keyframes_match_audio_ends": seg.keyframes_match_audio_ends}
    if keyface:
        d["audio2"] = encode_frames(seg.audio)
    else:
        d.update(gt=encode_frames(seg.gt), mask=encode_frames(seg.mask))
    return d


def source_json(src, keyface=False):
    d = {"chunk": src.chunk, "seg": src.seg, "pos": src.pos, "audio": src.audio, "kind": src.kind}
    if not keyface:
        d.update(kf_plan_idx=src.keyframe.frame if src.keyframe else None, gt=src.gt)
    return d


def chunk_json(ch, keyface=False):
    a = ch.n_audio_chunks
    carried = None
    if ch.carried_in is not None:
        carried = dict(kf_json(ch.carried_in, keyface), to_remove=ch.carried_to_remove)
    flipped = [dict(kf_json(ch.slot_list[k], keyface), position_in_chunk_list=k, plan_kind=ch.slot_list[k].kind)
               for k in ch.flipped]
    d = {"chunk": ch.index, "batches": list(ch.batches), "is_last_chunk": ch.is_last if keyface else None,
         "keyframe_calls": list(ch.batches), "first_keyframe": ch.first_keyframe,
         "last_keyframe": ch.last_keyframe, "interp_slice": list(ch.interp_slice), "carried_in": carried,
         "flipped_positions": flipped, "keyframes_used": [kf_json(s, keyface) for s in ch.keyframes],
         "n_keyframe_pairs": ch.n_pairs,
         "interp_audio_chunks_first_last": [[s.audio[0], s.audio[-1]] for s in ch.segments],
         "n_audio_chunks": a,
         "pairs_vs_audio_chunks": "equal" if ch.n_pairs == a else f"MISMATCH {ch.n_pairs} pairs vs {a} audio chunks",
         "interp_call_info": {"call": ch.index, "n_rows": 14 * a, "n_keyframe_pairs": ch.n_pairs, "n_audio_chunks": a,
                              "n_gt_chunks": None if keyface else a, "n_mask_chunks": None if keyface else a},
         "segments": [segment_json(s, keyface) for s in ch.segments], "vid_len": ch.vid_len}
    if not keyface:
        d["interp_gt_chunks_first_last"] = [[s.gt[0], s.gt[-1]] for s in ch.segments]
        d["interp_mask_chunks_first_last"] = [[s.mask[0], s.mask[-1]] for s in ch.segments]
    return d


def cpi_json(plan: LongVideoPlan, keyface=False):
    firsts = [[a[0], a[-1]] for a in plan.interp_audio]
    d = {"n_keyframe_slots": len(plan.slots), "n_batches": len(plan.batches),
         "batches": [[slot_json(s, keyface) for s in b] for b in plan.batches],
         "interp_list": [list(e) for e in plan.interp_list], "interp_chunk_audio_first_last": firsts,
         "interp_chunk_audio_frames_if_not_consecutive": {
             str(k): list(a) for k, a in enumerate(plan.interp_audio) if not isinstance(encode_frames(a), str)}}
    if keyface:
        d.update(interp_chunk_audio2=firsts, n_emotion_entries=len(plan.slots))
    else:
        d["interp_chunk_gt_equals_audio"] = all(s.gt == s.audio for c in plan.chunks for s in c.segments)
        d["interp_chunk_mask_equals_audio"] = all(s.mask == s.audio for c in plan.chunks for s in c.segments)
    return d


def output_json(plan: LongVideoPlan, keyface=False):
    fr = plan.frames
    d = {"kind": [f.kind for f in fr], "chunk": [f.source.chunk for f in fr], "seg": [f.source.seg for f in fr],
         "pos": [f.source.pos for f in fr], "audio": [f.audio for f in fr]}
    if keyface:
        d["audio2"] = [f.audio for f in fr]
    else:
        d.update(gt=[f.gt for f in fr], mask=[f.mask for f in fr],
                 kf_plan_idx=[f.source.keyframe.frame if f.source.keyframe else None for f in fr])
    d["avg_with"] = [source_json(f.avg_with, keyface) if f.avg_with else None for f in fr]
    return d


def sweep_json(plan: LongVideoPlan, keyface=False):
    d = {"L": None, "error": None, "n_batches": len(plan.batches), "n_chunks_planned": plan.n_chunks_planned,
         "batch_layout": plan.batch_layout, "n_interp_list": len(plan.interp_list), "n_chunks_run": len(plan.chunks),
         "flips": [[c.index, k, c.slot_list[k].kind, c.slot_list[k].frame] for c in plan.chunks for k in c.flipped],
         "pair_audio_mismatch": [[c.index, c.n_pairs, c.n_audio_chunks] for c in plan.chunks
                                 if c.n_pairs != c.n_audio_chunks],
         "segments_not_matching_audio_ends": [[c.index, s.seg] for c in plan.chunks for s in c.segments
                                              if not s.keyframes_match_audio_ends],
         "n_out": plan.n_out, "frames_audio_ne_index": [f.index for f in plan.frames if f.audio != f.index],
         "undecoded_frames": []}
    if not keyface:
        d["frames_gt_ne_index"] = [f.index for f in plan.frames if f.gt != f.index]
        d["frames_mask_ne_index"] = [f.index for f in plan.frames if f.mask != f.index]
    return d


def compare_case(case: dict, plan: LongVideoPlan, keyface=False):
    name = case["case"]["name"]
    got_cpi, want_cpi = cpi_json(plan, keyface), case["create_pipeline_inputs"]
    assert set(got_cpi) == set(want_cpi), name
    for k in want_cpi:
        assert got_cpi[k] == want_cpi[k], f"{name}: create_pipeline_inputs.{k}"
    assert len(plan.chunks) == len(case["chunks"]), name
    for got, want in zip(plan.chunks, case["chunks"]):
        g = chunk_json(got, keyface)
        want = dict(want, interp_call_info=dict(want["interp_call_info"]))
        shape = want["interp_call_info"].pop("audio_emb_shape")
        assert shape[:2] == [got.n_audio_chunks, 14], name
        assert set(g) == set(want), name
        for k in want:
            assert g[k] == want[k], f"{name}: chunk {got.index} {k}"
    out = case["output"]
    assert plan.n_out == out["n_frames"], name
    assert plan.saved_audio_samples == out["saved_audio_samples"], name
    g = output_json(plan, keyface)
    assert set(g) == set(out["frames"]), name
    for k in out["frames"]:
        assert g[k] == out["frames"][k], f"{name}: output.frames.{k}"


# ---------------------------------------------------------------------------------------------
# reference mode: detailed cases and sweep


def keysync_case_plan(c: dict) -> LongVideoPlan:
    return plan_keysync_from_lengths(c["video_frames"], c["audio_frames"], mode="reference",
                                     latent_frames=c.get("latent_frames"), landmark_frames=c.get("landmark_frames"),
                                     interp_audio_frames=c.get("interp_audio_frames"))


@pytest.mark.parametrize("name", list(CASES))
def test_keysync_reference_case(name):
    case = CASES[name]
    if case["error"] is not None:
        with pytest.raises(PlanningError) as e:
            keysync_case_plan(case["case"])
        assert e.value.reference_error == case["error"]["type"]
        return
    compare_case(case, keysync_case_plan(case["case"]))


def test_keysync_reference_sweep():
    rows = ref()["sweep"]["rows"]
    assert len(rows) == 647
    for row in rows:
        plan = plan_keysync_from_lengths(row["L"], row["L"], mode="reference")
        got = dict(sweep_json(plan), L=row["L"])
        assert set(got) == set(row)
        for k in row:
            assert got[k] == row[k], f"L={row['L']}: {k}"


def test_keysync_reference_lengths_and_errors():
    assert keysync_max_frames(45, mode="reference") == 1132
    assert keysync_max_frames(45) == 1125
    assert keysync_max_frames("end") is None
    assert keysync_max_frames("end", mode="reference", video_frames=100) == 1002  # 40 s → 1000 → 14+13·76
    assert keysync_planning_length(1200, 1200, mode="reference") == 1132
    for n in range(1, 14):
        with pytest.raises(PlanningError):
            plan_keysync(n, mode="reference")
    with pytest.raises(PlanningError):  # WavLM shorter than the segments: the reference's stack fails
        plan_keysync(100, mode="reference", interp_audio_frames=90)
    p = plan_keysync(100, mode="reference")
    assert p.dropped_frames == tuple(range(92, 100))


# ---------------------------------------------------------------------------------------------
# pipeline helpers (dataset_helpers.json / .safetensors)


def test_get_audio_indexes():
    for e in load_reference_json("dataset_helpers.json")["pipeline"]["get_audio_indexes"]:
        assert get_audio_indexes(e["main_index"], e["n_audio_frames"], e["max_len"]) == e["out"]


def test_merge_overlapping_segments():
    t = load_reference("dataset_helpers.safetensors")
    x = t["merge_overlapping_segments_in"]
    for overlap in (1, 2):
        want = t[f"merge_overlapping_segments_out_overlap{overlap}"]
        got = merge_overlapping_segments(x, overlap)
        assert got.shape == want.shape and torch.equal(got, want)
    y = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    got = merge_overlapping_segments(y, 1)
    assert got.shape == (5, 4, 5) and torch.equal(got[2], (y[0, 2] + y[1, 0]) / 2)


def test_create_pipeline_inputs_helper_vectors():
    for e in load_reference_json("dataset_helpers.json")["pipeline"]["create_pipeline_inputs"]:
        plan = plan_keysync(e["num_input_frames"], mode="reference", add_zero_flag=e["add_zero_flag"])
        key = "keyframe_source_frames (audio_image_preds; value = source frame index)"
        assert [s.audio for s in plan.slots] == e[key]
        assert [s.gt for s in plan.slots] == e["keyframe_gt_source_frames"]
        assert [s.frame for s in plan.slots] == e["audio_image_preds_idx_clone"]
        assert [s.to_remove for s in plan.slots] == e["to_remove"]
        assert [list(p) for p in plan.interp_list] == e["interpolation_pairs (audio_interp_preds_idx)"]
        assert [[a[0], a[-1]] for a in plan.interp_audio] == e["interpolation_audio_chunks_first_last"]
        assert len(plan.interp_list) == e["num_gt_chunks"] == e["num_masks_interp"]


# ---------------------------------------------------------------------------------------------
# full mode: properties for every L in 1..1200


def check_full_plan(plan: LongVideoPlan, n: int, keysync: bool):
    assert plan.mode == "full" and plan.n_out == n and plan.dropped_frames == ()
    n_seg = max(1, -(-(n - 1) // 13))
    assert plan.keyframe_frames == tuple(range(0, 13 * n_seg + 1, 13))
    assert len(plan.interp_list) == n_seg
    clamp = lambda f: min(f, n - 1)  # noqa: E731
    for b in plan.batches:  # [anchor, keyframes…, pads…]: one anchor, in slot 0, and ≥ 1 keyframe
        kinds = "".join(s.kind[0] for s in b)
        assert kinds == "a" + "k" * kinds.count("k") + "p" * kinds.count("p") and kinds.count("k") >= 1
        assert b[0].audio == 0 and b[0].to_remove and (not keysync or (b[0].gt == 0 and b[0].mask == 0))
    units = []
    prev = None
    for ch in plan.chunks:
        assert ch.n_pairs == ch.n_audio_chunks >= 1 and ch.flipped == ()
        assert all(s.kind == "keyframe" for s in ch.keyframes)
        if prev is not None:  # the boundary keyframe is carried over, not regenerated
            assert ch.carried_in is prev.keyframes[-1] and ch.keyframes[0] is prev.keyframes[-1]
            assert ch.slot_list[0] is ch.carried_in
        else:
            assert ch.carried_in is None
        for k, seg in enumerate(ch.segments):
            u = seg.unit
            units.append(u)
            assert seg.seg == k and seg.start is ch.keyframes[k] and seg.end is ch.keyframes[k + 1]
            assert seg.start.frame == 13 * u and seg.end.frame == 13 * u + 13
            assert seg.audio == tuple(clamp(13 * u + p) for p in range(14)) == plan.interp_audio[u]
            assert seg.keyframes_match_audio_ends
            assert seg.start.audio == seg.audio[0] and seg.end.audio == seg.audio[-1]
            if keysync:
                assert seg.gt == seg.audio == seg.mask
                assert (seg.start.gt, seg.start.mask, seg.end.gt, seg.end.mask) == (
                    seg.audio[0], seg.audio[0], seg.audio[-1], seg.audio[-1])
        assert ch.interp_slice == (ch.segments[0].unit, ch.segments[-1].unit + 1)
        prev = ch
    assert units == list(range(n_seg))
    for r, f in enumerate(plan.frames):  # output frame r made with audio r (gt r, mask r)
        assert f.index == r
        for src in (f.source, f.avg_with):
            if src is None:
                continue
            assert src.audio == r and 13 * plan.chunks[src.chunk].segments[src.seg].unit + src.pos == r
            if keysync:
                assert src.gt == r and src.mask == r
        if keysync and r % 13 == 0:
            assert f.source.kind == "keyframe" and f.source.keyframe.frame == r


def test_keysync_full_mode_properties():
    for n in range(1, 1201):
        check_full_plan(plan_keysync(n), n, keysync=True)


def test_keysync_full_mode_examples():
    p = plan_keysync(365)
    assert p.batch_layout == ["a" + "k" * 13] * 2 + ["akkkpppppppppp"]
    assert [(c.batches, c.interp_slice) for c in p.chunks] == [((0, 1), (0, 25)), ((2,), (25, 28))]
    p = plan_keysync(366)  # one frame past the grid: a virtual keyframe at 377 made with frame 365
    last = p.batches[-1]
    assert p.n_out == 366 and "".join(s.kind[0] for s in last) == "akkkk" + "p" * 9
    assert (last[4].frame, last[4].audio, last[4].gt, last[4].mask) == (377, 365, 365, 365)
    assert p.chunks[-1].segments[-1].audio == (364,) + (365,) * 13
    for n in (326, 338, 339, 352):  # no all-anchor / anchor-less batch, nothing skipped
        p = plan_keysync(n)
        assert all(b[0].kind == "anchor" and b[1].kind == "keyframe" for b in p.batches) and p.n_out == n
    p = plan_keysync(1)
    assert p.n_out == 1 and p.frames[0].source.keyframe.frame == 0 and p.interp_audio == ((0,) * 14,)
    p = plan_keysync(100, chunk_batches=1)
    assert [c.batches for c in p.chunks] == [(0,)] and p.n_out == 100
    p = plan_keysync(400, chunk_batches=1)
    assert [c.batches for c in p.chunks] == [(0,), (1,), (2,)] and p.n_out == 400
    p = plan_keysync(100, landmark_frames=90)
    assert [f.mask for f in p.frames][88:] == [88] + [89] * 11
    assert plan_keysync_from_lengths(1200, 1200).n_out == 1125
    assert plan_keysync_from_lengths(100, 120).n_out == 100
    assert plan_keysync_from_lengths(100, 100, latent_frames=95).n_out == 95
    assert plan_keysync_from_lengths(100, 80).saved_audio_samples == 80 * 640
    assert plan_keysync_from_lengths(2000, 2000, compute_until=None).n_out == 2000
    with pytest.raises(PlanningError):
        plan_keysync(0)
    with pytest.raises(ValueError):
        plan_keysync(10, mode="bogus")
