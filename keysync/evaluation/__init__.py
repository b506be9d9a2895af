"""Evaluation suite: LipScore, LipLeak, SyncNet LSE-C/D, FID, FVD, CSIM, PSNR, SSIM, LPIPS.

Modules (one concept each; heavy ones are imported only when used):

* :mod:`.avsr_frontend`, :mod:`.avsr_conformer`, :mod:`.avsr_encoder` -- the auto_avsr visual
  speech recognition encoder (loads ``vsr_trlrs2lrs3vox2avsp_base_updated.pth``);
* :mod:`.mouth_crop`, :mod:`.mean_face` -- auto_avsr mouth-crop preprocessing from landmarks;
* :mod:`.lipscore` -- the LipScore metric (higher is better);
* :mod:`.image_metrics` -- PSNR, SSIM;  :mod:`.lpips` -- LPIPS;
* :mod:`.syncnet`, :mod:`.sync_audio`, :mod:`.sync_scores` -- SyncNet (syncnet_v2), MFCC
  features, offset search and LSE-C / LSE-D;
* :mod:`.lipleak` -- LipLeak and its landmark-based speaking decision;
* :mod:`.frechet`, :mod:`.inception`, :mod:`.i3d` -- FID and FVD;  :mod:`.arcface` -- CSIM;
* :mod:`.landmarks` -- landmark files / detector callables;  :mod:`.synthetic` -- generated
  test clips;
* :mod:`.registry`, :mod:`.builtin_metrics`, :mod:`.quality_metrics`, :mod:`.runner`,
  :mod:`.report` -- the metric registry and ``keysync evaluate`` (one table as CSV / JSON /
  Markdown, with a progress bar).

Every metric whose weight file is absent is reported as ``unavailable: needs <file>``.
"""

__all__ = ["LipScore", "load_vsr_encoder", "evaluate", "pair_items"]


def __getattr__(name):
    if name == "LipScore":
        from .lipscore import LipScore

        return LipScore
    if name == "load_vsr_encoder":
        from .avsr_encoder import load_vsr_encoder

        return load_vsr_encoder
    if name in ("evaluate", "pair_items"):
        from . import runner

        return getattr(runner, name)
    raise AttributeError(name)
