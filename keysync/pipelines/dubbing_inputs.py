"""Everything the dubbing models are conditioned on, computed from a video and an audio file.

Full mode (default) works on the source video as it is (any size, any frame rate): landmarks on
the source frames, square face crops (``resolution``², 512 for the published models), lower-face
masks from the landmarks in crop pixels, VAE latents of the crops, and audio features on the
25 fps model timeline; model frame ``m`` shows source frame ``timeline.model_to_source`` (ping-pong
past the end of the video). Reference mode follows the original raw pipeline: the frames squashed
to 512×512, no crop, frame ``i`` of the video is model frame ``i`` whatever its rate (SPEC §1.2-1.3).

Frames are uint8 RGB ``(H, W, 3)``; latents scaled ``(N, 4, h, w)``; masks ``(N, 1, h, w)`` float.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from keysync.data.precompute import ENCODE_MODES, LATENT_SCALE, encode_video_latents, frames_to_model_input
from keysync.face.crop import CropPlan, plan_crops
from keysync.face.masks import build_masks, downsample_masks, scale_landmarks
from keysync.face.tracking import NoFaceFoundError
from keysync.media import VideoFrames, iter_video_frames, probe_video, read_video
from keysync.models.vae import DiagonalGaussianDistribution
from keysync.pipelines.lazy_rows import LazyRows
from keysync.pipelines.timeline import model_to_source

log = logging.getLogger(__name__)


@dataclass
class FaceTrack:
    """Landmarks and crops of the source video. ``points`` (N, 68, 2) source pixels;
    ``usable`` (N,) False where no face was seen within ``max_gap`` frames (left unchanged)."""

    points: np.ndarray
    found: np.ndarray
    usable: np.ndarray
    crops: CropPlan | None


@dataclass
class PreparedClip:
    """Model-timeline inputs of one job. ``source_index[m]``: the source frame of model frame m;
    ``crop_masks``: callable m → (R, R) uint8 mask in crop pixels (1 = regenerate)."""

    latents: torch.Tensor | LazyRows | None
    masks: torch.Tensor | LazyRows | None
    source_index: np.ndarray
    track: FaceTrack
    occluder: np.ndarray | None = None
    resolution: int = 512
    mask_kind: str = "box"
    extras: dict = field(default_factory=dict)

    def crop_mask(self, m: int) -> np.ndarray:
        """(R, R) uint8 lower-face mask of model frame ``m`` in crop pixels, occluders removed."""
        return self.source_mask(int(self.source_index[m]))

    def source_mask(self, s: int) -> np.ndarray:
        """(R, R) uint8 lower-face mask of source frame ``s`` in crop pixels, occluders removed."""
        r = self.resolution
        if self.track.crops is None:
            return np.zeros((r, r), np.uint8)
        points = self.track.crops.to_crop(self.track.points[s][None], start=s)
        mask = build_masks(points, (r, r), self.mask_kind)[0]
        if self.occluder is not None:
            from keysync.face.crop import crop_masks

            occ = crop_masks(self.occluder[s][None], self.track.crops.boxes[s][None], r)[0]
            mask = mask * (1 - (occ > 0)).astype(np.uint8)
        return mask


def usable_frames(found: np.ndarray, max_gap: int) -> np.ndarray:
    """Frames whose filled-in landmarks may be used: found, or in a run of ≤ ``max_gap`` misses
    between found frames (a detector blink); longer runs and leading/trailing runs beyond
    ``max_gap`` frames are not (cut-aways, the face out of shot)."""
    found = np.asarray(found, bool)
    usable = found.copy()
    n, i = len(found), 0
    while i < n:
        if found[i]:
            i += 1
            continue
        j = i
        while j < n and not found[j]:
            j += 1
        if j - i <= max_gap:
            usable[i:j] = True
        i = j
    return usable


def track_faces(video: Path, backend, n_frames: int, frame_size: tuple[int, int], resolution: int,
                max_gap: int = 12, crop_scale: float = 2.2, smooth_sigma: float = 3.0,
                batch_size: int = 16, progress: bool = True) -> FaceTrack:
    """Landmarks of every source frame (streamed), then smoothed square crop boxes."""
    from keysync.face.landmarks import extract_landmarks

    try:
        track = extract_landmarks(iter_video_frames(video, chunk=batch_size), backend, batch_size=batch_size,
                                  progress=progress, total=n_frames)
    except NoFaceFoundError as err:
        raise NoFaceFoundError(f"{video}: {err}") from None
    if not track.found.any():
        raise NoFaceFoundError(f"{video}: no face was found in any of its {len(track.found)} frames")
    usable = usable_frames(track.found, max_gap)
    if not usable.all():
        log.warning("%s: %d of %d frames have no face nearby; they are left unchanged",
                    video, int((~usable).sum()), len(usable))
    crops = plan_crops(track.points, frame_size, out_size=resolution, scale=crop_scale, smooth_sigma=smooth_sigma)
    return FaceTrack(points=track.points, found=track.found, usable=usable, crops=crops)


@torch.no_grad()
def prepare_full(video: Path, n_model: int, backend, vae, resolution: int = 512, mask_kind: str = "box",
                 occluder: np.ndarray | None = None, generator: torch.Generator | None = None,
                 encode_batch: int = 10, max_gap: int = 12, crop_scale: float = 2.2, progress: bool = True,
                 encode_mode: str = "sample", landmark_batch: int = 16, timer=None) -> PreparedClip:
    """Full-mode inputs: ``n_model`` model frames of ``video`` (ping-pong looped if needed); the
    landmarks are found now, latents and masks are lazy (:class:`LazyRows`, made as the sampler
    reads them). ``timer(stage)`` (a context-manager factory) times "landmarks" and "encode"."""
    timer = timer or (lambda stage: nullcontext())
    info = probe_video(video)
    if info.num_frames < 1:
        raise ValueError(f"{video}: the video has no frames")
    with timer("landmarks"):
        track = track_faces(video, backend, info.num_frames, (info.height, info.width), resolution, max_gap,
                            crop_scale, progress=progress, batch_size=landmark_batch)
    with timer("encode"):
        return _encode_full(video, info, track, n_model, vae, resolution, mask_kind, occluder, generator,
                            encode_batch, encode_mode, timer)


def frame_seed(seed: int, frame: int) -> int:
    """A 63-bit seed for source frame ``frame`` of a job seeded ``seed`` (well mixed, stable)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, int(frame)]).generate_state(1, np.uint64)[0]
               >> np.uint64(1))


@torch.no_grad()
def encode_crops(crops: np.ndarray, vae, resolution: int, frames: Sequence[int], seed: int, batch: int = 10,
                 mode: str = "sample") -> torch.Tensor:
    """uint8 face crops (K, R, R, 3) of source frames ``frames`` → scaled latents (K, 4, h, w).

    ``mode="sample"`` draws the posterior noise of each crop from ``frame_seed(seed, frame)``, so a
    frame's latent is the same whichever window or batch it is encoded in."""
    param = next(vae.parameters())
    out = []
    for start in range(0, len(crops), max(1, batch)):
        x = frames_to_model_input(crops[start:start + batch], resolution).to(param)
        if mode == "sample":
            posterior = DiagonalGaussianDistribution(vae.encode(x, unregularized=True))
            noise = torch.stack([torch.randn(posterior.mean.shape[1:], generator=torch.Generator().manual_seed(
                frame_seed(seed, f))) for f in frames[start:start + batch]])
            z = posterior.sample(noise=noise)
        else:
            z = vae.encode(x, mode=mode)
        out.append(z.float().cpu() * LATENT_SCALE)
    return torch.cat(out)


def _encode_full(video, info, track, n_model, vae, resolution, mask_kind, occluder, generator, encode_batch,
                 encode_mode, timer) -> PreparedClip:
    """Lazy latents and masks (:class:`LazyRows`, by source frame): encoded when the sampling loop
    reaches them, one plan chunk at a time, so host memory does not grow with the clip."""
    if encode_mode not in ENCODE_MODES:
        raise ValueError(f"encode_mode must be one of {ENCODE_MODES}, got {encode_mode!r}")
    source_index = model_to_source(n_model, info.num_frames, info.fps)
    frames = VideoFrames(video, chunk=max(encode_batch, 16))
    seed = generator.initial_seed() if generator is not None else torch.initial_seed()
    clip = PreparedClip(latents=None, masks=None, source_index=source_index, track=track, occluder=occluder,
                        resolution=resolution, mask_kind=mask_kind)

    def encode(sources: list[int]) -> torch.Tensor:
        with timer("encode"):
            try:
                pixels = np.stack([track.crops.crop(frames[s][None], start=s)[0] for s in sources])
            except IndexError:
                raise ValueError(f"{video}: decoding stopped before one of frames {sources[0]}..{sources[-1]} "
                                 f"({info.num_frames} expected)") from None
            return encode_crops(pixels, vae, resolution, sources, seed, encode_batch, encode_mode)

    def masks_of(sources: list[int]) -> torch.Tensor:
        with timer("encode"):
            full = [clip.source_mask(s) if track.usable[s] else np.zeros((resolution, resolution), np.uint8)
                    for s in sources]
            return downsample_masks(np.stack(full), latent_hw)

    first = int(source_index[0])
    z0 = encode([first])
    latent_hw = tuple(z0.shape[-2:])
    clip.latents = LazyRows(source_index, encode, tuple(z0.shape[1:]), keep=[first])
    clip.latents.put([first], z0)
    clip.masks = LazyRows(source_index, masks_of, (1,) + latent_hw, keep=[first])
    return clip


@torch.no_grad()
def prepare_reference(video: Path, backend, vae, max_frames: int | None, resolution: int = 512,
                      mask_kind: str = "box", occluder: np.ndarray | None = None,
                      generator: torch.Generator | None = None, encode_batch: int = 16,
                      progress: bool = True) -> tuple[PreparedClip, np.ndarray]:
    """Reference-mode inputs (the raw pipeline): frames squashed to R×R (bilinear, no antialias),
    landmarks on the squashed frames cast to int, box masks at R, latents of the squashed frames.
    Returns the clip and the squashed uint8 frames (N, R, R, 3)."""
    from keysync.face.landmarks import extract_landmarks

    frames, _ = read_video(video, num_frames=max_frames)
    if len(frames) == 0:
        raise ValueError(f"{video}: the video has no frames")
    squashed = ((frames_to_model_input(frames, resolution) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    squashed = squashed.permute(0, 2, 3, 1).numpy()
    try:
        track = extract_landmarks(squashed, backend, progress=progress, smooth_sigma=0.0)
    except NoFaceFoundError as err:
        raise NoFaceFoundError(f"{video}: {err}") from None
    if not track.found.any():
        raise NoFaceFoundError(f"{video}: no face was found in any of its {len(frames)} frames")
    points = scale_landmarks(track.points, (resolution, resolution), (resolution, resolution), to_int=True)
    latents = encode_video_latents([frames], vae, resolution, chunk_size=encode_batch, mode="sample",
                                   generator=generator)
    masks = build_masks(points, (resolution, resolution), mask_kind)
    if occluder is not None:
        from keysync.face.occlusion import apply_occlusion

        masks = apply_occlusion(masks, occluder, resize=True)
    masks = downsample_masks(masks, tuple(latents.shape[-2:]))
    ft = FaceTrack(points=points.astype(np.float32), found=track.found, usable=np.ones(len(frames), bool), crops=None)
    clip = PreparedClip(latents=latents, masks=masks, source_index=np.arange(len(frames)), track=ft,
                        resolution=resolution, mask_kind=mask_kind)
    return clip, squashed
