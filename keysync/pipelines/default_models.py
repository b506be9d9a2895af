"""Which dubbing models a user-facing entry point runs when none are named.

Order: the published KeySync weights when all are under ``weights_root``; otherwise the bundled
demo model (:mod:`keysync.pipelines.demo_model`: trained on synthetic faces, lip-syncs those);
otherwise (``demo=False``, or the demo files removed) tiny random-weight models in the published
formats (written once to ``<weights_root>/tiny``), which run every stage of the real pipeline
but do not lip-sync. The description says which one it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from keysync.pipelines.dubbing import DubbingOptions
from keysync.pipelines.dubbing_models import TINY_CONFIGS, DubbingModels, load_dubbing_models
from keysync.pipelines.weights import DUBBING_FILES


@dataclass
class DefaultModels:
    models: DubbingModels
    options: DubbingOptions
    kind: str  # "published" | "demo" | "tiny-random"
    description: str


def tiny_weight_paths(folder: Path) -> dict[str, Path]:
    return {"keyframe": folder / "checkpoints/keyframe_dub.pt", "interpolation": folder / "checkpoints/interpolation_dub.pt",
            "vae": folder / "tiny_vae.safetensors", "hubert": folder / "hubert-tiny",
            "wavlm": folder / "checkpoints/wavlm-tiny.safetensors"}


def load_default_dubbing_models(weights_root: str | Path = "pretrained_models", device: str = "cpu",
                                demo: bool = True) -> DefaultModels:
    from keysync.pipelines.demo_model import DEMO_DIR, demo_available, load_demo_models
    from keysync.pipelines.tiny import TINY_RESOLUTION, write_tiny_dubbing_weights

    root = Path(weights_root)
    if all((root / f.local).exists() for f in DUBBING_FILES.values()):
        return DefaultModels(load_dubbing_models(root=root, device=device), DubbingOptions(), "published",
                             f"published KeySync weights from {root}")
    if demo and demo_available():
        models, options = load_demo_models(device=device)
        return DefaultModels(models, options, "demo",
                             f"no published weights under {root}: the bundled DEMO model ({DEMO_DIR}), trained on "
                             f"synthetic faces only — it lip-syncs those, not real faces")
    paths = tiny_weight_paths(root / "tiny")
    if not all(p.exists() for p in paths.values()):
        paths = write_tiny_dubbing_weights(root / "tiny")
    models = load_dubbing_models(paths, keyframe_config=TINY_CONFIGS[0], interpolation_config=TINY_CONFIGS[1],
                                 device=device)
    return DefaultModels(models, DubbingOptions(resolution=TINY_RESOLUTION), "tiny-random",
                         f"no published weights under {root} (see pretrained_models/README.md): tiny RANDOM-weight "
                         f"models from {root / 'tiny'}; every stage runs, the mouth does not follow the speech")
