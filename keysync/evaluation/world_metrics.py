"""Lip-sync figures in the synthetic world (:mod:`keysync.data.synthetic_world`), where the right
mouth for any audio is known.

For a dubbed clip (source video of identity A, driving audio B) with mouth openings read from
its pixels (:func:`~keysync.data.synthetic_world.read_mouth_opening`):

* **sync**: Pearson correlation of the read opening with B's ground-truth opening (1 = perfect);
* **leakage**: partial correlation of the read opening with the source video's own opening,
  given B's (0 = none of A's mouth left). Two unrelated sentences are themselves correlated
  (both start silent, pauses fall where they fall), so a perfect dub has a plain correlation
  with A's mouth of corr(A, B), not 0; the partial correlation removes what B explains. The plain
  one is kept as ``source_correlation``;
* **silence closure**: fraction of B's silent frames (opening 0) whose read opening < 0.1;
* **jitter**: mean |second difference| of the read opening (temporal noise; 0 = smooth);
* **outside**: pixels changed outside the lower-face region allowed to change.

A constant reading (e.g. a static mouth) has no correlation; it scores 0 there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; 0 when either side is constant."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) != len(b):
        raise ValueError(f"lengths differ: {len(a)} vs {len(b)}")
    if a.std() < 1e-8 or b.std() < 1e-8:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def partial_correlation(a: np.ndarray, b: np.ndarray, given: np.ndarray) -> float:
    """Correlation of ``a`` and ``b`` with ``given`` (linearly) removed from both; 0 when either
    is fully explained by ``given``."""
    r_ab, r_ag, r_bg = correlation(a, b), correlation(a, given), correlation(b, given)
    denom = (1 - r_ag**2) * (1 - r_bg**2)
    return 0.0 if denom < 1e-10 else float((r_ab - r_ag * r_bg) / np.sqrt(denom))


@dataclass
class WorldScores:
    sync: float
    leakage: float
    silence_closure: float
    jitter: float
    outside_pixels: int
    source_correlation: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def world_scores(read_opening: np.ndarray, driving_opening: np.ndarray, source_opening: np.ndarray,
                 outside_pixels: int = 0, closed_below: float = 0.1) -> WorldScores:
    """Scores of one clip; all openings (F,) on the same 25 fps timeline."""
    n = min(len(read_opening), len(driving_opening), len(source_opening))
    r, d, s = read_opening[:n], driving_opening[:n], source_opening[:n]
    silent = d == 0
    closure = float((r[silent] < closed_below).mean()) if silent.any() else float("nan")
    jitter = float(np.abs(np.diff(r, 2)).mean()) if n > 2 else 0.0
    return WorldScores(correlation(r, d), partial_correlation(r, s, d), closure, jitter, int(outside_pixels),
                       correlation(r, s))


def mean_scores(scores: list[WorldScores]) -> WorldScores:
    """Average over clips (silence closure over clips that have silence)."""
    closure = [s.silence_closure for s in scores if not np.isnan(s.silence_closure)]
    return WorldScores(float(np.mean([s.sync for s in scores])), float(np.mean([s.leakage for s in scores])),
                       float(np.mean(closure)) if closure else float("nan"),
                       float(np.mean([s.jitter for s in scores])), int(sum(s.outside_pixels for s in scores)),
                       float(np.mean([s.source_correlation for s in scores])))


def allowed_region(landmarks: np.ndarray, shape: tuple[int, int], margin: float) -> np.ndarray:
    """(H, W) bool: where dubbing may change pixels — the box mask's extent (the landmarks' width,
    from the nose landmark 28 down) grown by ``margin`` pixels."""
    h, w = shape
    x0, x1 = landmarks[:, 0].min() - margin, landmarks[:, 0].max() + margin
    ys, xs = np.mgrid[:h, :w]
    return (xs >= x0) & (xs <= x1) & (ys >= landmarks[28, 1] - margin)


def dub_world_clip(chosen, src, audio: np.ndarray, tmp: Path, i: int) -> tuple[np.ndarray, int]:
    """Dub world clip ``src`` with ``audio`` through the real pipeline (known landmarks); returns
    the output frames (F, H, W, 3) and the number of pixels changed outside
    :func:`allowed_region` (margin: the crop's feather plus 2 px)."""
    from dataclasses import replace

    from keysync.media import write_audio, write_video
    from keysync.pipelines.dubbing import dub

    video, wav = tmp / f"src{i}.mp4", tmp / f"drive{i}.wav"
    write_video(video, src.frames, fps=25, crf=12)
    write_audio(wav, audio)
    outs, outside = [], [0]
    size = src.frames.shape[1]

    def on_frame(k, out, source, region):
        lm = src.landmarks[min(k, len(src.landmarks) - 1)]
        box = (lm[:, 0].max() - lm[:, 0].min()) * chosen.options.crop_scale
        allowed = allowed_region(lm, (size, size), chosen.options.feather * box + 2)
        outside[0] += int(((out != source).any(-1) & ~allowed).sum())
        outs.append(out)

    opts = replace(chosen.options, landmarks=src.landmarks, progress=False)
    dub(chosen.models, video, wav, tmp / f"out{i}.mp4", opts, on_frame=on_frame)
    return np.stack(outs), outside[0]
