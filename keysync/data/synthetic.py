"""Synthetic precomputed artefacts in the dataset layout, for smoke runs and tests.

:func:`write_synthetic_clips` writes, per clip ``clip_<i>`` under ``root`` (layout of
:class:`~keysync.data.paths.ArtefactLayout`): scaled latents (F, 4, h, w) (a per-clip pattern
plus small per-frame changes, so a tiny model can fit them), audio features (F, 2, D),
68-point landmarks (F, 68, 2) of a plausible face at the video size (mouth opening varies
with time), and optionally the video (F, H, W) and a 16 kHz wav. Returns the file list path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from keysync.data.paths import ArtefactLayout


def face_landmarks(height: int, width: int, mouth_open: float = 0.0) -> np.ndarray:
    """An iBUG 68-point face (x, y pixels) filling the centre of a (height, width) frame."""
    u = np.zeros((68, 2))
    jaw_t = np.linspace(-1, 1, 17)
    u[0:17] = np.stack([0.5 + 0.32 * jaw_t, 0.45 + 0.38 * np.sqrt(1 - 0.85 * jaw_t**2)], 1)
    u[17:22] = np.stack([np.linspace(0.25, 0.45, 5), np.full(5, 0.33)], 1)
    u[22:27] = np.stack([np.linspace(0.55, 0.75, 5), np.full(5, 0.33)], 1)
    u[27:31] = np.stack([np.full(4, 0.5), np.linspace(0.40, 0.58, 4)], 1)
    u[31:36] = np.stack([np.linspace(0.44, 0.56, 5), np.full(5, 0.62)], 1)
    for start, cx in ((36, 0.35), (42, 0.65)):
        ang = np.linspace(0, 2 * np.pi, 6, endpoint=False)
        u[start:start + 6] = np.stack([cx + 0.06 * np.cos(ang), 0.42 + 0.02 * np.sin(ang)], 1)
    ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    u[48:60] = np.stack([0.5 + 0.12 * np.cos(ang), 0.74 + (0.04 + 0.03 * mouth_open) * np.sin(ang)], 1)
    ang = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    u[60:68] = np.stack([0.5 + 0.08 * np.cos(ang), 0.74 + 0.03 * mouth_open * np.sin(ang)], 1)
    return (u * np.array([width, height])).astype(np.float32)


def write_synthetic_clips(root: str | Path, n_clips: int = 3, num_frames: int = 180, latent_size: int = 16,
                          audio_dim: int = 32, frame_size: int = 64, audio_emb_type: str = "hubert",
                          latent_resolution: int = 512, with_video: bool = True, with_audio: bool = False,
                          frame_variation: float = 0.2, names: list[str] | None = None, seed: int = 0,
                          pixels_from_latents: Callable[[torch.Tensor], torch.Tensor] | None = None,
                          crf: int = 23) -> Path:
    """Write ``n_clips`` synthetic clips under ``root`` and a ``filelist.txt``; returns its path.

    ``num_frames`` may be an int or a list (one length per clip). ``pixels_from_latents``
    (scaled latents (F, 4, h, w) → pixels (F, 3, H, W) in [-1, 1], e.g. a VAE decoder) makes
    the video consistent with the latents (so a pixel loss can be fitted); by default the
    video is a flat colour with a moving bar.
    """
    root = Path(root)
    layout = ArtefactLayout(root)
    gen = torch.Generator().manual_seed(seed)
    rs = np.random.RandomState(seed)
    lengths = list(num_frames) if isinstance(num_frames, (list, tuple)) else [num_frames] * n_clips
    names = names or [f"clip_{i}" for i in range(n_clips)]
    videos = []
    for name, n in zip(names, lengths):
        video = layout.video(Path(name))
        rel = layout.relative(video)
        base = torch.randn(4, 1, latent_size, latent_size, generator=gen)
        wobble = frame_variation * torch.randn(4, n, latent_size, latent_size, generator=gen)
        latents = (base + wobble).permute(1, 0, 2, 3).contiguous()
        for path in (layout.latents(rel, latent_resolution), layout.audio_features(rel, audio_emb_type),
                     layout.landmarks(rel)):
            path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"latents": latents}, str(layout.latents(rel, latent_resolution)))
        save_file({"audio": torch.randn(n, 2, audio_dim, generator=gen)},
                  str(layout.audio_features(rel, audio_emb_type)))
        opening = 0.5 + 0.5 * np.sin(np.arange(n) / 3.0 + rs.rand() * 6)
        landmarks = np.stack([face_landmarks(frame_size, frame_size, o) for o in opening])
        np.save(layout.landmarks(rel), landmarks + rs.randn(*landmarks.shape).astype(np.float32) * 0.3)
        video.parent.mkdir(parents=True, exist_ok=True)
        if with_video and pixels_from_latents is not None:
            from keysync.media import write_video

            with torch.no_grad():
                pixels = pixels_from_latents(latents).clamp(-1, 1)
            frames = ((pixels + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
            write_video(video, frames, fps=25, crf=crf, preset="ultrafast")
        elif with_video:
            from keysync.media import write_video

            colour = rs.randint(40, 200, size=3)
            frames = np.empty((n, frame_size, frame_size, 3), np.uint8)
            frames[:] = colour
            for i in range(n):
                y = int(frame_size * (0.6 + 0.1 * opening[i]))
                frames[i, y:y + frame_size // 8, frame_size // 3: 2 * frame_size // 3] = 255 - colour
            write_video(video, frames, fps=25, crf=crf, preset="ultrafast")
        else:
            video.touch()
        if with_audio:
            from keysync.media import write_audio

            layout.audio(rel).parent.mkdir(parents=True, exist_ok=True)
            write_audio(layout.audio(rel), (0.1 * rs.randn(n * 640)).astype(np.float32))
        videos.append(video)
    filelist = root / "filelist.txt"
    filelist.write_text("".join(f"{v}\n" for v in videos))
    return filelist
