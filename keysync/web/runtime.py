"""The models a demo page runs, loaded once at start-up, and what the page says about them.

Dubbing: :func:`keysync.pipelines.default_models.load_default_dubbing_models` (published KeySync
weights when present under the weights root, else tiny random-weight models), plus a SAM 2
occluder when a checkpoint is configured (``--sam2_checkpoint``, or
``<weights_root>/checkpoints/sam2.1_hiera_large.pt`` when that file exists). Animation: see
:mod:`keysync.web.animate_job` (loaded on the first Animate job).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from keysync.web.animate_job import AnimationBackend
from keysync.web.config import DemoConfig
from keysync.web.errors import ErrorBoard
from keysync.web.progress import show_sampler_steps

log = logging.getLogger(__name__)

#: where a SAM 2 checkpoint is looked for when none is named.
DEFAULT_SAM2_CHECKPOINT = "checkpoints/sam2.1_hiera_large.pt"
NO_SAM2_MESSAGE = ("Occlusion handling needs SAM 2, and no SAM 2 checkpoint is configured: restart the demo "
                   "with --sam2_checkpoint path/to/sam2.1_hiera_large.pt (or put the file at {default}).")


@dataclass
class DemoRuntime:
    """Everything the page's jobs share: ``dubbing`` (a :class:`DefaultModels`), the SAM 2 status,
    the animation backend, the configuration and the last error of each session."""

    config: DemoConfig
    dubbing: object
    animation: AnimationBackend
    sam2_status: str
    notes: list[str] = field(default_factory=list)
    errors: ErrorBoard = field(default_factory=ErrorBoard)

    @property
    def occluder(self):
        return self.dubbing.models.occluder

    @property
    def no_sam2_message(self) -> str:
        return NO_SAM2_MESSAGE.format(default=self.config.weights_root / DEFAULT_SAM2_CHECKPOINT)

    def summary_markdown(self) -> str:
        """What the page says about itself: models, device, output folder, limits."""
        cfg = self.config
        lines = [
            f"**Dubbing model ({self.dubbing.kind}):** {self.dubbing.description}",
            f"**Animation model:** {self.animation.status}",
            f"**Occlusion (SAM 2):** {self.sam2_status}",
            f"**Device:** `{cfg.device}` · **Outputs written to:** `{cfg.output_dir}` · "
            f"**Limit:** {cfg.max_seconds:g} s of speech per job · jobs run one at a time",
        ]
        return "\n\n".join(lines + self.notes)

    def close(self) -> None:
        self.dubbing.models.close()


def _sam2_checkpoint(config: DemoConfig) -> Path | None:
    if config.sam2_checkpoint is not None:
        if not config.sam2_checkpoint.is_file():
            raise FileNotFoundError(f"SAM 2 checkpoint not found: {config.sam2_checkpoint}")
        return config.sam2_checkpoint
    default = config.weights_root / DEFAULT_SAM2_CHECKPOINT
    return default if default.is_file() else None


def load_runtime(config: DemoConfig) -> DemoRuntime:
    """Load the dubbing models (and the SAM 2 occluder when configured) on ``config.device``."""
    from keysync.pipelines.default_models import load_default_dubbing_models

    config.output_dir.mkdir(parents=True, exist_ok=True)
    dubbing = load_default_dubbing_models(config.weights_root, config.device)
    log.info("dubbing models: %s", dubbing.description)
    show_sampler_steps(dubbing.models.keyframe, dubbing.models.interpolation)
    checkpoint = _sam2_checkpoint(config)
    if checkpoint is not None:
        from keysync.face.occlusion import DEFAULT_CONFIG, SAM2Occluder

        dubbing.models.occluder = SAM2Occluder.from_files(config.sam2_config or DEFAULT_CONFIG, checkpoint,
                                                          device=str(config.device))
        sam2_status = f"SAM 2 from `{checkpoint}`"
    else:
        sam2_status = "not available (no SAM 2 checkpoint configured: `--sam2_checkpoint`)"
    animation = AnimationBackend(config.weights_root, config.device)
    return DemoRuntime(config, dubbing, animation, sam2_status)
