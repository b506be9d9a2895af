"""KeySync dubbing: a video and a speech track in, the video with lips matching the speech out.

Stages (each timed in :class:`DubResult.timings`): audio → features (HuBERT for keyframes, WavLM
for interpolation) · landmarks · crop + VAE encode · keyframes · interpolation · decode ·
paste-back · mux. See :mod:`keysync.pipelines.dubbing_inputs` for the two input modes. In full
mode the speech features are computed in a worker thread while the landmarks are found (the
encoders run on the accelerator, the landmark detector on the CPU), so "audio" and "landmarks"
overlap and the stage times may add up to more than the wall-clock time.

Memory does not grow with the clip: latents and masks are made per sampler call
(:class:`~keysync.pipelines.lazy_rows.LazyRows`), frames are generated, decoded, pasted and
encoded as the writer consumes them, and audio longer than ``audio_in_file_after`` seconds is kept,
with its features, in memory-mapped temporary files.

Full mode (default): the output has the source's size and frame rate and the audio's length
(the video ping-pong looped when the audio is longer, cut when shorter); every model frame is
generated (no dropped tail); only pixels inside the feathered lower-face mask change; frames with
no face nearby are left unchanged. ``reference_compat=True`` reproduces the original raw pipeline:
512×512 squashed frames, 25 fps output, the 14+13k cap and the dropped tail.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from keysync.audio.feature_file import encode_to_file, to_file
from keysync.face.paste import paste_back
from keysync.media import VideoFrames, probe_video, read_audio, read_video, write_video
from keysync.pipelines import timeline
from keysync.pipelines.dubbing_inputs import PreparedClip, prepare_full, prepare_reference
from keysync.pipelines.dubbing_models import DubbingModels
from keysync.pipelines.planning import keysync_max_frames, plan_keysync, plan_keysync_from_lengths
from keysync.pipelines.two_stage import ConditioningStreams, SamplingOptions, generate_frames
from keysync.utils.timing import StageTimer

log = logging.getLogger(__name__)
SAMPLE_RATE = 16000


@dataclass
class DubbingOptions:
    """Options of one job. ``compute_until``: seconds of audio to dub (None / "end": all);
    ``occlusion_points``: (x, y) source pixels on an occluding object in frame
    ``occlusion_frame`` (needs ``models.occluder``); or ``occlusion_masks``: uint8 (N, H, W) or
    (H, W) masks of the source frames (1 = occluder) from any segmentation the user has;
    ``landmarks``: known (N, 68, 2) source-pixel landmarks (array or ``.npy`` path) used instead
    of detecting them; ``audio_in_file_after``: audio longer than this (seconds) is kept, with its
    features, in memory-mapped temporary files (None: always in memory), so hour-long jobs do not
    hold 1.3 GB of audio streams."""

    compute_until: float | str | None = 45
    reference_compat: bool = False
    seed: int = 23
    resolution: int = 512
    mask_kind: str = "box"
    crop_scale: float = 2.2
    feather: float = 0.04
    paste_mode: str = "delta"
    max_gap: int = 12
    occlusion_points: list[tuple[float, float]] | None = None
    occlusion_frame: int = 0
    occlusion_masks: np.ndarray | None = None
    landmarks: np.ndarray | str | Path | None = None
    autocast_dtype: torch.dtype | None = None
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    encode_batch: int = 10
    encode_mode: str = "sample"  # VAE posterior "sample" (reference) or "mode" (what the demo model saw)
    audio_in_file_after: float | None = 300.0  # seconds; longer audio and its features live in temp files
    crf: int = 18
    progress: bool = True


@dataclass
class DubResult:
    output: Path
    frames: int
    fps: float
    size: tuple[int, int]
    audio_seconds: float
    model_frames: int
    timings: dict[str, float]
    faceless_frames: int = 0

    def seconds_per_frame(self) -> dict[str, float]:
        return {k: v / max(self.frames, 1) for k, v in self.timings.items()}


def _audio(path: Path, compute_until) -> np.ndarray:
    audio = read_audio(path, SAMPLE_RATE, mono=True)
    if compute_until not in (None, "end"):
        audio = audio[: int(round(float(compute_until) * SAMPLE_RATE))]
    if audio.size == 0:
        raise ValueError(f"{path}: no audio to dub (empty, or compute_until is 0)")
    return audio


def _given_masks(masks: np.ndarray, video: Path, size: int | None) -> np.ndarray:
    info = probe_video(video)
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = np.broadcast_to(masks, (info.num_frames,) + masks.shape)
    if masks.ndim != 3 or masks.shape[1:] != (info.height, info.width) or len(masks) < info.num_frames:
        raise ValueError(f"occlusion masks {masks.shape} do not cover {video} ({info.num_frames} frames of "
                         f"{info.height}x{info.width})")
    masks = (masks[: info.num_frames] > 0).astype(np.uint8)
    if size is not None:
        from keysync.face.occlusion import resize_masks_nearest

        masks = resize_masks_nearest(masks, (size, size))
    return masks


def _occluder_masks(models: DubbingModels, video: Path, opts: DubbingOptions, size: int | None = None):
    if opts.occlusion_masks is not None:
        return _given_masks(opts.occlusion_masks, video, size)
    if not opts.occlusion_points:
        return None
    if models.occluder is None:
        raise ValueError("occlusion points were given but no SAM 2 occluder was loaded (--sam2_checkpoint)")
    frames, _ = read_video(video)
    if size is not None:
        from keysync.data.precompute import frames_to_model_input

        x = frames_to_model_input(frames, size)
        frames = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    result = models.occluder.segment(frames, opts.occlusion_points, prompt_frame=opts.occlusion_frame,
                                     progress=opts.progress)
    return result.masks


def _features(models: DubbingModels, audio: np.ndarray, n: int, in_file: bool = False):
    if in_file:
        return (encode_to_file(models.keyframe_audio, audio, SAMPLE_RATE, n),
                encode_to_file(models.interpolation_audio, audio, SAMPLE_RATE, n))
    key = models.keyframe_audio(audio, SAMPLE_RATE, n)
    interp = models.interpolation_audio(audio, SAMPLE_RATE, n)
    return key.float(), interp.float()


def _landmark_backend(models: DubbingModels, opts: DubbingOptions):
    if opts.landmarks is None:
        return models.landmarks
    from keysync.face.backend_file import KnownLandmarks

    return KnownLandmarks(opts.landmarks)


def dub(models: DubbingModels, video: str | Path, audio: str | Path, output: str | Path,
        options: DubbingOptions | None = None, on_frame=None) -> DubResult:
    """Dub ``video`` with ``audio`` into ``output`` (mp4, written atomically).

    ``on_frame(index, out_frame, source_frame, changed_region)`` is called for every output frame
    before encoding (tests and previews).
    """
    opts = options or DubbingOptions()
    video, audio, output = Path(video), Path(audio), Path(output)
    timer = StageTimer()
    gen = torch.Generator().manual_seed(int(opts.seed))
    info = probe_video(video)
    with timer("audio"):
        samples = _audio(audio, opts.compute_until if not opts.reference_compat else None)
    if opts.reference_compat:
        if opts.landmarks is not None:
            raise ValueError("known landmarks (source pixels) cannot be used with reference_compat, which "
                             "detects landmarks on the squashed frames")
        return _dub_reference(models, video, samples, output, opts, timer, gen, info, on_frame)

    n_model = timeline.model_frames_for_audio(len(samples))
    in_file = opts.audio_in_file_after is not None and len(samples) > opts.audio_in_file_after * SAMPLE_RATE
    if in_file:
        samples = to_file(samples)
    audio_timer = StageTimer()

    def features():
        with audio_timer("audio"):
            return _features(models, samples, n_model, in_file)

    # the speech encoders (on the accelerator) run while the landmarks (CPU) are found
    with ThreadPoolExecutor(1, thread_name_prefix="keysync-audio") as pool:
        audio_job = pool.submit(features)
        with timer("occlusion"):
            occluder = _occluder_masks(models, video, opts)
        clip = prepare_full(video, n_model, _landmark_backend(models, opts), models.vae, opts.resolution,
                            opts.mask_kind, occluder, gen, opts.encode_batch, opts.max_gap, opts.crop_scale,
                            opts.progress, encode_mode=opts.encode_mode, timer=timer)
        key_audio, interp_audio = audio_job.result()
    timer.totals["audio"] += audio_timer.totals["audio"]
    streams = ConditioningStreams(clip.latents, clip.masks, key_audio, interp_audio, clip.latents[0])
    plan = plan_keysync(n_model, mode="full")
    sampling = _sampling(opts)
    faces = generate_frames(plan, streams, models.keyframe, models.interpolation, gen, sampling, timer)

    n_out = timeline.output_frames_for_audio(len(samples), info.fps)
    out_model = timeline.output_to_model(n_out, info.fps, n_model)
    out_source = timeline.output_to_source(n_out, info.num_frames)
    source = VideoFrames(video)

    def frames():
        pending: dict[int, np.ndarray] = {}
        for o in range(n_out):
            m = int(out_model[o])
            while m not in pending:
                index, face = next(faces)
                pending[index] = face.numpy()
                for k in [k for k in pending if k < m]:
                    pending.pop(k)
            with timer("paste"):
                s = int(out_source[o])
                frame = source[s]
                out, region = _paste(clip, m, pending[m], frame, opts, None if occluder is None else occluder[s])
            if on_frame is not None:
                on_frame(o, out, frame, region)
            yield out

    with timer("mux"):
        write_video(output, frames(), fps=info.fps_fraction, audio=samples, sample_rate=SAMPLE_RATE, crf=opts.crf)
    t = dict(timer.totals)
    return DubResult(output, n_out, info.fps, (info.height, info.width), len(samples) / SAMPLE_RATE, n_model, t,
                     faceless_frames=int((~clip.track.usable).sum()))


def _sampling(opts: DubbingOptions) -> SamplingOptions:
    s = opts.sampling
    return SamplingOptions(decode_batch=s.decode_batch, interpolation_chunk=s.interpolation_chunk,
                           paste_keyframes=True, reference_uint8=opts.reference_compat,
                           autocast_dtype=opts.autocast_dtype, progress=opts.progress,
                           segments_per_call=s.segments_per_call)


def _paste(clip: PreparedClip, m: int, face: np.ndarray, frame: np.ndarray, opts: DubbingOptions,
           occluder: np.ndarray | None = None):
    """Output frame from model frame ``m``'s face; returns it and the changed region (H, W) bool.
    ``occluder`` (H, W): the frame's occluder mask, kept from ``frame`` at full resolution (the
    crop-resolution mask alone would let the regenerated face bleed a crop pixel into it)."""
    s = int(clip.source_index[m])
    if not clip.track.usable[s]:
        return frame, np.zeros(frame.shape[:2], bool)
    mask = clip.crop_mask(m)
    out = paste_back(frame, face, clip.track.crops.boxes[s], mask, feather=opts.feather, mode=opts.paste_mode)
    if occluder is not None:
        keep = occluder > 0
        out[keep] = frame[keep]
    return out, (out != frame).any(-1)


def _dub_reference(models, video, samples, output, opts, timer, gen, info, on_frame) -> DubResult:
    """The original raw pipeline's behaviour (SPEC §1.2-1.10): see the module docstring."""
    audio_frames = int(np.ceil(len(samples) / timeline.SAMPLES_PER_FRAME))
    cap = keysync_max_frames(opts.compute_until, mode="reference", video_frames=info.num_frames)
    with timer("occlusion"):
        occluder = _occluder_masks(models, video, opts, size=opts.resolution)
    with timer("prepare"):
        clip, squashed = prepare_reference(video, models.landmarks, models.vae, cap, opts.resolution, opts.mask_kind,
                                           occluder, gen, opts.encode_batch, opts.progress)
    n_video = len(clip.latents)
    with timer("audio"):
        key_audio, interp_audio = _features(models, samples, audio_frames)
    plan = plan_keysync_from_lengths(n_video, audio_frames, mode="reference", compute_until=opts.compute_until,
                                     landmark_frames=n_video)
    n = plan.n_frames
    streams = ConditioningStreams(clip.latents[:n], clip.masks[:n], key_audio[:n], interp_audio[:n], clip.latents[0])
    faces = generate_frames(plan, streams, models.keyframe, models.interpolation, gen, _sampling(opts), timer)

    def frames():
        for index, face in faces:
            face = face.numpy()
            if on_frame is not None:
                on_frame(index, face, squashed[index], np.ones(face.shape[:2], bool))
            yield face

    audio_out = samples[: plan.n_out * timeline.SAMPLES_PER_FRAME]
    with timer("mux"):
        write_video(output, frames(), fps=25, audio=audio_out, sample_rate=SAMPLE_RATE, crf=opts.crf)
    t = dict(timer.totals)
    return DubResult(output, plan.n_out, 25.0, (opts.resolution, opts.resolution), len(audio_out) / SAMPLE_RATE,
                     n, t)
