"""KeyFace long-video planning (`full_pipeline.sample` of KeyFace; SPEC §9, reference/README §12).

Same keyframe / batch / chunk machinery as KeySync (`planning`), plus, in ``mode="reference"``:

* lengths: WavLM (keyframe) and wav2vec2 (interpolation) embeddings cut to compute_until·25 = 1125
  frames (no 13k+1 rounding), BEATs concatenated and both streams cut to the BEATs length when it
  is shorter; the video does not matter except that a video longer than 1125 frames also cuts the
  raw audio to 1125;
* a **tail** interpolation chunk when frames are left after the last full segment: the leftover
  audio padded with its last frame, listed as [last_kf + 1, last_kf + 14] — one frame *after* the
  last keyframe, so output frame i > last_kf is generated with audio min(i + 1, L − 1);
* last chunk: ``end_idx += 1`` and the **flip** (first to_remove slot, skipping position 0 when it
  is to_remove, switched to keep — a pad, an appended anchor or the 2nd batch's anchor);
* no keyframe pasting (every row is generated; shared rows averaged);
* the output cut to the raw-audio length, ceil(samples / 640) frames; no raw audio → error.

Where the original *engine* fails because a chunk's keyframe pairs P and audio chunks A disagree
(`keyface_engine_outcome`, from planning_keyface_mismatch_check.json) reference mode raises
`PlanningError`; ``on_pair_mismatch="standin"`` instead pairs segment s with pair s and leaves
surplus pairs unused — what the recorded reference runs (planning_keyface.json) did with their
stand-in engine.

``mode="full"``: the corrected plan of `planning` (aligned tail, one frame per audio frame, no
flip, P = A always); L = min of every audio stream, the raw audio and compute_until·fps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

from .planning import (CHUNK_BATCHES, FPS, SAMPLES_PER_FRAME, LongVideoPlan, PlanningError, _check_mode,
                       _frames, assemble_output, full_plan, reference_plan)

OUTCOMES_OK = ("ok", "surplus_pair_unused")


@dataclass(frozen=True)
class KeyFaceLengths:
    """Planning lengths: keyframe audio ``n_key``, interpolation audio ``n_interp``, raw-audio frames
    that cut the output (``raw_frames``, None without raw audio) and the soundtrack saved."""

    n_key: int
    n_interp: int
    raw_frames: Optional[int]
    saved_audio_samples: Optional[int]


def keyface_max_frames(compute_until: Union[int, str, None] = 45, *, mode: str = "full",
                       video_frames: Optional[int] = None, fps: int = FPS) -> Optional[int]:
    """compute_until·fps frames (KeyFace never rounds to 13k+1). ``"end"``: reference
    int(video·10/25) seconds; full: no cap, as None."""
    _check_mode(mode)
    if compute_until is None or (compute_until == "end" and mode == "full"):
        return None
    if compute_until == "end":
        if video_frames is None:
            raise PlanningError('compute_until="end" needs video_frames')
        compute_until = int(video_frames * 10 / 25)
    return int(compute_until * fps)


def keyface_lengths(audio_frames: int, *, interp_audio_frames: Optional[int] = None,
                    beats_frames: Optional[int] = None, raw_audio_samples: Optional[int] = None,
                    video_frames: int = 1, compute_until: Union[int, str, None] = 45,
                    extra_audio: Optional[str] = "both", mode: str = "full") -> KeyFaceLengths:
    """Stream lengths → `KeyFaceLengths`. ``audio_frames``: WavLM rows; ``interp_audio_frames``:
    wav2vec2 rows (default the same); ``beats_frames``: BEATs rows (default the same, used when
    ``extra_audio == "both"``); ``raw_audio_samples``: 16 kHz samples, None = no raw audio file."""
    if extra_audio not in ("both", None):
        raise PlanningError(f"extra_audio {extra_audio!r} not supported (inference.sh uses 'both')")
    cap = keyface_max_frames(compute_until, mode=mode, video_frames=video_frames)
    cut = (lambda n: n) if cap is None else (lambda n: min(n, cap))
    interp_audio_frames = audio_frames if interp_audio_frames is None else interp_audio_frames
    beats_frames = audio_frames if beats_frames is None or extra_audio is None else beats_frames
    raw_total = None if raw_audio_samples is None else math.ceil(raw_audio_samples / SAMPLES_PER_FRAME)
    saved = None if raw_total is None else cut(raw_total) * SAMPLES_PER_FRAME
    key, interp, beats = cut(audio_frames), cut(interp_audio_frames), cut(beats_frames)
    if mode == "reference":
        n_interp = min(interp, beats)
        n_key = min(key, beats, n_interp)
        raw = raw_total
        if raw is not None and cap is not None and video_frames > cap:
            raw = min(raw, cap)
        return KeyFaceLengths(n_key, n_interp, raw, saved)
    n = min([key, interp, beats] + ([cut(raw_total)] if raw_total is not None else []))
    return KeyFaceLengths(n, n, raw_total, None if raw_total is None else min(n, raw_total) * SAMPLES_PER_FRAME)


def keyface_engine_outcome(n_pairs: int, n_audio_chunks: int) -> str:
    """What KeyFace's interpolation engine (KarrasTemporalMultiDiffusion, network chunks of 28 frames
    = 2 segments, pairs handed out 2 per chunk) does with P keyframe pairs and A audio chunks.

    "ok" (P = A); "surplus_pair_unused" (P = A+1, A even: pair s still conditions segment s);
    "RuntimeError" (P = A+1, A odd: the last 14-frame chunk gets 2 pairs, T = 7);
    "ZeroDivisionError" (P = A−1, A odd: the last chunk gets no pair);
    "one_pair_for_two_segments" (P = A−1, A even: runs, one pair conditions a 28-frame clip —
    not what the plan describes); "not_modelled" (|P − A| > 1).
    """
    p, a = n_pairs, n_audio_chunks
    if p == a:
        return "ok"
    if p == a + 1:
        return "surplus_pair_unused" if a % 2 == 0 else "RuntimeError"
    if p == a - 1:
        return "one_pair_for_two_segments" if a % 2 == 0 else "ZeroDivisionError"
    return "not_modelled"


def plan_keyface(n_frames: int, *, mode: str = "full", n_interp_frames: Optional[int] = None,
                 raw_audio_frames: Optional[int] = None, has_raw_audio: bool = True,
                 saved_audio_samples: Optional[int] = None, on_pair_mismatch: str = "raise",
                 chunk_batches: int = CHUNK_BATCHES) -> LongVideoPlan:
    """KeyFace plan for ``n_frames`` keyframe-audio frames (see `keyface_lengths`).

    Reference mode: ``n_interp_frames`` (default ``n_frames``) feeds the tail chunk; the output is
    cut to ``raw_audio_frames`` (default ``n_frames``); ``has_raw_audio=False`` raises (the original
    reads ``raw_audio.shape`` of None); ``on_pair_mismatch`` "raise" (the real engine) or "standin".
    Full mode: one output frame per frame; raw audio only sets ``saved_audio_samples``.
    """
    _check_mode(mode)
    if on_pair_mismatch not in ("raise", "standin"):
        raise ValueError(f"on_pair_mismatch must be 'raise' or 'standin', got {on_pair_mismatch!r}")
    raw = n_frames if raw_audio_frames is None else raw_audio_frames
    if mode == "full":
        parts = full_plan("keyface", n_frames, chunk_batches=chunk_batches)
        video = assemble_output(parts["chunks"], paste=False)
        saved = saved_audio_samples if saved_audio_samples is not None else min(raw, n_frames) * SAMPLES_PER_FRAME
        return LongVideoPlan(**parts, n_generated=len(video), frames=_frames(video, n_frames),
                             saved_audio_samples=saved if has_raw_audio else None)
    n_interp = n_frames if n_interp_frames is None else n_interp_frames
    if n_interp < n_frames:
        raise PlanningError(f"interpolation audio ({n_interp}) shorter than keyframe audio ({n_frames})")
    parts = reference_plan("keyface", n_frames, n_interp, keyface=True)
    if on_pair_mismatch == "raise":
        for ch in parts["chunks"]:
            outcome = keyface_engine_outcome(ch.n_pairs, ch.n_audio_chunks)
            if outcome not in OUTCOMES_OK:
                err = outcome if outcome.endswith("Error") else None
                raise PlanningError(f"chunk {ch.index}: {ch.n_pairs} keyframe pairs vs {ch.n_audio_chunks} audio "
                                    f"chunks — the KeyFace interpolation engine fails ({outcome})", err,
                                    "KarrasTemporalMultiDiffusion chunk_network / InterpolationWrapper")
    video = assemble_output(parts["chunks"], paste=False)
    if not has_raw_audio:
        raise PlanningError("no raw audio: the reference cuts the output to raw_audio.shape[0] of None",
                            "AttributeError", "full_pipeline.py:1171 sample: complete_video[: raw_audio.shape[0]]")
    if saved_audio_samples is None:
        saved_audio_samples = raw * SAMPLES_PER_FRAME
    return LongVideoPlan(**parts, n_generated=len(video), frames=_frames(video, min(len(video), raw)),
                         saved_audio_samples=saved_audio_samples)


def plan_keyface_from_lengths(audio_frames: int, *, mode: str = "full", interp_audio_frames: Optional[int] = None,
                              beats_frames: Optional[int] = None, raw_audio_samples: Optional[int] = None,
                              video_frames: int = 1, compute_until: Union[int, str, None] = 45,
                              on_pair_mismatch: str = "raise", chunk_batches: int = CHUNK_BATCHES) -> LongVideoPlan:
    """`keyface_lengths` then `plan_keyface`."""
    lengths = keyface_lengths(audio_frames, interp_audio_frames=interp_audio_frames, beats_frames=beats_frames,
                              raw_audio_samples=raw_audio_samples, video_frames=video_frames,
                              compute_until=compute_until, mode=mode)
    return plan_keyface(lengths.n_key, mode=mode, n_interp_frames=lengths.n_interp,
                        raw_audio_frames=lengths.raw_frames, has_raw_audio=raw_audio_samples is not None,
                        saved_audio_samples=lengths.saved_audio_samples, on_pair_mismatch=on_pair_mismatch,
                        chunk_batches=chunk_batches)
