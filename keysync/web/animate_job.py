"""The Animate tab's backend (Gradio-free): KeyFace through :func:`keysync.pipelines.animation.animate`.

Models are loaded on the first Animate job, not at start-up. Which ones: the published KeyFace
weights when all are under the weights root; otherwise tiny random-weight KeyFace models written
once to ``<weights_root>/tiny_keyface`` (every stage runs, the face does not follow the speech),
as the dubbing side does. If the animation pipeline cannot be imported the tab says so and
refuses jobs.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from keysync.web.dub_job import Reporter, check_length, output_path, speech_seconds
from keysync.web.errors import DemoInputError
from keysync.web.progress import show_sampler_steps

log = logging.getLogger(__name__)
TINY_FOLDER = "tiny_keyface"
MANIFEST = "paths.json"


@dataclass
class AnimateSettings:
    """What the Animate tab asks for: emotion state(s) (several: interpolated over the clip),
    ``accentuate`` (×1.5), the seed and full length (False: ``reference_compat``)."""

    emotions: list[str] = field(default_factory=lambda: ["neutral"])
    accentuate: bool = False
    seed: int = 23
    full_length: bool = True


def _pipeline():
    """The animation pipeline's public functions, or the ImportError that says why not."""
    try:
        from keysync.pipelines import animation, animation_models, emotion, tiny
        from keysync.pipelines.weights import KEYFACE_FILES

        return {"animate": animation.animate, "options": animation.AnimationOptions,
                "load": animation_models.load_animation_models, "tiny_configs": animation_models.TINY_KEYFACE_CONFIGS,
                "write_tiny": tiny.write_tiny_keyface_weights, "tiny_resolution": tiny.TINY_RESOLUTION,
                "files": KEYFACE_FILES, "states": list(emotion.EMOTION_STATES)}
    except (ImportError, AttributeError) as err:
        return err


class AnimationBackend:
    """Availability, status line and jobs of the Animate tab."""

    def __init__(self, weights_root: str | Path, device: str = "cpu"):
        self.root, self.device = Path(weights_root), device
        self.api = _pipeline()
        self._models, self._options, self._lock = None, None, threading.Lock()
        if isinstance(self.api, Exception):
            self.kind = "unavailable"
            self.status = f"not available: the KeyFace pipeline could not be imported ({self.api})"
        elif all((self.root / f.local).exists() for f in self.api["files"].values()):
            self.kind = "published"
            self.status = f"published KeyFace weights from {self.root} (loaded on the first Animate job)"
        else:
            self.kind = "tiny-random"
            self.status = (f"no published KeyFace weights under {self.root} (see pretrained_models/README.md): tiny "
                           f"RANDOM-weight KeyFace models from {self.root / TINY_FOLDER} (loaded on the first Animate "
                           f"job); every stage runs, the face does not follow the speech")

    @property
    def available(self) -> bool:
        return self.kind != "unavailable"

    @property
    def emotion_states(self) -> list[str]:
        return self.api["states"] if self.available else ["neutral"]

    def _tiny_paths(self) -> dict[str, Path]:
        folder = self.root / TINY_FOLDER
        manifest = folder / MANIFEST
        if manifest.is_file():
            paths = {k: Path(v) for k, v in json.loads(manifest.read_text()).items()}
            if all(p.exists() for p in paths.values()):
                return paths
        paths = self.api["write_tiny"](folder)
        manifest.write_text(json.dumps({k: str(v) for k, v in paths.items()}, indent=1))
        return paths

    def models(self):
        """The loaded models and base options (loaded once, on first use)."""
        with self._lock:
            if self._models is None:
                if not self.available:
                    raise DemoInputError(f"animation is {self.status}")
                opts = self.api["options"]()
                if self.kind == "published":
                    self._models = self.api["load"](root=self.root, device=self.device)
                else:
                    cfg = self.api["tiny_configs"]
                    self._models = self.api["load"](self._tiny_paths(), root=self.root, keyframe_config=cfg[0],
                                                    interpolation_config=cfg[1], bad_config=cfg[2], device=self.device)
                    opts = replace(opts, resolution=self.api["tiny_resolution"])
                show_sampler_steps(self._models.keyframe, self._models.interpolation)
                self._options = opts
            return self._models, self._options

    def run(self, image: str | Path | None, audio: str | Path | None, settings: AnimateSettings, output_dir: Path,
            max_seconds: float, reporter: Reporter | None = None):
        """Animate ``image`` with ``audio``; returns the pipeline's ``AnimationResult``."""
        reporter = reporter or Reporter()
        if not self.available:
            raise DemoInputError(f"animation is {self.status}")
        if not image:
            raise DemoInputError("give a face image to animate")
        if not audio:
            raise DemoInputError("give the speech (an audio file)")
        emotions = [e for e in (settings.emotions or []) if e] or ["neutral"]
        unknown = [e for e in emotions if e not in self.emotion_states]
        if unknown:
            raise DemoInputError(f"unknown emotion state(s) {unknown}; known: {', '.join(self.emotion_states)}")
        reporter.stage("checking the inputs")
        seconds = speech_seconds(audio)
        check_length(seconds, max_seconds)
        reporter.stage("loading the KeyFace models" if self._models is None else "starting")
        models, base = self.models()
        options = replace(base, seed=int(settings.seed), reference_compat=not settings.full_length,
                          emotion=",".join(emotions), accentuate=bool(settings.accentuate), progress=True)
        output = output_path(output_dir, "animate", image)
        total = max(1, round(seconds * 25))

        def on_frame(index, *_):
            reporter.frames(min(index + 1, total), total)

        reporter.stage("audio features, emotions, identity")
        return self.api["animate"](models, image, audio, output, options, on_frame=on_frame)
