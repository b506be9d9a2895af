"""Which weight files a pipeline needs, where they live, and how to get them.

Nothing is downloaded at run time. A missing file gives one message that names every missing
file, where it comes from, and the optional command that fetches them on a machine that is
online (``keysync download-weights``, which uses ``huggingface_hub``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path("pretrained_models")


@dataclass(frozen=True)
class WeightFile:
    """One published file: local path under the root, Hugging Face repo and file inside it."""

    local: str
    repo: str
    remote: str
    what: str


DUBBING_FILES = {
    "keyframe": WeightFile("checkpoints/keyframe_dub.pt", "toninio19/keysync", "keyframe_dub.pt",
                           "KeySync keyframe model"),
    "interpolation": WeightFile("checkpoints/interpolation_dub.pt", "toninio19/keysync", "interpolation_dub.pt",
                                "KeySync interpolation model"),
    "wavlm": WeightFile("checkpoints/WavLM-Base+.pt", "toninio19/keysync", "WavLM-Base+.pt",
                        "WavLM Base+ (interpolation audio features)"),
    "hubert": WeightFile("hubert-base-ls960", "facebook/hubert-base-ls960", "*",
                         "HuBERT base (keyframe audio features)"),
    "vae": WeightFile("svd_vae", "stabilityai/stable-video-diffusion-img2vid", "vae/*",
                      "SVD VAE encoder (video latents)"),
}

#: KeyFace (animation): HF ``toninio19/keyface`` plus wav2vec2 and the SVD VAE (SPEC §10).
KEYFACE_FILES = {
    "keyframe": WeightFile("checkpoints/keyframe.pt", "toninio19/keyface", "keyframe.pt",
                           "KeyFace keyframe model"),
    "interpolation": WeightFile("checkpoints/interpolation.pt", "toninio19/keyface", "interpolation.pt",
                                "KeyFace interpolation model"),
    "interpolation_bad": WeightFile("checkpoints/interpolation_bad.pt", "toninio19/keyface", "interpolation_bad.pt",
                                    "KeyFace weak interpolation model (autoguidance)"),
    "wavlm": WeightFile("checkpoints/WavLM-Base+.pt", "toninio19/keyface", "WavLM-Base+.pt",
                        "WavLM Base+ (keyframe audio features)"),
    "beats": WeightFile("checkpoints/BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt", "toninio19/keyface",
                        "BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt", "BEATs (audio-event features, both models)"),
    "wav2vec2": WeightFile("wav2vec2-base-960h", "facebook/wav2vec2-base-960h", "*",
                           "wav2vec2 base 960h (interpolation audio features)"),
    "vae": DUBBING_FILES["vae"],
}


class MissingWeightsError(FileNotFoundError):
    """Published weights are not where the pipeline looks for them."""


def missing_message(missing: dict[str, tuple[Path, WeightFile]], root: Path) -> str:
    lines = ["these weight files are missing:"]
    for name, (path, spec) in missing.items():
        lines.append(f"  {name:<13} {path}  — {spec.what}, from huggingface.co/{spec.repo} ({spec.remote})")
    lines.append(f"Put them under {root}/ (see pretrained_models/README.md), or on an online machine run:")
    lines.append(f"  keysync download-weights --root {root} --only {','.join(missing)}")
    return "\n".join(lines)


def resolve_weights(files: dict[str, WeightFile], root: str | Path = DEFAULT_ROOT,
                    overrides: dict[str, str | Path | None] | None = None) -> dict[str, Path]:
    """Local paths of every file (``overrides`` take precedence); raise listing all missing ones."""
    root = Path(root)
    paths, missing = {}, {}
    for name, spec in files.items():
        given = (overrides or {}).get(name)
        path = Path(given) if given else root / spec.local
        if not path.exists():
            missing[name] = (path, spec)
        paths[name] = path
    if missing:
        raise MissingWeightsError(missing_message(missing, root))
    return paths


def download_weights(files: dict[str, WeightFile], root: str | Path = DEFAULT_ROOT,
                     only: list[str] | None = None) -> list[Path]:
    """Fetch the files with ``huggingface_hub`` (optional dependency; needs network access)."""
    try:
        from huggingface_hub import hf_hub_download, snapshot_download
    except ImportError as err:
        raise RuntimeError("downloading needs huggingface_hub: pip install huggingface_hub") from err
    root = Path(root)
    done = []
    for name, spec in files.items():
        if only and name not in only:
            continue
        target = root / spec.local
        if spec.remote.endswith("*"):
            prefix = spec.remote[:-1]
            folder = snapshot_download(spec.repo, allow_patterns=[spec.remote])
            src = Path(folder) / prefix
            target.mkdir(parents=True, exist_ok=True)
            for f in src.iterdir():
                if f.is_file():
                    (target / f.name).write_bytes(f.read_bytes())
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(Path(hf_hub_download(spec.repo, spec.remote)).read_bytes())
        done.append(target)
    return done
