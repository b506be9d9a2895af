"""Long-video plan records: constants, the plan dataclasses, and small index helpers.

Pure data; `planning` (KeySync) and `planning_keyface` (KeyFace) build these records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

NUM_FRAMES = 14  # frames per model call
STRIDE = NUM_FRAMES - 1  # keyframe spacing (overlap 1)
FPS = 25
SAMPLES_PER_FRAME = 640
CHUNK_BATCHES = 2  # keyframe batches per chunk (hard-coded in the reference)
MODES = ("full", "reference")


class PlanningError(ValueError):
    """No plan: invalid input, or (reference mode) an input on which the original crashes.

    ``reference_error`` names the exception the original raises there (e.g. "IndexError"),
    ``where`` the failing statement; both None for plain invalid input.
    """

    def __init__(self, message: str, reference_error: Optional[str] = None, where: Optional[str] = None):
        super().__init__(message)
        self.reference_error = reference_error
        self.where = where


# ----------------------------------------------------------------------------------------------
# reference helpers


def merge_overlapping_segments(segments: torch.Tensor, overlap: int) -> torch.Tensor:
    """(b, t, ...) segments, consecutive ones sharing ``overlap`` frames → ((b−1)(t−overlap)+t, ...).

    Frames covered by several segments are averaged (the reference's pixel-space merge).
    """
    b, t = segments.shape[:2]
    step = t - overlap
    n = (b - 1) * step + t
    out = torch.zeros((n,) + tuple(segments.shape[2:]), dtype=segments.dtype, device=segments.device)
    count = torch.zeros(n, dtype=torch.float32, device=segments.device)
    for i in range(b):
        out[i * step:i * step + t] += segments[i]
        count[i * step:i * step + t] += 1
    count = count.clamp_min(1).view((n,) + (1,) * (segments.dim() - 2))
    return out / count.to(out.dtype)


def get_audio_indexes(main_index: int, n_audio_frames: int, max_len: int) -> list[int]:
    """Frames main_index−n … main_index+n, clamped to [0, max_len−1] (length 2n+1)."""
    return [min(max(i, 0), max_len - 1) for i in range(main_index - n_audio_frames, main_index + n_audio_frames + 1)]


# ----------------------------------------------------------------------------------------------
# plan records


@dataclass(frozen=True, slots=True)
class KeyframeSlot:
    """One slot of a 14-slot keyframe batch.

    ``frame``: the frame the slot stands for on the timeline (the reference's
    ``audio_image_preds_idx_clone`` entry); None for anchors and for pads copying an anchor. In full
    mode the last keyframe may be virtual (frame ≥ L). ``audio`` / ``gt`` / ``mask``: source frames
    of its conditions (gt / mask None for KeyFace). ``to_remove``: dropped before interpolation
    (as planned; see `ChunkPlan.to_remove` for KeyFace's flip). ``padding``: added to fill the batch.
    """

    batch: int
    slot: int
    frame: Optional[int]
    to_remove: bool
    audio: int
    gt: Optional[int] = None
    mask: Optional[int] = None
    padding: bool = False

    @property
    def uid(self) -> int:
        return 1000 * self.batch + self.slot

    @property
    def kind(self) -> str:
        """"anchor" (frame None), "pad" (to_remove with a frame) or "keyframe" (the JSON's naming)."""
        if self.frame is None:
            return "anchor"
        return "pad" if self.to_remove else "keyframe"


@dataclass(frozen=True, slots=True)
class Segment:
    """One 14-frame interpolation segment of a chunk (row block ``seg`` of the chunk's call).

    ``unit``: index into the plan's ``interp_list`` / ``interp_audio``. ``start`` / ``end``: its
    keyframe pair (None where a reference KeyFace chunk has fewer pairs than audio chunks).
    ``audio`` / ``gt`` / ``mask``: source frames of the 14 positions.
    """

    chunk: int
    seg: int
    unit: int
    start: Optional[KeyframeSlot]
    end: Optional[KeyframeSlot]
    audio: tuple[int, ...]
    gt: Optional[tuple[int, ...]] = None
    mask: Optional[tuple[int, ...]] = None

    @property
    def keyframes_match_audio_ends(self) -> bool:
        """Both keyframes are real and carry the audio of the segment's first / last position."""
        s, e = self.start, self.end
        return (s is not None and e is not None and s.frame is not None and e.frame is not None
                and s.audio == self.audio[0] and e.audio == self.audio[-1])


@dataclass(frozen=True, slots=True)
class FrameSource:
    """Row ``pos`` of segment ``seg`` of chunk ``chunk``: an interpolated frame, or (KeySync, pos 0 /
    13) the pasted keyframe latent ``keyframe``; audio / gt / mask it was generated with."""

    chunk: int
    seg: int
    pos: int
    kind: str  # "interp" | "keyframe"
    audio: int
    gt: Optional[int]
    mask: Optional[int]
    keyframe: Optional[KeyframeSlot]


@dataclass(frozen=True, slots=True)
class OutputFrame:
    """Output frame ``index``: ``source``, averaged with ``avg_with`` where two segments overlap."""

    index: int
    source: FrameSource
    avg_with: Optional[FrameSource] = None

    @property
    def kind(self) -> str:
        return ("avg_" if self.avg_with is not None else "") + self.source.kind

    @property
    def audio(self) -> int:
        return self.source.audio

    @property
    def gt(self) -> Optional[int]:
        return self.source.gt

    @property
    def mask(self) -> Optional[int]:
        return self.source.mask


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    """One run of the long-video loop: keyframe batches ``batches`` plus one interpolation call.

    ``slot_list``: the carried-over slot (chunk > 0) then the chunk's slots, as the loop sees them;
    ``to_remove``: their effective flags (after KeyFace's flip at ``flipped`` positions);
    ``keyframes``: the slots kept, in order; consecutive ones form the pairs. ``interp_slice``:
    [start, end) into ``interp_list`` as computed (may pass its end); ``segments``: one per audio
    chunk actually taken.
    """

    index: int
    batches: tuple[int, ...]
    is_last: bool
    carried_in: Optional[KeyframeSlot]
    carried_to_remove: Optional[bool]
    slot_list: tuple[KeyframeSlot, ...]
    to_remove: tuple[bool, ...]
    flipped: tuple[int, ...]
    first_keyframe: Optional[int]
    last_keyframe: Optional[int]
    interp_slice: tuple[int, int]
    keyframes: tuple[KeyframeSlot, ...]
    segments: tuple[Segment, ...]

    @property
    def n_pairs(self) -> int:
        return max(len(self.keyframes) - 1, 0)

    @property
    def n_audio_chunks(self) -> int:
        return len(self.segments)

    @property
    def vid_len(self) -> int:
        """Frames returned by the chunk's interpolation call after merging (13·segments + 1)."""
        return STRIDE * len(self.segments) + 1


@dataclass(frozen=True, slots=True)
class LongVideoPlan:
    """The whole plan. ``n_frames``: planning length L (keyframe audio frames); ``frames``: the
    output video, frame by frame; ``n_generated``: frames assembled before the final cut."""

    pipeline: str
    mode: str
    n_frames: int
    keyframe_frames: tuple[int, ...]
    slots: tuple[KeyframeSlot, ...]
    interp_list: tuple[tuple[int, int], ...]
    interp_audio: tuple[tuple[int, ...], ...]
    chunks: tuple[ChunkPlan, ...]
    n_chunks_planned: int
    n_generated: int
    frames: tuple[OutputFrame, ...]
    saved_audio_samples: Optional[int] = None

    @property
    def batches(self) -> tuple[tuple[KeyframeSlot, ...], ...]:
        return tuple(self.slots[i:i + NUM_FRAMES] for i in range(0, len(self.slots), NUM_FRAMES))

    @property
    def batch_layout(self) -> list[str]:
        """One string per batch, a / k / p per slot (anchor, keyframe, pad)."""
        return ["".join(s.kind[0] for s in b) for b in self.batches]

    @property
    def n_out(self) -> int:
        return len(self.frames)

    @property
    def dropped_frames(self) -> tuple[int, ...]:
        """Frames of the planning length that have no output frame (reference KeySync's tail)."""
        return tuple(range(self.n_out, self.n_frames))


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def clamp_index(n: Optional[int]) -> Callable[[int], int]:
    """f ↦ min(f, n−1): the source frame of a frame past the end of an n-frame stream (None: identity)."""
    if n is None:
        return lambda f: f
    if n < 1:
        raise PlanningError("a stream has no frames")
    return lambda f: f if f < n else n - 1


# ----------------------------------------------------------------------------------------------
