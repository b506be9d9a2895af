"""Training samples from precomputed artefacts (SPEC §6.2, §6.3).

:class:`LatentVideoDataset` returns, for index ``i`` (clip ``i mod #clips``), one window of
T = ``num_frames`` frames:

* ``mode="keyframe"`` (reference "prediction", ``skip_frames`` 12): T indices 13 apart;
  ``cond_frames`` (4, h, w) = the latent of the first keyframe (identity reference).
* ``mode="interpolation"`` (``skip_frames`` 0): T consecutive frames; ``cond_frames``
  (4, 2, h, w) = latents of the first and last frame.

Sample dict (shapes for T = 14, latents h×w, pixels R = ``resize_size``):

=============================  ====================================================================
latents, gt                    (4, T, h, w) scaled latents (``latents`` key of the safetensors file)
masks                          (1, T, h, w) float, 1 = regenerate (box masks from the landmarks)
cond_frames                    keyframe (4, h, w); interpolation (4, 2, h, w)
audio_emb                      (T, 2, D) audio features of the window's (25 fps) frames (KeyFace: two
                               feature files concatenated on D, ``extra_audio_emb_type``)
original_frames                (3, T, R, R) pixels in [-1, 1]        (``load_original_frames``)
cond_frames_without_noise      (3, 1 or 2, R, R) pixels of the cond frames (same flag; logging)
raw_audio                      (T·640,) 16 kHz from the first frame on  (``load_raw_audio``; logging)
valence, arousal, emo_labels   (T,) each                             (``use_emotions``)
cond_aug, motion_bucket_id,    0., [125], [24] (unused by KeySync), T, zeros(T)
fps_id, num_video_frames,
image_only_indicator
sample_id                      ``"<index>:<clip>@<first frame>"`` (str; logging and data audits)
=============================  ====================================================================

Window draws use a numpy ``RandomState`` per process (seeded from ``seed``, the rank, the
worker id and the step the run starts at, so a resumed run does not replay its first windows), or, with ``fixed_windows_seed``, one fixed window per index (a fixed sample set).
Errors: a missing/unreadable artefact raises :class:`SampleLoadError` naming the file, or
(``on_error="skip"``) the next index is tried and the skip is logged with a running count.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange
from safetensors import safe_open
from torch.utils.data import Dataset, get_worker_info

from keysync.data.clip_index import ClipRecord, SampleLoadError, build_clip_index, reading
from keysync.data.helpers import (convert_indexes, crop_landmarks, get_frame_indices, normalize_latents,
                                  scale_and_crop, trim_pad_audio)
from keysync.face.masks import build_masks

log = logging.getLogger(__name__)

MODES = {"keyframe": 12, "prediction": 12, "interpolation": 0}  # mode → default skip_frames
#: builder arguments per mask kind, as the reference dataset calls them.
_MASK_KWARGS = {"box": ("nose_index", "box_expand"), "full": ("nose_index", "offset"),
                "mouth": ("nose_index",), "heart": (), "face": ()}


def read_frames_at(path: Path, indexes: Sequence[int], chunk: int = 32) -> np.ndarray:
    """Decode only the frames ``indexes`` (sorted or not) → uint8 (len, H, W, 3).

    Streams ``[min, max]`` in chunks, so memory stays O(chunk + len(indexes)) frames.
    """
    from keysync.media import iter_video_frames

    lo, hi = min(indexes), max(indexes)
    wanted, pos = set(indexes), lo
    kept: dict[int, np.ndarray] = {}
    for block in iter_video_frames(path, chunk=chunk, start=lo, num_frames=hi - lo + 1):
        for frame in block:
            if pos in wanted:
                kept[pos] = frame
            pos += 1
    missing = sorted(wanted - kept.keys())
    if missing:
        raise IndexError(f"video ends at frame {pos - 1}, frames {missing[:5]} requested")
    return np.stack([kept[i] for i in indexes])


def _read_rows(path: Path, key: str, indexes: Sequence[int]) -> torch.Tensor:
    """Rows ``indexes`` of tensor ``key`` of a safetensors file, reading only [min, max]."""
    with reading(path), safe_open(str(path), "pt") as f:
        lo, hi = min(indexes), max(indexes)
        block = f.get_slice(key)[lo:hi + 1]
        if block.shape[0] != hi - lo + 1:
            raise IndexError(f"{key!r} has too few rows for index {hi}")
        return block[torch.as_tensor([i - lo for i in indexes])]


class LatentVideoDataset(Dataset):
    """KeySync training clips from precomputed latents, audio features and landmarks.

    Args:
        filelist: file list (``.txt``), folder, glob, or list of video paths under ``video_folder``.
        mode: ``"keyframe"`` or ``"interpolation"``; ``skip_frames`` defaults from it (12 / 0).
        audio_emb_type: feature name in ``<rel>_<type>_emb.safetensors`` (hubert, wavlm, ...).
        extra_audio_emb_type: a second feature file concatenated after the first on the feature
            axis (KeyFace's ``add_extra_audio_emb``: ``beats``, giving 768 + 768 = 1536), or None.
        root, folders: dataset root and :class:`~keysync.data.paths.ArtefactLayout` folder names.
        resize_size: pixel size R of ``original_frames`` (the VAE's input size: 512 full size).
        what_mask, nose_index, expand_box: mask kind and parameters (reference: box, 28, 0).
        mask_geometry: ``"reference"`` builds masks at the raw frame size (right only for
            square videos, SPEC §11.16); ``"crop"`` first maps the landmarks through
            :func:`scale_and_crop`'s resize and centre crop.
        frame_size: (H, W) of the videos; None reads it from each video header (cached).
        load_original_frames: decode pixels (needed by pixel losses only).
        on_error: ``"raise"`` or ``"skip"`` (``max_skips`` consecutive skips at most).
    """

    def __init__(self, filelist: Any, mode: str = "keyframe", num_frames: int = 14, skip_frames: int | None = None,
                 audio_emb_type: str = "hubert", extra_audio_emb_type: str | None = None,
                 root: str | Path | None = None, folders: Mapping[str, str] | None = None,
                 latent_resolution: int = 512, latent_scale: float = 1.0, data_mean: Sequence[float] | None = None,
                 data_std: Sequence[float] | None = None, resize_size: int | None = 512, what_mask: str = "box",
                 nose_index: int = 28, expand_box: float = 0.0, mask_geometry: str = "reference",
                 frame_size: Sequence[int] | None = None, load_original_frames: bool = False,
                 load_raw_audio: bool = False, use_emotions: bool = False, select_randomly: bool = False,
                 virtual_increase: int = 1, fixed_windows_seed: int | None = None, seed: int = 0,
                 on_error: str = "raise", max_skips: int = 20, augment: bool = False, fps: int = 25,
                 audio_rate: int = 16000, motion_bucket_id: int = 125,
                 group_markers: Sequence[str] | None = None, source_fps: Mapping[str, float] | None = None,
                 start_idx: Mapping[str, int] | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
        if mask_geometry not in ("reference", "crop"):
            raise ValueError(f"mask_geometry must be 'reference' or 'crop', got {mask_geometry!r}")
        if what_mask not in _MASK_KWARGS:
            raise ValueError(f"what_mask must be one of {sorted(_MASK_KWARGS)}, got {what_mask!r}")
        self.mode = "keyframe" if mode == "prediction" else mode
        self.num_frames = num_frames
        self.skip_frames = MODES[mode] if skip_frames is None else skip_frames
        self.audio_emb_type, self.latent_resolution = audio_emb_type, latent_resolution
        self.extra_audio_emb_type = extra_audio_emb_type
        self.latent_scale, self.data_mean, self.data_std = latent_scale, data_mean, data_std
        self.resize_size, self.what_mask, self.mask_geometry = resize_size, what_mask, mask_geometry
        self.mask_params = {"nose_index": nose_index, "box_expand": expand_box, "offset": expand_box}
        self.frame_size = tuple(frame_size) if frame_size is not None else None
        self.load_original_frames, self.load_raw_audio = load_original_frames, load_raw_audio
        self.use_emotions, self.select_randomly = use_emotions, select_randomly
        self.virtual_increase, self.fixed_windows_seed, self.seed = virtual_increase, fixed_windows_seed, seed
        self.on_error, self.max_skips, self.augment = on_error, max_skips, augment
        self.fps, self.audio_rate, self.motion_bucket_id = fps, audio_rate, motion_bucket_id
        self.rank = 0  # set by the data module; feeds the window RNG seed
        self.seed_offset = 0  # set by the data module to the step a (resumed) run starts at
        self.skipped = 0
        self._rng: tuple[int, np.random.RandomState, random.Random] | None = None
        self._sizes: dict[Path, tuple[int, int]] = {}
        extra = {} if group_markers is None else {"group_markers": tuple(group_markers)}
        self.clips: list[ClipRecord] = build_clip_index(
            filelist, num_frames, self.skip_frames, audio_emb_type, root=root, folders=folders,
            latent_resolution=latent_resolution, select_randomly=select_randomly, on_error=on_error,
            source_fps=source_fps, start_idx=start_idx, fps=fps, **extra)

    # ------------------------------------------------------------------ bookkeeping
    def __len__(self) -> int:
        return len(self.clips) * self.virtual_increase

    @property
    def groups(self) -> list[str]:
        """Group of every index (for :class:`~keysync.data.samplers.BalancedGroupSampler`)."""
        return [c.group for c in self.clips] * self.virtual_increase

    def _rngs(self, idx: int) -> tuple[np.random.RandomState, random.Random]:
        if self.fixed_windows_seed is not None:
            key = [self.fixed_windows_seed, idx]
            return np.random.RandomState(key), random.Random(hash(tuple(key)))
        if self._rng is None or self._rng[0] != os.getpid():
            info = get_worker_info()
            key = [self.seed, self.rank, info.id if info is not None else 0, self.seed_offset]
            self._rng = (os.getpid(), np.random.RandomState(key), random.Random(hash(tuple(key))))
        return self._rng[1], self._rng[2]

    def _frame_size(self, clip: ClipRecord) -> tuple[int, int]:
        if self.frame_size is not None:
            return self.frame_size
        if clip.video not in self._sizes:
            from keysync.media import probe_video

            with reading(clip.video):
                info = probe_video(clip.video, count_frames=False)
            self._sizes[clip.video] = (info.height, info.width)
        return self._sizes[clip.video]

    # ------------------------------------------------------------------ loading
    def __getitem__(self, idx: int) -> dict[str, Any]:
        for _ in range(self.max_skips + 1):
            clip = self.clips[idx % len(self.clips)]
            try:
                return self.load_sample(clip, idx)
            except Exception as err:  # noqa: BLE001 - raised or counted, never swallowed
                error = err if isinstance(err, SampleLoadError) else SampleLoadError(f"{clip.video}: {err!r}")
                if self.on_error == "raise":
                    raise error from err
                self.skipped += 1
                log.warning("skipped sample %d (%d skipped so far in this process): %s", idx, self.skipped, error)
                idx = (idx + 1) % len(self)
        raise SampleLoadError(f"{self.max_skips + 1} consecutive samples could not be loaded; last index {idx}")

    def load_sample(self, clip: ClipRecord, idx: int) -> dict[str, Any]:
        """The sample dict of one window of ``clip`` (see the module docstring)."""
        rng, py_rng = self._rngs(idx)
        indexes = get_frame_indices(clip.num_frames, self.num_frames, self.skip_frames, clip.start_idx,
                                    self.select_randomly, rng=rng, py_rng=py_rng)
        video_idx = indexes if clip.source_fps == self.fps else convert_indexes(indexes, self.fps, clip.source_fps)
        t = self.num_frames

        latents = _read_rows(clip.latents_path(self.latent_resolution), "latents", video_idx).float()
        latents = normalize_latents(rearrange(latents, "t c h w -> c t h w") * self.latent_scale,
                                    self.data_mean, self.data_std)
        audio = _read_rows(clip.audio_features_path(self.audio_emb_type), "audio", indexes).float()
        if self.extra_audio_emb_type:
            extra = _read_rows(clip.audio_features_path(self.extra_audio_emb_type), "audio", indexes).float()
            audio = torch.cat([audio, extra], dim=-1)
        sample: dict[str, Any] = {
            "latents": latents, "gt": latents, "audio_emb": audio,
            "masks": self._masks(clip, video_idx, tuple(latents.shape[-2:])),
            "cond_frames": latents[:, 0] if self.mode == "keyframe" else torch.stack([latents[:, 0], latents[:, -1]], 1),
            "cond_aug": torch.tensor(0.0), "motion_bucket_id": torch.tensor([self.motion_bucket_id]),
            "fps_id": torch.tensor([self.fps - 1]), "num_video_frames": t, "image_only_indicator": torch.zeros(t),
            "sample_id": f"{idx}:{clip.rel.as_posix()}@{indexes[0]}",
        }
        if self.load_original_frames:
            with reading(clip.video):
                frames = torch.from_numpy(read_frames_at(clip.video, video_idx))
            pixels = rearrange(frames, "t h w c -> c t h w").float() / 255.0 * 2 - 1
            flip = self.augment and bool(rng.rand() < 0.5)
            pixels = scale_and_crop(pixels, self.resize_size, flip=flip)
            sample["original_frames"] = pixels
            sample["cond_frames_without_noise"] = pixels[:, :1] if self.mode == "keyframe" else pixels[:, [0, -1]]
        if self.load_raw_audio:
            sample["raw_audio"] = self._raw_audio(clip, indexes[0])
        if self.use_emotions:
            with reading(clip.emotions_path()):
                emotions = torch.load(clip.emotions_path(), map_location="cpu", weights_only=True)
                sel = torch.as_tensor(video_idx)
                sample.update(valence=emotions["valence"][sel], arousal=emotions["arousal"][sel],
                              emo_labels=emotions["labels"][sel])
        return sample

    def _masks(self, clip: ClipRecord, video_idx: Sequence[int], latent_hw: tuple[int, int]) -> torch.Tensor:
        """(1, T, h, w) masks from the landmarks of the window's frames."""
        path = clip.landmarks_path()
        with reading(path):
            landmarks = np.asarray(np.load(path, mmap_mode="r")[np.asarray(video_idx)], dtype=np.float64)
        size = self._frame_size(clip)
        if self.mask_geometry == "crop" and self.resize_size is not None:
            landmarks = crop_landmarks(landmarks, size[0], size[1], self.resize_size)
            size = (self.resize_size, self.resize_size)
        kwargs = {k: self.mask_params[k] for k in _MASK_KWARGS[self.what_mask]}
        masks = build_masks(landmarks, size=size, kind=self.what_mask, latent_size=latent_hw, **kwargs)
        return rearrange(masks, "t 1 h w -> 1 t h w").float()

    def _raw_audio(self, clip: ClipRecord, first: int) -> torch.Tensor:
        """(T·spf,) mono 16 kHz audio from frame ``first`` for T/fps seconds (zero-padded)."""
        from keysync.media import read_audio

        path, seconds = clip.audio_path(), self.num_frames / self.fps
        with reading(path):
            wave = read_audio(path, sample_rate=self.audio_rate, offset=first / self.fps, duration=seconds)
        return trim_pad_audio(torch.from_numpy(wave)[None], self.audio_rate, max_len_sec=seconds)[0]
