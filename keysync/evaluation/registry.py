"""Metric registry: names, weight files, and the interface every metric implements.

A metric is registered as a :class:`MetricSpec` (name, description, direction, the weight
files it needs, a factory). ``spec.build(options)`` resolves the weight files and either
returns a :class:`Metric` or raises :class:`MetricUnavailable` naming the file it needs -- the
runner turns that into an ``unavailable: needs <file>`` row, so no metric is ever silently
dropped.

Weight files are looked up as ``options.weights[<metric name>]`` (an explicit path, e.g.
``--weights lse=/x/syncnet_v2.model``) or ``<options.weights_dir>/<default file name>``.

:class:`Metric` implementations score one :class:`EvalItem` at a time
(``evaluate(item) -> {column: value}``) and may aggregate differently from the mean over
videos by overriding ``summarize`` (FID/FVD do: they are distribution distances).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from keysync import media

from .landmarks import LandmarkSource

__all__ = ["WeightFile", "MetricUnavailable", "EvalOptions", "EvalItem", "Metric", "MetricSpec", "REGISTRY",
           "register", "get_spec", "metric_names"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightFile:
    """A weight file a metric needs: default file name and where it comes from."""

    filename: str
    source: str


class MetricUnavailable(RuntimeError):
    """A metric cannot run; ``needs`` is the file (or other requirement) that is missing."""

    def __init__(self, metric: str, needs: str, hint: str = ""):
        self.metric, self.needs, self.hint = metric, needs, hint
        super().__init__(f"{metric} unavailable: needs {needs}" + (f" ({hint})" if hint else ""))

    @property
    def status(self) -> str:
        return f"unavailable: needs {self.needs}" + (f" ({self.hint})" if self.hint else "")


@dataclass
class EvalOptions:
    """Everything a metric factory may need (CLI flags map onto these fields)."""

    weights_dir: Path = Path("pretrained_models/evaluation")
    weights: Dict[str, str] = field(default_factory=dict)
    device: str = "cpu"
    landmarks: LandmarkSource = field(default_factory=LandmarkSource)
    reference_quirks: bool = False
    lipleak_threshold: Optional[float] = None
    syncnet_vshift: int = 15
    extra: Dict[str, object] = field(default_factory=dict)

    def weight_path(self, metric: str, weight: WeightFile, key: Optional[str] = None) -> Path:
        """The file to use for ``metric`` (``key`` names a second file, e.g. ``lpips_backbone``);
        raises :class:`MetricUnavailable` when it is absent."""
        key = key or metric
        explicit = self.weights.get(key)
        path = Path(explicit) if explicit else Path(self.weights_dir) / weight.filename
        if not path.is_file():
            raise MetricUnavailable(metric, str(path), f"{weight.source}; set --weights {key}=PATH or --weights-dir")
        return path


class EvalItem:
    """One generated video and (optionally) its ground truth and driving audio, decoded lazily
    and cached. Frames are uint8 RGB (N, H, W, 3); audio float32 16 kHz mono."""

    def __init__(self, name: str, pred_path: Path, gt_path: Optional[Path] = None,
                 audio_path: Optional[Path] = None, options: Optional[EvalOptions] = None):
        self.name, self.pred_path, self.gt_path, self.audio_path = name, Path(pred_path), gt_path, audio_path
        self.options = options or EvalOptions()
        self._cache: dict = {}
        self.fps: Optional[float] = None

    def _get(self, key: str, fn: Callable):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def pred_frames(self) -> np.ndarray:
        def read():
            frames, fps = media.read_video(self.pred_path)
            self.fps = float(fps)
            return frames
        return self._get("pred", read)

    def gt_frames(self) -> np.ndarray:
        if self.gt_path is None:
            raise ValueError(f"{self.name}: no ground-truth video")
        return self._get("gt", lambda: media.read_video(self.gt_path)[0])

    def aligned_frames(self) -> tuple[np.ndarray, np.ndarray]:
        """Pred and gt cut to the same length (generated clips are often a few frames shorter)."""
        pred, gt = self.pred_frames(), self.gt_frames()
        n = min(len(pred), len(gt))
        if pred.shape[1:] != gt.shape[1:]:
            raise ValueError(f"{self.name}: pred frames {pred.shape[1:3]} and gt frames {gt.shape[1:3]} differ in size")
        return pred[:n], gt[:n]

    def audio(self) -> np.ndarray:
        """Driving audio: ``audio_path`` if given, else the generated video's own audio stream."""
        return self._get("audio", lambda: media.read_audio(self.audio_path or self.pred_path))

    def pred_landmarks(self) -> np.ndarray:
        return self.options.landmarks.get(self.pred_path, self.pred_frames())

    def gt_landmarks(self) -> np.ndarray:
        return self.options.landmarks.get(self.gt_path, self.gt_frames())

    def release(self) -> None:
        """Drop decoded media (keeps memory flat over a large folder)."""
        self._cache.clear()


class Metric:
    """Base class. ``columns``: the per-video value names; ``higher_is_better``: per column
    (None = not a score, e.g. an offset)."""

    name: str = "metric"
    columns: Sequence[str] = ()
    higher_is_better: Dict[str, Optional[bool]] = {}
    needs_gt: bool = True

    def evaluate(self, item: EvalItem) -> Dict[str, float]:
        raise NotImplementedError

    def summarize(self, rows: Sequence[Dict[str, float]]) -> Dict[str, float]:
        """Aggregate over videos (default: mean of the finite per-video values)."""
        out = {}
        for col in self.columns:
            vals = np.array([r[col] for r in rows if col in r], dtype=np.float64)
            vals = vals[np.isfinite(vals)]
            out[col] = float(vals.mean()) if len(vals) else float("nan")
        return out


@dataclass
class MetricSpec:
    """A registered metric (see module docstring)."""

    name: str
    description: str
    columns: Sequence[str]
    factory: Callable[["EvalOptions"], Metric]
    weights: Sequence[WeightFile] = ()

    def build(self, options: EvalOptions) -> Metric:
        return self.factory(options)


REGISTRY: Dict[str, MetricSpec] = {}


def register(spec: MetricSpec) -> MetricSpec:
    REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> MetricSpec:
    _load_builtin()
    if name not in REGISTRY:
        raise ValueError(f"unknown metric {name!r}; available: {', '.join(metric_names())}")
    return REGISTRY[name]


def metric_names() -> list[str]:
    _load_builtin()
    return list(REGISTRY)


def _load_builtin() -> None:
    """Import the modules that register the built-in metrics (once)."""
    import importlib

    for module in ("builtin_metrics", "quality_metrics"):
        importlib.import_module(f"{__package__}.{module}")
