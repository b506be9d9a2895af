"""Precompute the per-clip artefacts that training and inference read (SPEC §7).

One function per artefact, used by the ``keysync precompute`` command, the datasets and the
pipelines alike, so there is one way to compute each:

* :func:`encode_video_latents`: frames → scaled VAE latents (F, 4, H/8, W/8);
* :func:`compute_audio_features`: audio → (F, 2, D) features aligned to the F video frames;
* :func:`compute_landmarks`: frames → (F, 68, 2) landmarks of the main face.

:func:`run_precompute` applies one of them to many clips: outputs are written atomically under
an :class:`~keysync.data.paths.ArtefactLayout`, existing outputs are skipped with
``only_missing``, a failing clip is reported and the others go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm.auto import tqdm

from keysync.data.paths import ArtefactLayout
from keysync.media import FPS, MediaError, atomic_output, iter_video_frames, probe_video, read_audio

log = logging.getLogger(__name__)

LATENT_SCALE = 0.18215
ENCODE_MODES = ("sample", "mode")


class WrongFrameRateError(ValueError):
    """The models assume 25 fps video; nothing is resampled silently."""


def frames_to_model_input(frames: np.ndarray, resolution: int = 512) -> torch.Tensor:
    """uint8 (N, H, W, 3) → float (N, 3, R, R) in [-1, 1], squashed to R×R (bilinear, as SPEC §7.1)."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    if x.shape[-2:] != (resolution, resolution):
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return x / 127.5 - 1.0


@torch.no_grad()
def encode_video_latents(frames: Iterable[np.ndarray], vae, resolution: int = 512, chunk_size: int = 10,
                         mode: str = "sample", generator: torch.Generator | None = None,
                         scale_factor: float = LATENT_SCALE) -> torch.Tensor:
    """Chunks of uint8 frames (N, H, W, 3) → latents (F, 4, R/8, R/8) **scaled** by ``scale_factor``.

    ``mode="sample"`` draws from the posterior as the reference does (not reproducible across
    runs unless ``generator`` is given); ``"mode"`` is deterministic.
    """
    if mode not in ENCODE_MODES:
        raise ValueError(f"mode must be one of {ENCODE_MODES}, got {mode!r}")
    param = next(vae.parameters())
    out = []
    for chunk in frames:
        chunk = np.asarray(chunk)
        for start in range(0, len(chunk), chunk_size):
            x = frames_to_model_input(chunk[start:start + chunk_size], resolution).to(param)
            out.append(vae.encode(x, mode=mode, generator=generator).float().cpu() * scale_factor)
    if not out:
        raise ValueError("no frames to encode")
    return torch.cat(out)


def compute_audio_features(audio: np.ndarray, encoder: Callable, n_frames: int | None = None,
                           sample_rate: int = 16000) -> torch.Tensor:
    """16 kHz mono float32 audio → (F, 2, D) features, F = ``n_frames`` (the video's) or the audio's."""
    if audio.size == 0:
        raise ValueError("the audio is empty")
    return encoder(audio, sample_rate, n_frames)


def compute_landmarks(frames: Iterable[np.ndarray], backend, total: int | None = None, **kwargs):
    """Frames → :class:`keysync.face.landmarks.LandmarkTrack` of the main face ((F, 68, 2) points)."""
    from keysync.face.landmarks import extract_landmarks

    return extract_landmarks(frames, backend, total=total, **kwargs)


# ----------------------------------------------------------------------------- batch runner


@dataclass
class PrecomputeSummary:
    """What a batch run did, per clip."""

    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)
    seconds: float = 0.0
    frames: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed

    def report(self) -> str:
        lines = [f"{len(self.done)} written, {len(self.skipped)} already present, {len(self.failed)} failed "
                 f"({self.frames} frames in {self.seconds:.1f} s)"]
        lines += [f"  FAILED {path}: {why}" for path, why in self.failed.items()]
        return "\n".join(lines)


def check_fps(info, path: Path) -> None:
    if abs(info.fps - FPS) > 1e-3:
        raise WrongFrameRateError(
            f"{path}: {info.fps:g} fps; the models need {FPS} fps video. Convert it first, e.g. "
            f"keysync.media.convert_fps('{path}', 'out.mp4', fps={FPS})"
        )


def _save_safetensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    with atomic_output(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp)


def _save_npy(array: np.ndarray, path: Path) -> None:
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def latents_job(vae, resolution: int = 512, chunk_size: int = 10, mode: str = "sample", seed: int | None = None):
    """A job for :func:`run_precompute` writing ``<rel>_video_<R>_latent.safetensors`` (key ``latents``)."""

    def output(layout: ArtefactLayout, rel: Path) -> Path:
        return layout.latents(rel, resolution)

    def run(video: Path, out: Path) -> int:
        info = probe_video(video)
        check_fps(info, video)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        latents = encode_video_latents(iter_video_frames(video, chunk=chunk_size), vae, resolution, chunk_size,
                                       mode, generator)
        if latents.shape[0] != info.num_frames:
            raise MediaError(f"{video}: decoded {latents.shape[0]} frames, the header says {info.num_frames}")
        _save_safetensors({"latents": latents}, out)
        return latents.shape[0]

    return output, run


def audio_job(encoder, model_name: str, layout_in: ArtefactLayout | None = None):
    """A job writing ``<rel>_<model>_emb.safetensors`` (key ``audio``, (F, 2, D), F = video frames).

    The audio is ``<root>/audio/<rel>.wav`` when it exists, else the video's own audio track.
    """

    def output(layout: ArtefactLayout, rel: Path) -> Path:
        return layout.audio_features(rel, model_name)

    def run(video: Path, out: Path) -> int:
        info = probe_video(video)
        check_fps(info, video)
        source = video
        if layout_in is not None:
            wav = layout_in.audio(layout_in.relative(video))
            source = wav if wav.is_file() else video
        features = compute_audio_features(read_audio(source), encoder, n_frames=info.num_frames)
        _save_safetensors({"audio": features.float()}, out)
        return features.shape[0]

    return output, run


def landmarks_job(backend, batch_size: int = 16, smooth_sigma: float = 1.0):
    """A job writing ``<rel>.npy`` landmarks (F, 68, 2) in the video's pixel coordinates."""

    def output(layout: ArtefactLayout, rel: Path) -> Path:
        return layout.landmarks(rel)

    def run(video: Path, out: Path) -> int:
        info = probe_video(video)
        check_fps(info, video)
        track = compute_landmarks(iter_video_frames(video, chunk=batch_size), backend, total=info.num_frames,
                                  batch_size=batch_size, smooth_sigma=smooth_sigma, progress=False)
        if track.num_missing:
            log.warning("%s: no face in %d of %d frames (filled from neighbours)", video, track.num_missing, len(track))
        _save_npy(track.points.astype(np.float32), out)
        return len(track)

    return output, run


def run_precompute(videos: Sequence[Path], job, layout_in: ArtefactLayout, layout_out: ArtefactLayout | None = None,
                   only_missing: bool = False, progress: bool = True) -> PrecomputeSummary:
    """Apply a job (``(output_path_fn, run_fn)``) to every video; never stops at a bad one."""
    output, run = job
    layout_out = layout_out or layout_in
    summary = PrecomputeSummary()
    start = time.perf_counter()
    for video in tqdm(videos, desc="precompute", unit="clip", disable=not progress):
        video = Path(video)
        try:
            out = output(layout_out, layout_in.relative(video))
            if only_missing and out.is_file():
                summary.skipped.append(video)
                continue
            summary.frames += run(video, out)
            summary.done.append(video)
        except (MediaError, ValueError, RuntimeError, OSError) as err:
            log.error("%s: %s", video, err)
            summary.failed[video] = f"{type(err).__name__}: {err}"
    summary.seconds = time.perf_counter() - start
    return summary
