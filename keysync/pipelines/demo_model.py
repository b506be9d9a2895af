"""The bundled demo model: KeySync's two-stage design at demo size, trained on the synthetic world.

It ships in ``keysync/assets/demo_model/`` (``vae.safetensors``, ``keyframe.safetensors``,
``interpolation.safetensors``, fp16, and ``model.json`` with how it was trained and what it
scores); ``scripts/train_demo.sh`` reproduces it on a CPU. It was trained only on synthetic faces
(:mod:`keysync.data.synthetic_world`), at 64² face crops with 32-band log-mel audio features, so
it lip-syncs those faces, not real ones. It runs through the real dubbing pipeline: same
denoiser, sampler, guidance, planning, crops, masks and paste-back as the published model.
"""

from __future__ import annotations

import json
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parents[1] / "assets" / "demo_model"
DEMO_CONFIGS = ("demo/keysync_keyframe_inference", "demo/keysync_interpolation_inference")
DEMO_FILES = ("vae.safetensors", "keyframe.safetensors", "interpolation.safetensors", "model.json")


def demo_available(folder: str | Path = DEMO_DIR) -> bool:
    return all((Path(folder) / name).is_file() for name in DEMO_FILES)


def demo_info(folder: str | Path = DEMO_DIR) -> dict:
    """``model.json``: resolution, crop_scale, n_mels, guidance {audio, reference}, paste_mode, the
    training recipe and held-out scores."""
    return json.loads((Path(folder) / "model.json").read_text())


def load_demo_models(folder: str | Path = DEMO_DIR, device="cpu", landmark_backend: str = "mediapipe"):
    """(DubbingModels, DubbingOptions) of the demo model in ``folder``."""
    from keysync.audio.logmel import LogMelEncoder
    from keysync.face.landmarks import create_backend
    from keysync.models.vae_io import load_vae
    from keysync.pipelines.dubbing import DubbingOptions
    from keysync.pipelines.dubbing_models import DubbingModels

    folder = Path(folder)
    if not demo_available(folder):
        missing = [n for n in DEMO_FILES if not (folder / n).is_file()]
        raise FileNotFoundError(f"demo model files missing in {folder}: {', '.join(missing)} "
                                "(scripts/train_demo.sh makes them)")
    info = demo_info(folder)
    vae = load_vae(folder / "vae.safetensors", device=device)
    keyframe = _engine(DEMO_CONFIGS[0], folder / "keyframe.safetensors", vae, device)
    interpolation = _engine(DEMO_CONFIGS[1], folder / "interpolation.safetensors", vae, device)
    audio = LogMelEncoder(n_mels=int(info.get("n_mels", 32)))
    models = DubbingModels(keyframe, interpolation, vae, audio, audio, create_backend(landmark_backend))
    if "guidance" in info:  # chosen on held-out tuning clips (not the benchmark's)
        models.set_guidance(info["guidance"]["audio"], info["guidance"]["reference"])
    options = DubbingOptions(resolution=int(info["resolution"]), crop_scale=float(info["crop_scale"]),
                             paste_mode=info.get("paste_mode", "delta"), encode_mode="mode")
    return models, options


def _engine(config: str, weights: Path, vae, device):
    """A demo engine: its own weights plus the decoder of the demo VAE (shipped once, in
    ``vae.safetensors``, not in every engine file); every key loaded strictly."""
    from keysync.models.checkpoints import CheckpointError, read_state_dict
    from keysync.models.engine import build_engine

    engine = build_engine(config)
    state = read_state_dict(weights)
    state.update({f"first_stage_model.{k}": v for k, v in vae.state_dict().items() if k.startswith("decoder.")})
    try:
        engine.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{weights}: does not fit {config}: {err}") from err
    return engine.eval().requires_grad_(False).to(device)


#: the bundled held-out example of the synthetic world (``keysync synth --example``).
WORLD_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "world"


def known_example_landmarks(video: str | Path, folder: str | Path = WORLD_EXAMPLE) -> Path | None:
    """The landmarks file of the bundled synthetic example when ``video`` is a byte-identical copy
    of its ``face.mp4`` (e.g. an upload of it), else None. Its faces are generated, so their
    landmarks are known exactly; a detector trained on real faces places them less well."""
    import hashlib

    example, landmarks = Path(folder) / "face.mp4", Path(folder) / "face_landmarks.npy"
    video = Path(video)
    if not (example.is_file() and landmarks.is_file() and video.is_file()):
        return None
    if video.stat().st_size != example.stat().st_size:
        return None
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (video, example)]
    return landmarks if digest[0] == digest[1] else None
