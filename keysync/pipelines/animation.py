"""KeyFace animation: one face image and a speech track in, a talking-face video out (SPEC §9).

Stages (each timed in :class:`AnimationResult.timings`): audio → features (WavLM ⊕ BEATs for
keyframes, wav2vec2 ⊕ BEATs for interpolation, (F, 2, 1536) each) · emotions (per-frame valence
and arousal, :mod:`keysync.pipelines.emotion`) · identity (image → R×R → VAE latent, scaled) ·
keyframes (emotion- and audio-conditioned, audio/reference guidance) · interpolation
(autoguidance with the weak network, no keyframe pasting) · decode · mux.

Full mode (default): one video frame per 640 audio samples at 25 fps, ceil(samples / 640) frames,
so the video covers the whole audio (the last keyframe segment is generated past the end with
the last frame's conditions and cut); output R×R (512 for the published models). The image is
centre-cropped to a square first (``fit="squash"``: resized as is, as the reference does).
``reference_compat=True`` follows the original loop instead (KeyFace planning of
:mod:`keysync.pipelines.planning_keyface`: 45 s cap, tail chunk one frame late, the last chunk's
flip); where the original engine fails on a keyframe-pair/audio mismatch it raises.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from keysync.media import read_audio, read_video, write_video
from keysync.pipelines.emotion import emotion_streams
from keysync.pipelines.planning_keyface import plan_keyface, plan_keyface_from_lengths
from keysync.pipelines.timeline import MODEL_FPS, SAMPLES_PER_FRAME, model_frames_for_audio
from keysync.pipelines.two_stage import ConditioningStreams, SamplingOptions, generate_frames
from keysync.utils.timing import StageTimer

log = logging.getLogger(__name__)
SAMPLE_RATE = 16000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
FITS = ("crop", "squash")


@dataclass
class AnimationOptions:
    """Options of one job.

    ``compute_until``: seconds of audio to animate (None / "end": all; the reference cuts at 45);
    ``emotion``: named state(s) (``"happy"``, ``"happy,sad"``: interpolated over the clip) unless
    ``emotion_csv`` (time|frame, valence, arousal) is given; ``accentuate``: ×1.5, clamped;
    ``fit``: square the image by centre crop or squash; ``encode_mode``: VAE posterior
    ``"sample"`` (seeded; as the reference's precomputed latents) or ``"mode"``.
    """

    compute_until: float | str | None = None
    reference_compat: bool = False
    seed: int = 23
    resolution: int = 512
    fit: str = "crop"
    emotion: str | list[str] = "neutral"
    emotion_csv: str | Path | None = None
    accentuate: bool = False
    encode_mode: str = "sample"
    autocast_dtype: torch.dtype | None = None
    sampling: SamplingOptions = field(default_factory=lambda: SamplingOptions(paste_keyframes=False))
    crf: int = 18
    progress: bool = True


@dataclass
class AnimationResult:
    output: Path
    frames: int
    fps: float
    size: tuple[int, int]
    audio_seconds: float
    timings: dict[str, float]
    valence: torch.Tensor
    arousal: torch.Tensor

    def seconds_per_frame(self) -> dict[str, float]:
        return {k: v / max(self.frames, 1) for k, v in self.timings.items()}


def read_identity(path: str | Path) -> np.ndarray:
    """The identity picture: an image file, or the first frame of a video → uint8 (H, W, 3) RGB."""
    import cv2

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"identity image not found: {path}")
    if not path.is_file():
        raise ValueError(f"{path}: not a file")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None or image.size == 0:
            raise ValueError(f"{path}: not a readable image (corrupt or unsupported format)")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    frames, _ = read_video(path, num_frames=1)
    if len(frames) == 0:
        raise ValueError(f"{path}: the video has no frames")
    return frames[0]


def square_image(image: np.ndarray, fit: str = "crop") -> np.ndarray:
    """(H, W, 3) → a square: the centred H×H / W×W window (``"crop"``) or the image as is (``"squash"``,
    left to the resize)."""
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    if fit == "squash":
        return image
    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return image[top:top + s, left:left + s]


@torch.no_grad()
def identity_latent(vae, image: np.ndarray, resolution: int, fit: str = "crop", mode: str = "sample",
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """Image (H, W, 3) uint8 → (scaled latent (4, R/f, R/f), the R×R uint8 picture the model sees)."""
    from keysync.data.precompute import encode_video_latents, frames_to_model_input

    square = square_image(image, fit)
    latent = encode_video_latents([square[None]], vae, resolution, chunk_size=1, mode=mode, generator=generator)[0]
    pixels = ((frames_to_model_input(square[None], resolution)[0] + 1) * 127.5).round().clamp(0, 255)
    return latent, pixels.to(torch.uint8).permute(1, 2, 0).numpy()


def _audio(path: Path, compute_until) -> np.ndarray:
    audio = read_audio(path, SAMPLE_RATE, mono=True)
    if compute_until not in (None, "end"):
        audio = audio[: int(round(float(compute_until) * SAMPLE_RATE))]
    if audio.size == 0:
        raise ValueError(f"{path}: no audio to animate (empty, or compute_until is 0)")
    return audio


def animate(models, image: str | Path, audio: str | Path, output: str | Path,
            options: AnimationOptions | None = None, on_frame=None) -> AnimationResult:
    """Animate ``image`` with ``audio`` into ``output`` (mp4 at 25 fps with the audio, written atomically).

    ``models``: :class:`~keysync.pipelines.animation_models.AnimationModels`. ``on_frame(index,
    frame)`` is called for every output frame before encoding (tests and previews).
    """
    opts = options or AnimationOptions()
    image, audio, output = Path(image), Path(audio), Path(output)
    timer = StageTimer()
    gen = torch.Generator().manual_seed(int(opts.seed))
    picture = read_identity(image)  # fails early on a missing / corrupt image
    with timer("audio"):
        samples = _audio(audio, opts.compute_until if not opts.reference_compat else None)
        n = model_frames_for_audio(len(samples))
        key_audio, interp_audio = models.audio_features(samples, SAMPLE_RATE, n)
    if opts.reference_compat:
        until = 45 if opts.compute_until is None else opts.compute_until
        plan = plan_keyface_from_lengths(len(key_audio), mode="reference", interp_audio_frames=len(interp_audio),
                                         raw_audio_samples=len(samples), compute_until=until)
    else:
        plan = plan_keyface(n, mode="full", saved_audio_samples=len(samples))
    n_cond = plan.n_frames  # planning length: n in full mode, ≤ 1125 frames in reference mode
    with timer("emotions"):
        valence, arousal = emotion_streams(n_cond, opts.emotion, opts.emotion_csv, opts.accentuate)
    with timer("encode"):
        reference, _ = identity_latent(models.vae, picture, opts.resolution, opts.fit, opts.encode_mode, gen)
    streams = ConditioningStreams(None, None, key_audio[:n_cond], interp_audio[:n_cond], reference,
                                  keyframe_extra={"valence": valence, "arousal": arousal})
    sampling = SamplingOptions(decode_batch=opts.sampling.decode_batch,
                               interpolation_chunk=opts.sampling.interpolation_chunk, paste_keyframes=False,
                               reference_uint8=opts.reference_compat, autocast_dtype=opts.autocast_dtype,
                               progress=opts.progress, segments_per_call=opts.sampling.segments_per_call)
    faces = generate_frames(plan, streams, models.keyframe, models.interpolation, gen, sampling, timer)
    size: list[tuple[int, int]] = []

    def frames():
        for index, face in faces:
            face = face.numpy()
            size[:] = [face.shape[:2]]
            if on_frame is not None:
                on_frame(index, face)
            yield face

    saved = plan.saved_audio_samples if plan.saved_audio_samples is not None else len(samples)
    audio_out = samples[:saved]
    with timer("mux"):
        write_video(output, frames(), fps=MODEL_FPS, audio=audio_out, sample_rate=SAMPLE_RATE, crf=opts.crf)
    t = dict(timer.totals)
    log.info("%s: %d frames, %.2f s of audio", output, plan.n_out, len(audio_out) / SAMPLE_RATE)
    return AnimationResult(output, plan.n_out, float(MODEL_FPS), size[0] if size else (0, 0),
                           len(audio_out) / SAMPLE_RATE, t, valence[:plan.n_out], arousal[:plan.n_out])


__all__ = ["AnimationOptions", "AnimationResult", "animate", "identity_latent", "read_identity", "square_image",
           "SAMPLES_PER_FRAME"]
