"""The metrics ``keysync evaluate`` knows, registered in :data:`keysync.evaluation.registry.REGISTRY`.

| name     | columns (direction)                                   | needs                                      |
|----------|-------------------------------------------------------|--------------------------------------------|
| lipscore | lipscore (higher)                                     | ``vsr_trlrs2lrs3vox2avsp_base_updated.pth``, landmarks, gt |
| psnr     | psnr dB (higher; identical frames = 100)              | gt                                         |
| ssim     | ssim (higher)                                         | gt                                         |
| lse      | lse_c (higher), lse_d (lower), lse_offset, lse_c0 (higher), lse_d0 (lower) | ``syncnet_v2.model``, landmarks, audio |
| lipleak  | lipleak (lower), lipleak_gt (information)             | landmarks of the generated (and real) video |
| fid      | fid (lower)                                           | ``pt_inception-2015-12-05-6726825d.pth``, gt |
| fvd      | fvd (lower)                                           | ``i3d_pretrained_400.pt``, gt              |
| csim     | csim (higher)                                         | ``arcface_r100.pth``, landmarks, gt        |
| lpips    | lpips (lower)                                         | ``lpips_alex_v0.1.pth`` + ``alexnet-owt-7be5be79.pth``, gt |

fid / fvd / csim / lpips are registered in :mod:`keysync.evaluation.quality_metrics`. Landmarks
come from ``<stem>.npy`` files or a detector (:mod:`keysync.evaluation.landmarks`); audio from
``--audio DIR`` or the generated video's own audio track.
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from .registry import EvalItem, EvalOptions, Metric, MetricSpec, WeightFile, register

AUTO_AVSR = WeightFile("vsr_trlrs2lrs3vox2avsp_base_updated.pth",
                       "auto_avsr VSR checkpoint, github.com/mpc001/auto_avsr")


class LipScoreMetric(Metric):
    name, columns, higher_is_better = "lipscore", ("lipscore",), {"lipscore": True}

    def __init__(self, options: EvalOptions):
        from .lipscore import LipScore

        self.options = options
        self.metric = LipScore(str(options.weight_path("lipscore", AUTO_AVSR)), device=options.device,
                               reference_quirks=options.reference_quirks, length_mismatch="truncate")

    def evaluate(self, item: EvalItem) -> Dict[str, float]:
        pred, gt = item.aligned_frames()
        n = len(pred)
        result = self.metric.score_pair(pred, gt, item.pred_landmarks()[:n], item.gt_landmarks()[:n])
        return {"lipscore": result.score}


class PSNRMetric(Metric):
    name, columns, higher_is_better = "psnr", ("psnr",), {"psnr": True}

    def __init__(self, options: EvalOptions):
        pass

    def evaluate(self, item: EvalItem) -> Dict[str, float]:
        from .image_metrics import psnr_frames

        return {"psnr": float(np.mean(psnr_frames(*item.aligned_frames())))}


class SSIMMetric(Metric):
    name, columns, higher_is_better = "ssim", ("ssim",), {"ssim": True}

    def __init__(self, options: EvalOptions):
        pass

    def evaluate(self, item: EvalItem) -> Dict[str, float]:
        from .image_metrics import ssim_frames

        return {"ssim": float(np.mean(ssim_frames(*item.aligned_frames())))}


SYNCNET = WeightFile("syncnet_v2.model", "SyncNet weights, github.com/joonson/syncnet_python download_model.sh")


class LSEMetric(Metric):
    name, columns, needs_gt = "lse", ("lse_c", "lse_d", "lse_offset", "lse_c0", "lse_d0"), False
    higher_is_better = {"lse_c": True, "lse_d": False, "lse_offset": None, "lse_c0": True, "lse_d0": False}

    def __init__(self, options: EvalOptions):
        from .sync_scores import SyncScorer
        from .syncnet import load_syncnet

        model = load_syncnet(options.weight_path("lse", SYNCNET), device=options.device)
        self.scorer = SyncScorer(model, vshift=options.syncnet_vshift, device=options.device)

    def evaluate(self, item: EvalItem) -> Dict[str, float]:
        frames = item.pred_frames()
        if item.fps is not None and abs(item.fps - 25.0) > 0.01:
            raise ValueError(f"SyncNet needs 25 fps video, {item.pred_path.name} has {item.fps:g} fps "
                             "(convert with keysync.media.convert_fps)")
        return self.scorer.score_frames(frames, item.pred_landmarks(), item.audio()).as_dict()


class LipLeakMetric(Metric):
    name, columns, needs_gt = "lipleak", ("lipleak", "lipleak_gt"), False
    higher_is_better = {"lipleak": False, "lipleak_gt": None}

    def __init__(self, options: EvalOptions):
        self.threshold = options.lipleak_threshold

    def evaluate(self, item: EvalItem) -> Dict[str, float]:
        from .lipleak import lipleak

        item.pred_frames()
        out = {"lipleak": lipleak(item.pred_landmarks(), self.threshold)}
        if item.gt_path is not None:
            item.gt_frames()
            out["lipleak_gt"] = lipleak(item.gt_landmarks(), self.threshold)
        return out


register(MetricSpec("lipscore", "cosine similarity of auto_avsr VSR features, pred vs gt (higher is better)",
                    LipScoreMetric.columns, LipScoreMetric, (AUTO_AVSR,)))
register(MetricSpec("psnr", "PSNR in dB, pred vs gt (higher is better; identical frames capped at 100)",
                    PSNRMetric.columns, PSNRMetric))
register(MetricSpec("ssim", "SSIM (Gaussian 11x11, sigma 1.5), pred vs gt (higher is better)",
                    SSIMMetric.columns, SSIMMetric))
register(MetricSpec("lse", "SyncNet LSE-C (higher better) / LSE-D (lower better) over +-vshift offsets, pred vs its audio",
                    LSEMetric.columns, LSEMetric, (SYNCNET,)))
register(MetricSpec("lipleak", "fraction of frames with a speaking mouth under silent audio (lower is better)",
                    LipLeakMetric.columns, LipLeakMetric))
