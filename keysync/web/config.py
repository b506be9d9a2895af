"""What ``keysync demo`` is started with (its command-line options, as data)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: the default per-job limit on the speech length, in seconds.
DEFAULT_MAX_SECONDS = 60.0


@dataclass
class DemoConfig:
    """``host``/``port``: where the page is served (127.0.0.1 unless told otherwise); ``share``:
    Gradio's public tunnel (off: it contacts Gradio's servers); ``weights_root``: published
    weights (else tiny random-weight models are written there); ``output_dir``: where every
    job's video is written; ``max_seconds``: longest speech a job accepts;
    ``sam2_checkpoint``/``sam2_config``: the SAM 2 occluder (None: looked up under
    ``weights_root/checkpoints``, occlusion handling off when absent)."""

    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    weights_root: Path = Path("pretrained_models")
    device: str = "cpu"
    output_dir: Path = Path("outputs/web")
    max_seconds: float = DEFAULT_MAX_SECONDS
    sam2_checkpoint: Path | None = None
    sam2_config: str | None = None

    def __post_init__(self):
        self.weights_root = Path(self.weights_root)
        self.output_dir = Path(self.output_dir).resolve()
        if self.sam2_checkpoint is not None:
            self.sam2_checkpoint = Path(self.sam2_checkpoint)
        if not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be positive, got {self.max_seconds}")
        if not 0 <= int(self.port) < 65536:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
