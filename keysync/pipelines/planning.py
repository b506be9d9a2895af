"""Long-video planning (KeySync dubbing; KeyFace in `planning_keyface`): pure index maps.

Which frames are keyframes, how they fill the 14-slot keyframe batches, how batches are grouped
into chunks, which 14-frame interpolation segment (and which audio / gt / mask frames) makes
every output frame. No models, no files; only `merge_overlapping_segments` touches tensors.

Two modes (SPEC §1.5, §1.7, §11 items 6-9 and 28; reference/README §9, §12):

``mode="reference"`` replays the original loop (`dubbing_pipeline.sample` / `create_pipeline_inputs`)
on indices and gives what it outputs, defects included: the 13k+1 rounding of ``max_frames``; the
anchor inserted into the *growing* list (anchor-padded, all-anchor and anchor-less batches); the
hard-coded chunk of 2 batches; the loop ``break`` when a chunk's first keyframe starts no segment
(an all-anchor last batch); the last (L−1) % 13 frames dropped. Where the original crashes
(L < 14, latents shorter than the clip) it raises `PlanningError`.

``mode="full"`` (default) is the corrected plan, for any L ≥ 1:

* keyframes on the 13-grid 0, 13, …, 13·S with S = max(1, ceil((L−1)/13)); the last one may lie
  past the clip ("virtual", at most 12 frames past L−1). Every index is *clamped* to L−1 when it is
  read, so the virtual keyframe is generated with the audio / gt / mask of frame L−1 and the last
  segment's frames past L−1 repeat frame L−1's conditions (the KeyFace tail padding, aligned);
* segment s covers frames 13s … 13s+13 and is conditioned by keyframes 13s and 13s+13, so both
  ends of every keyframe pair equal the ends of its audio chunk;
* every keyframe batch is [anchor (frame 0), 13 keyframes], the last one padded with copies of
  its last keyframe (never an all-anchor or anchor-less batch);
* chunks of ``chunk_batches`` batches (default 2, honoured); chunk c > 0 starts with the previous
  chunk's last keyframe (carried over, not regenerated) so the boundary frame is shared;
* the generated 13·S+1 frames are cut to L: one output frame per input frame, frame r made with
  audio r, gt r and mask r. Lengths: ``compute_until`` seconds give exactly compute_until·fps
  frames (no 13k+1 rounding); ``"end"`` / None mean no cap.

Both modes: KeySync pastes the keyframe latents on rows 0 / 13 of every segment (output frames
13k are keyframes), KeyFace does not; shared rows of one chunk are averaged, and chunk c > 0
replaces the previous chunk's last frame. Missing landmarks repeat the last one.
"""


from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

from .plan_records import (CHUNK_BATCHES, FPS, MODES, NUM_FRAMES, SAMPLES_PER_FRAME, STRIDE, ChunkPlan, FrameSource,
                           KeyframeSlot, LongVideoPlan, OutputFrame, PlanningError, Segment, _check_mode, clamp_index,
                           get_audio_indexes, merge_overlapping_segments)

__all__ = ["CHUNK_BATCHES", "FPS", "MODES", "NUM_FRAMES", "SAMPLES_PER_FRAME", "STRIDE", "ChunkPlan", "FrameSource",
           "KeyframeSlot", "LongVideoPlan", "OutputFrame", "PlanningError", "Segment", "clamp_index",
           "get_audio_indexes", "merge_overlapping_segments", "assemble_output", "reference_plan", "full_plan",
           "keysync_max_frames", "keysync_planning_length", "plan_keysync", "plan_keysync_from_lengths"]
# shared machinery


def _segment(chunk: int, seg: int, unit: int, pair: tuple, audio: tuple[int, ...],
             mask_of: Optional[Callable[[int], int]], gt_of: Optional[Callable[[int], int]]) -> Segment:
    gt = tuple(gt_of(f) for f in audio) if gt_of is not None else None
    mask = tuple(mask_of(f) for f in audio) if mask_of is not None else None
    return Segment(chunk, seg, unit, pair[0], pair[1], audio, gt, mask)


def _sources(seg: Segment, paste: bool) -> list[FrameSource]:
    """The 14 rows of a segment; with ``paste`` rows 0 and 13 are the keyframe latents (KeySync)."""
    rows = []
    for p in range(NUM_FRAMES):
        kf = seg.start if p == 0 else seg.end if p == NUM_FRAMES - 1 else None
        if paste and kf is not None:
            rows.append(FrameSource(seg.chunk, seg.seg, p, "keyframe", kf.audio, kf.gt, kf.mask, kf))
        else:
            rows.append(FrameSource(seg.chunk, seg.seg, p, "interp", seg.audio[p],
                                    seg.gt[p] if seg.gt is not None else None,
                                    seg.mask[p] if seg.mask is not None else None, None))
    return rows


def assemble_output(chunks: Sequence[ChunkPlan], paste: bool) -> list[tuple[FrameSource, Optional[FrameSource]]]:
    """Per chunk: merge its segments (overlap 1, shared frames averaged: first segment's row 13
    with the next one's row 0); across chunks ``video = concat(video[:-1], chunk_video)``."""
    video: list[tuple[FrameSource, Optional[FrameSource]]] = []
    for ch in chunks:
        rows = [_sources(s, paste) for s in ch.segments]
        local = [(rows[0][0], None)]
        for s in range(len(rows)):
            local.extend((rows[s][p], None) for p in range(1, NUM_FRAMES - 1))
            last = rows[s][NUM_FRAMES - 1]
            local.append((last, rows[s + 1][0]) if s + 1 < len(rows) else (last, None))
        video = local if not video else video[:-1] + local
    return video


def _frames(video: Sequence[tuple[FrameSource, Optional[FrameSource]]], n: int) -> tuple[OutputFrame, ...]:
    return tuple(OutputFrame(i, src, avg) for i, (src, avg) in enumerate(video[:n]))


# ----------------------------------------------------------------------------------------------
# reference replay (shared by KeySync and KeyFace; ``keyface`` switches on its differences)


def _reference_slots(kf_frames: list[int], *, add_zero_flag: bool, mask_of, gt_of) -> list[KeyframeSlot]:
    """Keyframe list → slots: anchors inserted at 0, 14, 28, … *into the growing list* (an index
    past the end appends), then padding to a multiple of 14 with copies of the last entry."""
    entries: list[tuple[Optional[int], int]] = [(f, f) for f in kf_frames]  # (frame, source frame)
    if add_zero_flag:
        anchor = (None, kf_frames[0])
        n_target = len(entries) + (len(entries) + 1) % NUM_FRAMES
        for i in range(0, n_target, NUM_FRAMES):
            entries.insert(i, anchor)
    n_real = len(entries)
    entries += [entries[-1]] * ((NUM_FRAMES - n_real % NUM_FRAMES) % NUM_FRAMES)
    slots = []
    for j, (frame, src) in enumerate(entries):
        padding = j >= n_real
        slots.append(KeyframeSlot(j // NUM_FRAMES, j % NUM_FRAMES, frame, frame is None or padding, src,
                                  gt_of(src) if gt_of is not None else None,
                                  mask_of(src) if mask_of is not None else None, padding))
    return slots


def reference_plan(pipeline: str, n_key: int, n_interp: int, *, keyface: bool, add_zero_flag: bool = True,
                   mask_of: Optional[Callable[[int], int]] = None,
                   gt_of: Optional[Callable[[int], int]] = None) -> dict:
    """Replay `create_pipeline_inputs` and the chunk loop on indices; returns the plan's parts.

    ``n_key``: keyframe-audio frames (the segment loop runs on it); ``n_interp``: interpolation
    audio frames (KeyFace's tail reads it). ``keyface``: tail chunk, ``end_idx += 1`` and the flip in
    the last chunk, no keyframe pasting.
    """
    starts = range(0, n_key - NUM_FRAMES + 1, STRIDE)
    if len(starts) == 0:
        if keyface:
            raise PlanningError(f"{n_key} frames < {NUM_FRAMES}: the reference crashes", "UnboundLocalError",
                                "full_pipeline.py create_pipeline_inputs: remaining_frames = "
                                "len(audio_interpolation) - segment_end")
        raise PlanningError(f"{n_key} frames < {NUM_FRAMES}: the reference crashes", "IndexError",
                            "dubbing_pipeline.py:348 create_pipeline_inputs: first_element = audio_image_preds[0]")
    kf_frames: list[int] = []
    interp_list: list[tuple[int, int]] = []
    interp_audio: list[tuple[int, ...]] = []
    for i in starts:
        for f in (i, i + STRIDE):
            if f not in kf_frames:
                kf_frames.append(f)
        interp_list.append((i, i + STRIDE))
        interp_audio.append(tuple(range(i, i + NUM_FRAMES)))
    seg_end = starts[-1] + NUM_FRAMES
    if keyface and n_interp - seg_end > 0:  # tail: the leftover audio, padded with its last frame
        tail = list(range(seg_end, n_interp))[:NUM_FRAMES]
        interp_audio.append(tuple(tail + [tail[-1]] * (NUM_FRAMES - len(tail))))
        interp_list.append((seg_end, seg_end + STRIDE))

    slots = _reference_slots(kf_frames, add_zero_flag=add_zero_flag, mask_of=mask_of, gt_of=gt_of)
    n_batches = len(slots) // NUM_FRAMES
    chunks: list[ChunkPlan] = []
    carried: Optional[tuple[KeyframeSlot, bool]] = None
    for c, b0 in enumerate(range(0, n_batches, CHUNK_BATCHES)):
        b1 = min(b0 + CHUNK_BATCHES, n_batches)
        is_last = b1 == n_batches
        lst = list(slots[b0 * NUM_FRAMES:b1 * NUM_FRAMES])
        flags = [s.to_remove for s in lst]
        carried_in = carried
        if carried is not None:
            lst.insert(0, carried[0])
            flags.insert(0, carried[1])
        carried = (lst[-1], flags[-1])
        frames = [s.frame for s in lst]
        first_kf = next((f for f in frames if f is not None), None)
        last_kf = next((f for f in reversed(frames) if f is not None), None)
        start_idx = next((k for k, e in enumerate(interp_list) if e[0] == first_kf), None)
        end_idx = next((k for k, e in enumerate(reversed(interp_list)) if e[1] == last_kf), None)
        if end_idx is None:
            raise PlanningError(f"chunk {c}: no segment ends at keyframe {last_kf}", "TypeError",
                                "sample: end_idx += 1 with end_idx None")
        if start_idx is not None:
            end_idx = len(interp_list) - 1 - end_idx
        end_idx += 1
        if start_idx is None:  # the loop's `break`: nothing of this chunk or later is generated
            break
        if end_idx < start_idx:
            end_idx = len(interp_list)
        flipped: list[int] = []
        if keyface and is_last:
            end_idx += 1
            for k in range(1 if flags[0] else 0, len(flags)):
                if flags[k]:
                    flags[k] = False
                    flipped.append(k)
                    break
        kept = [s for s, r in zip(lst, flags) if not r]
        units = list(range(len(interp_list)))[start_idx:end_idx]
        if len(kept) < 2 or not units:
            raise PlanningError(f"chunk {c}: {max(len(kept) - 1, 0)} keyframe pairs, {len(units)} audio chunks",
                                "RuntimeError", "sample_interpolation: torch.stack of an empty list")
        pairs = list(zip(kept[:-1], kept[1:]))
        segs = tuple(_segment(c, k, u, pairs[k] if k < len(pairs) else (None, None), interp_audio[u],
                              mask_of, gt_of) for k, u in enumerate(units))
        chunks.append(ChunkPlan(c, tuple(range(b0, b1)), is_last, carried_in[0] if carried_in else None,
                                carried_in[1] if carried_in else None, tuple(lst), tuple(flags), tuple(flipped),
                                first_kf, last_kf, (start_idx, end_idx), tuple(kept), segs))
    return dict(pipeline=pipeline, mode="reference", n_frames=n_key, keyframe_frames=tuple(kf_frames),
                slots=tuple(slots), interp_list=tuple(interp_list), interp_audio=tuple(interp_audio),
                chunks=tuple(chunks), n_chunks_planned=-(-n_batches // CHUNK_BATCHES))


# ----------------------------------------------------------------------------------------------
# full (corrected) plan


def full_plan(pipeline: str, n_frames: int, *, chunk_batches: int = CHUNK_BATCHES,
              mask_of: Optional[Callable[[int], int]] = None,
              gt_of: Optional[Callable[[int], int]] = None) -> dict:
    """The corrected plan (module docstring); returns the plan's parts (frames not assembled)."""
    if n_frames < 1:
        raise PlanningError(f"need at least one frame, got {n_frames}")
    if chunk_batches < 1:
        raise PlanningError(f"chunk_batches must be ≥ 1, got {chunk_batches}")
    clamp = clamp_index(n_frames)
    n_seg = max(1, -(-(n_frames - 1) // STRIDE))
    kf_frames = [STRIDE * k for k in range(n_seg + 1)]
    interp_list = tuple((STRIDE * s, STRIDE * s + STRIDE) for s in range(n_seg))
    interp_audio = tuple(tuple(clamp(STRIDE * s + p) for p in range(NUM_FRAMES)) for s in range(n_seg))

    def slot(b: int, j: int, frame: Optional[int], to_remove: bool, padding: bool = False) -> KeyframeSlot:
        src = clamp(frame) if frame is not None else 0
        return KeyframeSlot(b, j, frame, to_remove, src, gt_of(src) if gt_of is not None else None,
                            mask_of(src) if mask_of is not None else None, padding)

    per_batch = NUM_FRAMES - 1
    slots: list[KeyframeSlot] = []
    for b, k0 in enumerate(range(0, len(kf_frames), per_batch)):
        group = kf_frames[k0:k0 + per_batch]
        slots.append(slot(b, 0, None, True))
        slots.extend(slot(b, j + 1, f, False) for j, f in enumerate(group))
        slots.extend(slot(b, j, group[-1], True, True) for j in range(len(group) + 1, NUM_FRAMES))
    n_batches = len(slots) // NUM_FRAMES
    chunks = []
    carried: Optional[KeyframeSlot] = None
    for c, b0 in enumerate(range(0, n_batches, chunk_batches)):
        b1 = min(b0 + chunk_batches, n_batches)
        lst = ([carried] if carried is not None else []) + slots[b0 * NUM_FRAMES:b1 * NUM_FRAMES]
        kept = [s for s in lst if not s.to_remove]
        segs = tuple(_segment(c, k, a.frame // STRIDE, (a, e), interp_audio[a.frame // STRIDE], mask_of, gt_of)
                     for k, (a, e) in enumerate(zip(kept[:-1], kept[1:])))
        chunks.append(ChunkPlan(c, tuple(range(b0, b1)), b1 == n_batches, carried, False if carried else None,
                                tuple(lst), tuple(s.to_remove for s in lst), (), kept[0].frame, kept[-1].frame,
                                (segs[0].unit, segs[-1].unit + 1), tuple(kept), segs))
        carried = kept[-1]
    return dict(pipeline=pipeline, mode="full", n_frames=n_frames, keyframe_frames=tuple(kf_frames),
                slots=tuple(slots), interp_list=interp_list, interp_audio=interp_audio, chunks=tuple(chunks),
                n_chunks_planned=len(chunks))


# ----------------------------------------------------------------------------------------------
# KeySync


def keysync_max_frames(compute_until: Union[int, str, None] = 45, *, mode: str = "full",
                       video_frames: Optional[int] = None, fps: int = FPS) -> Optional[int]:
    """Frame cap from ``compute_until`` (seconds). Reference: compute_until·25 rounded **up** to
    14+13k (45 s → 1132); ``"end"`` means int(video_frames·10/25) seconds (≈ no cap). Full:
    compute_until·fps exactly; ``"end"`` / None: no cap."""
    _check_mode(mode)
    if compute_until is None or (compute_until == "end" and mode == "full"):
        return None
    if compute_until == "end":
        if video_frames is None:
            raise PlanningError('compute_until="end" needs video_frames')
        compute_until = int(video_frames * 10 / 25)
    max_frames = int(compute_until * fps)
    if mode == "reference":
        max_frames += (STRIDE - (max_frames - NUM_FRAMES) % STRIDE) % STRIDE
    return max_frames


def keysync_planning_length(video_frames: int, audio_frames: int, *, interp_audio_frames: Optional[int] = None,
                            latent_frames: Optional[int] = None, raw_audio_frames: Optional[int] = None,
                            compute_until: Union[int, str, None] = 45, mode: str = "full") -> int:
    """Usable frames L: everything cut to ``max_frames``, then to min(video, audio).

    Reference: latents shorter than L raise (the original crashes at ``video_emb[-1:].repeat``);
    WavLM / raw audio lengths are ignored (raw audio only shortens the saved soundtrack). Full:
    L = min of every given stream (video, HuBERT, WavLM, latents, raw audio) and the cap.
    """
    cap = keysync_max_frames(compute_until, mode=mode, video_frames=video_frames)
    cut = (lambda n: n) if cap is None else (lambda n: min(n, cap))
    length = min(cut(video_frames), cut(audio_frames))
    if mode == "reference":
        if latent_frames is not None and cut(latent_frames) < length:
            raise PlanningError(f"latents ({latent_frames}) shorter than the clip ({length})", "RuntimeError",
                                "dubbing_pipeline.py:1038 sample: video_emb[-1:].repeat(len(audio) - len(video_emb))")
        return length
    others = [n for n in (interp_audio_frames, latent_frames, raw_audio_frames) if n is not None]
    return min([length] + [cut(n) for n in others])


def plan_keysync(n_frames: int, *, mode: str = "full", landmark_frames: Optional[int] = None,
                 interp_audio_frames: Optional[int] = None, raw_audio_frames: Optional[int] = None,
                 chunk_batches: int = CHUNK_BATCHES, add_zero_flag: bool = True) -> LongVideoPlan:
    """KeySync plan for ``n_frames`` usable frames (see `keysync_planning_length`).

    ``landmark_frames``: fewer landmarks than frames repeat the last one (mask source frame
    min(f, landmark_frames−1)), as the reference does. ``raw_audio_frames`` (default L) only sets
    ``saved_audio_samples``. Reference mode ignores ``chunk_batches`` (2 is hard-coded there) and
    raises on L < 14 or a WavLM stream too short for its segments; ``add_zero_flag`` exists only in
    reference mode (the full plan always has the anchor).
    """
    _check_mode(mode)
    mask_of = clamp_index(landmark_frames)
    gt_of = clamp_index(None)
    if mode == "reference":
        parts = reference_plan("keysync", n_frames, n_frames, keyface=False, add_zero_flag=add_zero_flag,
                               mask_of=mask_of, gt_of=gt_of)
        need = parts["interp_list"][-1][1] + 1
        if interp_audio_frames is not None and interp_audio_frames < need:
            raise PlanningError(f"interpolation audio ({interp_audio_frames}) shorter than the segments ({need})",
                                "RuntimeError", "sample_interpolation: torch.stack of unequal audio chunks")
        for ch in parts["chunks"]:
            if ch.n_pairs != ch.n_audio_chunks:  # never happens for L ≤ 1132; not modelled
                raise PlanningError(f"chunk {ch.index}: {ch.n_pairs} keyframe pairs vs {ch.n_audio_chunks} "
                                    "audio chunks (not modelled)", "RuntimeError", "sample_interpolation")
    else:
        parts = full_plan("keysync", n_frames, chunk_batches=chunk_batches, mask_of=mask_of, gt_of=gt_of)
    video = assemble_output(parts["chunks"], paste=True)
    n_out = len(video) if mode == "reference" else n_frames
    raw = n_frames if raw_audio_frames is None else min(raw_audio_frames, n_frames)
    return LongVideoPlan(**parts, n_generated=len(video), frames=_frames(video, n_out),
                         saved_audio_samples=min(n_out, raw) * SAMPLES_PER_FRAME)


def plan_keysync_from_lengths(video_frames: int, audio_frames: int, *, mode: str = "full",
                              interp_audio_frames: Optional[int] = None, latent_frames: Optional[int] = None,
                              landmark_frames: Optional[int] = None, raw_audio_frames: Optional[int] = None,
                              compute_until: Union[int, str, None] = 45,
                              chunk_batches: int = CHUNK_BATCHES) -> LongVideoPlan:
    """`keysync_planning_length` then `plan_keysync` (raw audio defaults to ``audio_frames``)."""
    n = keysync_planning_length(video_frames, audio_frames, interp_audio_frames=interp_audio_frames,
                                latent_frames=latent_frames, raw_audio_frames=raw_audio_frames,
                                compute_until=compute_until, mode=mode)
    cap = keysync_max_frames(compute_until, mode=mode, video_frames=video_frames)
    if interp_audio_frames is not None and cap is not None:
        interp_audio_frames = min(interp_audio_frames, cap)
    return plan_keysync(n, mode=mode, landmark_frames=landmark_frames, interp_audio_frames=interp_audio_frames,
                        raw_audio_frames=audio_frames if raw_audio_frames is None else raw_audio_frames,
                        chunk_batches=chunk_batches)
