"""Occluders (hands, microphones) segmented with the SAM 2 video predictor, kept out of the mask.

The user marks the occluding object with one or more positive points ``(x, y)`` (pixels of the
original frame) on one frame; SAM 2 propagates the object forward *and backward* over the whole
clip (the reference only goes forward, leaving earlier frames unmasked) at any input resolution
(the reference only works for 512×512, SPEC §1.2 item 7). The lower-face mask is then
``M · (1 − M_occluder)`` (:func:`apply_occlusion`): occluded pixels are kept from the input.

Masks: occluder masks are uint8 ``(N, H, W)``, 1 = occluder, at the frames' resolution.
Requirements: ``sam2`` (``SAM2_BUILD_CUDA=0 pip install --no-deps --no-build-isolation sam2``
plus ``iopath``; hydra-core), a SAM 2 config (a file, or a name inside the sam2 package such as
``configs/sam2.1/sam2.1_hiera_l.yaml``) and a local checkpoint (``sam2.1_hiera_large.pt``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["OcclusionResult", "SAM2Occluder", "build_sam2_video_predictor", "apply_occlusion",
           "resize_masks_nearest"]

DEFAULT_CONFIG = "configs/sam2.1/sam2.1_hiera_l.yaml"
_IMG_MEAN = (0.485, 0.456, 0.406)
_IMG_STD = (0.229, 0.224, 0.225)
# the overrides sam2's own build_sam2_video_predictor applies (apply_postprocessing=True)
_VIDEO_OVERRIDES = (
    "model._target_=sam2.sam2_video_predictor.SAM2VideoPredictor",
    "model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
    "model.binarize_mask_from_pts_for_mem_enc=true",
    "model.fill_hole_area=8",
)
_PATCH_LOCK = threading.Lock()


def _config_path(config: Union[str, os.PathLike]) -> str:
    path = os.fspath(config)
    if os.path.isfile(path):
        return path
    import sam2

    packaged = os.path.join(os.path.dirname(sam2.__file__), path)
    if os.path.isfile(packaged):
        return packaged
    raise FileNotFoundError(f"SAM 2 config {path!r} is neither a file nor a config inside the sam2 package")


def build_sam2_video_predictor(config: Union[str, os.PathLike] = DEFAULT_CONFIG,
                               checkpoint: Optional[Union[str, os.PathLike]] = None, device: str = "cpu",
                               image_size: Optional[int] = None, overrides: Sequence[str] = (),
                               allow_random_weights: bool = False):
    """A ``sam2.sam2_video_predictor.SAM2VideoPredictor`` from a config and a local checkpoint.

    ``image_size`` overrides the model's input size (1024 in the published configs; smaller is
    faster and only sensible for tests). ``overrides`` are extra ``key=value`` config entries.
    Without ``checkpoint`` the weights are random, which is refused unless
    ``allow_random_weights`` (tests only).
    """
    try:
        import importlib

        from hydra.utils import instantiate
        from omegaconf import OmegaConf

        importlib.import_module("sam2.sam2_video_predictor")  # fails early with a clear ImportError
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("SAM 2 occlusion needs the sam2 package: SAM2_BUILD_CUDA=0 pip install "
                          "--no-deps --no-build-isolation sam2 iopath hydra-core") from e
    if checkpoint is None and not allow_random_weights:
        raise ValueError("a SAM 2 checkpoint is required (e.g. pretrained_models/checkpoints/"
                         "sam2.1_hiera_large.pt); random weights only with allow_random_weights=True")
    extra = list(_VIDEO_OVERRIDES) + ([f"model.image_size={int(image_size)}"] if image_size else [])
    extra += [o.lstrip("+") for o in overrides]
    cfg = OmegaConf.merge(OmegaConf.load(_config_path(config)), OmegaConf.from_dotlist(extra))
    OmegaConf.resolve(cfg)
    model = instantiate(cfg.model, _recursive_=True)
    if checkpoint is not None:
        ckpt = os.fspath(checkpoint)
        if not os.path.isfile(ckpt):
            raise FileNotFoundError(f"SAM 2 checkpoint not found: {ckpt}")
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        state = state.get("model", state)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise RuntimeError(f"SAM 2 checkpoint {ckpt} does not match {config}: missing {list(missing)[:5]}, "
                               f"unexpected {list(unexpected)[:5]}")
    return model.to(device).eval()


class _FrameSequence:
    """Frames ``(N, H, W, 3)`` uint8 as SAM 2 input tensors ``(3, S, S)``, made on demand so
    that long clips are never held at model resolution in memory."""

    def __init__(self, frames: np.ndarray, image_size: int):
        from PIL import Image

        self._image = Image
        self.frames = frames
        self.size = int(image_size)
        self.mean = torch.tensor(_IMG_MEAN).view(3, 1, 1)
        self.std = torch.tensor(_IMG_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> torch.Tensor:
        img = self._image.fromarray(np.ascontiguousarray(self.frames[i])).resize((self.size, self.size),
                                                                               self._image.BICUBIC)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (x - self.mean) / self.std


@contextlib.contextmanager
def _in_memory_frames(images, height: int, width: int):
    """Let ``SAM2VideoPredictor.init_state`` take frames from memory: it only accepts a video
    path, so its frame loader is swapped for the duration of the call."""
    import sam2.sam2_video_predictor as vp

    with _PATCH_LOCK:
        original = vp.load_video_frames
        vp.load_video_frames = lambda **_: (images, height, width)
        try:
            yield
        finally:
            vp.load_video_frames = original


@dataclass
class OcclusionResult:
    """``masks`` uint8 ``(N, H, W)`` (1 = occluder); ``covered`` ``(N,)`` bool: frames SAM 2 ran on."""

    masks: np.ndarray
    covered: np.ndarray


class SAM2Occluder:
    """Segments a user-marked occluder through a clip with the SAM 2 video predictor.

    ``predictor`` is a built ``SAM2VideoPredictor`` (see :func:`build_sam2_video_predictor`);
    ``SAM2Occluder.from_files(config, checkpoint, ...)`` builds one.
    """

    def __init__(self, predictor):
        self.predictor = predictor

    @classmethod
    def from_files(cls, config=DEFAULT_CONFIG, checkpoint=None, **kwargs) -> "SAM2Occluder":
        return cls(build_sam2_video_predictor(config, checkpoint, **kwargs))

    @torch.inference_mode()
    def segment(self, frames: np.ndarray, points: Sequence[Tuple[float, float]], prompt_frame: int = 0,
                labels: Optional[Sequence[int]] = None, offload_state_to_cpu: bool = False,
                progress: bool = True,
                postprocess: Optional[Callable[[int, np.ndarray], np.ndarray]] = None) -> OcclusionResult:
        """Occluder masks for every frame of ``frames`` ``(N, H, W, 3)`` uint8 RGB.

        ``points``: ``(K, 2)`` prompts ``(x, y)`` in pixels of the frames, on frame
        ``prompt_frame``; ``labels`` 1 = on the object (default for all), 0 = background.
        ``postprocess(i, mask)`` maps each frame's ``(H, W)`` uint8 mask before it is stored (e.g.
        into the face crop with :func:`keysync.face.crop.crop_masks`, so that long full-resolution
        clips need not be held in memory); all its results must have one shape.
        Runs SAM 2 on the frames as given: to segment inside face crops instead, pass the crops and
        the prompt points mapped with ``CropPlan.to_crop``.
        """
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (N, H, W, 3), got {frames.shape}")
        n, h, w = frames.shape[:3]
        if not 0 <= prompt_frame < n:
            raise ValueError(f"prompt_frame {prompt_frame} outside the clip of {n} frames")
        pts = np.asarray(points, dtype=np.float32).reshape(-1, 2)
        if len(pts) == 0:
            raise ValueError("at least one prompt point (x, y) is needed")
        lab = np.ones(len(pts), np.int32) if labels is None else np.asarray(labels, np.int32).reshape(-1)
        if len(lab) != len(pts):
            raise ValueError(f"{len(pts)} points but {len(lab)} labels")

        pred = self.predictor
        with _in_memory_frames(_FrameSequence(frames, pred.image_size), h, w):
            state = pred.init_state(video_path="<frames in memory>", offload_video_to_cpu=True,
                                    offload_state_to_cpu=offload_state_to_cpu)
        pred.add_new_points_or_box(inference_state=state, frame_idx=int(prompt_frame), obj_id=1,
                                   points=pts, labels=lab)
        masks: Optional[np.ndarray] = None
        covered = np.zeros(n, dtype=bool)
        for reverse in (False, True):
            gen = pred.propagate_in_video(state, start_frame_idx=int(prompt_frame), reverse=reverse)
            for idx, _obj_ids, logits in _maybe_quiet(gen, progress):
                m = (logits[0, 0] > 0).cpu().numpy().astype(np.uint8)
                if postprocess is not None:
                    m = np.asarray(postprocess(int(idx), m))
                if masks is None:
                    masks = np.zeros((n,) + m.shape, dtype=m.dtype)
                masks[idx] = m
                covered[idx] = True
        pred.reset_state(state)
        return OcclusionResult(masks=masks, covered=covered)


def _maybe_quiet(gen, progress: bool):
    """SAM 2 draws its own tqdm bars; silence them when ``progress`` is False."""
    if progress:
        yield from gen
        return
    import sam2.sam2_video_predictor as vp

    original = vp.tqdm
    vp.tqdm = lambda it, *a, **k: it
    try:
        yield from gen
    finally:
        vp.tqdm = original


def resize_masks_nearest(masks, size: Tuple[int, int]) -> np.ndarray:
    """Nearest-resize ``(N, H, W)`` masks to ``size`` = (h, w) (``F.interpolate`` "nearest");
    the dtype is kept."""
    arr = np.asarray(masks)
    m = torch.from_numpy(arr.astype(np.float32))
    squeeze = m.ndim == 2
    m = m[None, None] if squeeze else m[:, None]
    out = F.interpolate(m, size=tuple(size), mode="nearest")[:, 0].numpy().astype(arr.dtype)
    return out[0] if squeeze else out


def apply_occlusion(masks, occluder, resize: bool = False):
    """``M · (1 − M_occluder)``: occluded pixels are kept from the input, never regenerated.

    ``masks`` (1 = regenerate) and ``occluder`` (non-zero = occluder) are ``(N, H, W)`` (or
    ``(N, 1, h, w)`` latent masks) showing the same field of view. With ``resize=True`` the occluder
    is nearest-resized to the masks' size first (as the reference does for 64×64); occluders in
    full-frame pixels must first be cropped like the faces (:func:`keysync.face.crop.crop_masks`).
    Returns the masks' type: a float tensor for tensor masks, else a uint8 array.
    """
    is_tensor = torch.is_tensor(masks)
    m = masks.detach().cpu().numpy() if is_tensor else np.asarray(masks)
    o = occluder.detach().cpu().numpy() if torch.is_tensor(occluder) else np.asarray(occluder)
    o = o.reshape(o.shape[0], *o.shape[-2:]) if o.ndim == 4 else o
    if o.shape[-2:] != m.shape[-2:]:
        if not resize:
            raise ValueError(f"occluder size {o.shape[-2:]} != mask size {m.shape[-2:]} (pass resize=True)")
        o = resize_masks_nearest(o, m.shape[-2:])
    if m.ndim == 4:
        o = o[:, None]
    out = (m != 0) & (o == 0)
    if is_tensor:
        return torch.from_numpy(out).to(device=masks.device, dtype=masks.dtype if masks.is_floating_point()
                                        else torch.float32)
    return out.astype(np.uint8)
