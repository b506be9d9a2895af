"""Dubbing from precomputed artefacts (the reference's ``inference.sh`` / ``dubbing_pipeline.py``).

Inputs come from a dataset root in the :class:`~keysync.data.paths.ArtefactLayout` written by
``keysync precompute``: the video's scaled VAE latents of its frames squashed to 512² and its
landmarks (source pixels), the audio's HuBERT and WavLM features and its 16 kHz wav. As in the
reference the frames are the squashed 512² crops and the output is R×R at 25 fps; by default the
plan covers the whole audio (the video latents ping-pong looped when the audio is longer),
``reference_compat=True`` reproduces the reference's cap and dropped tail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from keysync.data.paths import ArtefactLayout
from keysync.face.masks import build_masks, downsample_masks, scale_landmarks
from keysync.media import probe_video, read_audio, write_video
from keysync.pipelines import timeline
from keysync.pipelines.dubbing import DubbingOptions, DubResult, _sampling
from keysync.utils.timing import StageTimer
from keysync.pipelines.planning import keysync_max_frames, plan_keysync, plan_keysync_from_lengths
from keysync.pipelines.two_stage import ConditioningStreams, generate_frames


def _load(path: Path, key: str, what: str) -> torch.Tensor:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path} (make it with `keysync precompute`)")
    tensors = load_file(str(path))
    if key not in tensors:
        raise ValueError(f"{path}: no '{key}' tensor (has {sorted(tensors)})")
    t = tensors[key].float()
    return t.unsqueeze(1) if key == "audio" and t.dim() == 2 else t


def audio_relative(layout: ArtefactLayout, audio: Path) -> Path:
    """``<rel>`` of an audio file under the layout's audio folder (or a video under the video folder)."""
    audio = Path(audio).resolve()
    for folder in (layout.audio_folder, layout.video_folder):
        base = (layout.root / folder).resolve()
        try:
            return audio.relative_to(base).with_suffix("")
        except ValueError:
            continue
    raise ValueError(f"{audio} is under neither {layout.root / layout.audio_folder} nor {layout.root / layout.video_folder}")


def dub_precomputed(models, video: str | Path, audio: str | Path, output: str | Path, layout: ArtefactLayout,
                    options: DubbingOptions | None = None) -> DubResult:
    """Dub ``video`` (under ``layout``'s video folder) with ``audio``'s precomputed features.

    ``models`` needs only ``keyframe`` and ``interpolation`` engines (no encoders are run).
    """
    opts = options or DubbingOptions()
    timer = StageTimer()
    rel_v, rel_a = layout.relative(video), audio_relative(layout, Path(audio))
    latents = _load(layout.latents(rel_v, opts.resolution), "latents", "video latents")
    hubert = _load(layout.audio_features(rel_a, "hubert"), "audio", "HuBERT features")
    wavlm = _load(layout.audio_features(rel_a, "wavlm"), "audio", "WavLM features")
    lm_path = layout.landmarks(rel_v)
    if not lm_path.is_file():
        raise FileNotFoundError(f"landmarks not found: {lm_path} (make them with `keysync precompute landmarks`)")
    landmarks = np.load(lm_path, allow_pickle=False)[..., :2]
    info = probe_video(video, count_frames=False)
    raw = read_audio(layout.audio(rel_a), 16000)
    r = 8 * latents.shape[-1]
    points = scale_landmarks(landmarks, (info.height, info.width), (r, r), to_int=True)
    masks_all = downsample_masks(build_masks(points, (r, r), opts.mask_kind), tuple(latents.shape[-2:]))
    n_audio = min(len(hubert), len(wavlm), timeline.model_frames_for_audio(len(raw)))
    if opts.reference_compat:
        plan = plan_keysync_from_lengths(len(latents), len(hubert), mode="reference", interp_audio_frames=len(wavlm),
                                         latent_frames=len(latents), landmark_frames=len(landmarks),
                                         raw_audio_frames=len(raw) // timeline.SAMPLES_PER_FRAME,
                                         compute_until=opts.compute_until)
        source = np.arange(plan.n_frames)
        masks = masks_all[np.minimum(source, len(masks_all) - 1)]
    else:
        cap = keysync_max_frames(opts.compute_until, mode="full")
        n = n_audio if cap is None else min(n_audio, cap)
        plan = plan_keysync(n, mode="full")
        source = timeline.model_to_source(n, min(len(latents), len(landmarks)), 25.0)
        masks = masks_all[source]
    n = plan.n_frames
    streams = ConditioningStreams(latents[source], masks, hubert[:n], wavlm[:n], latents[0])
    gen = torch.Generator().manual_seed(int(opts.seed))
    faces = generate_frames(plan, streams, models.keyframe, models.interpolation, gen, _sampling(opts), timer)
    audio_out = raw[: plan.n_out * timeline.SAMPLES_PER_FRAME]
    with timer("mux"):
        write_video(output, (face.numpy() for _, face in faces), fps=25, audio=audio_out, crf=opts.crf)
    return DubResult(Path(output), plan.n_out, 25.0, (r, r), len(audio_out) / 16000, n, dict(timer.totals))
