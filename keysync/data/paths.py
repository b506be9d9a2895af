"""Where every precomputed artefact of a clip lives (SPEC §6.2), derived with pathlib.

The reference derives paths by ``str.replace`` of folder names and ``split(".")`` (SPEC
§11.20), which breaks on folder names that contain another (``audio`` in ``my_audio_set``)
or on dots in paths. Here a clip is identified by its path *relative to the video folder*
and every artefact is built from that relative path, so names with dots or repeated words
are safe:

=========================  ==========================================================
video (pixels)             ``<root>/video_crop/<rel>.mp4``
audio (16 kHz wav)         ``<root>/audio/<rel>.wav``
audio features             ``<root>/audio_emb/<rel>_<model>_emb.safetensors`` (key ``audio``, (F, 2, D))
VAE latents (scaled)       ``<root>/video_crop_emb/<rel>_video_512_latent.safetensors`` (key ``latents``, (F, 4, 64, 64))
landmarks                  ``<root>/landmarks_crop/<rel>.npy`` ((F, 68, 2), x/y pixels of the video)
emotions (KeyFace)         ``<root>/emotions/<rel>.pt``
=========================  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm")


@dataclass(frozen=True)
class ArtefactLayout:
    """Folder names of a dataset root (defaults = the reference layout)."""

    root: Path
    video_folder: str = "video_crop"
    audio_folder: str = "audio"
    audio_emb_folder: str = "audio_emb"
    latent_folder: str = "video_crop_emb"
    landmarks_folder: str = "landmarks_crop"
    emotions_folder: str = "emotions"

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def from_video(cls, video: str | Path, **folders: str) -> "ArtefactLayout":
        """The layout whose video folder contains ``video`` (searched upwards by folder name)."""
        video = Path(video).resolve()
        name = folders.get("video_folder", cls.video_folder)
        for parent in video.parents:
            if parent.name == name:
                return cls(parent.parent, **folders)
        raise ValueError(f"{video} is not inside a '{name}' folder; pass the dataset root explicitly")

    def relative(self, video: str | Path) -> Path:
        """``<rel>`` of a video: its path under the video folder, without suffix."""
        video_dir = (self.root / self.video_folder).resolve()
        path = Path(video).resolve()
        try:
            rel = path.relative_to(video_dir)
        except ValueError as err:
            raise ValueError(f"{path} is not under the video folder {video_dir}") from err
        return rel.with_suffix("") if rel.suffix.lower() in VIDEO_SUFFIXES else rel

    def _under(self, folder: str, rel: Path, suffix: str) -> Path:
        return self.root / folder / rel.parent / (rel.name + suffix)

    def video(self, rel: Path, suffix: str = ".mp4") -> Path:
        return self._under(self.video_folder, rel, suffix)

    def audio(self, rel: Path) -> Path:
        return self._under(self.audio_folder, rel, ".wav")

    def audio_features(self, rel: Path, model: str) -> Path:
        return self._under(self.audio_emb_folder, rel, f"_{model}_emb.safetensors")

    def latents(self, rel: Path, resolution: int = 512) -> Path:
        return self._under(self.latent_folder, rel, f"_video_{resolution}_latent.safetensors")

    def landmarks(self, rel: Path) -> Path:
        return self._under(self.landmarks_folder, rel, ".npy")

    def emotions(self, rel: Path) -> Path:
        return self._under(self.emotions_folder, rel, ".pt")


AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".m4a", ".aac", ".ogg", ".opus") + VIDEO_SUFFIXES


def list_videos(spec: str | Path) -> list[Path]:
    """Videos named by a file list (``.txt``, one path per line; relative to the list's folder),
    a glob pattern, a folder (searched recursively) or a single file. Sorted, de-duplicated."""
    return list_files(spec, VIDEO_SUFFIXES)


def list_audio(spec: str | Path) -> list[Path]:
    """Audio files (or videos with sound) named as for :func:`list_videos`."""
    return list_files(spec, AUDIO_SUFFIXES)


def list_files(spec: str | Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files named by a ``.txt`` list, a glob, a folder (recursive, filtered by ``suffixes``) or a path."""
    spec_str = str(spec)
    path = Path(spec_str)
    if any(ch in spec_str for ch in "*?["):
        anchor = Path(spec_str.split("*")[0].split("?")[0].split("[")[0]).parent
        pattern = spec_str[len(str(anchor)) + 1:] if str(anchor) not in ("", ".") else spec_str
        found = sorted(anchor.glob(pattern))
    elif path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes)
    elif path.suffix == ".txt":
        if not path.is_file():
            raise FileNotFoundError(f"file list not found: {path}")
        lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        found = [p if p.is_absolute() else path.parent / p for p in map(Path, lines)]
    elif path.exists():
        found = [path]
    else:
        raise FileNotFoundError(f"no such file, folder or file list: {path}")
    return list(dict.fromkeys(p for p in found if p.is_file() or path.suffix == ".txt"))
