"""One dubbing job of the demo (Gradio-free): checks, options, guidance, then
:func:`keysync.pipelines.dubbing.dub`.

Inputs are checked before any model runs: both files must be readable media (probed with
ffprobe), the speech no longer than the demo's limit, occlusion points inside the frame and a
SAM 2 occluder loaded when points are given. Occlusion points are clicks on a source frame; they
are mapped to what the pipeline segments (the downscaled video for a smaller output size, the
squashed R×R frames in ``reference_compat`` mode).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from keysync.web.errors import DemoInputError
from keysync.web.media_prep import downscale_video, scaled_size

log = logging.getLogger(__name__)

#: the reference pipeline's length cap (seconds), used in ``reference_compat`` mode.
REFERENCE_COMPUTE_UNTIL = 45


@dataclass
class DubSettings:
    """What the Dub tab asks for. Guidance: ``(audio, reference)`` ratios of each model's
    audio/reference guider (None: as configured); ``full_length`` False runs ``reference_compat``;
    ``output_height``: downscale the input first (None: keep its size; full mode only)."""

    seed: int = 23
    keyframe_guidance: tuple[float, float] | None = None
    interpolation_guidance: tuple[float, float] | None = None
    full_length: bool = True
    output_height: int | None = None
    occlusion_points: list[tuple[float, float]] = field(default_factory=list)
    occlusion_frame: int = 0


class Reporter:
    """Progress sink of a job: ``stage(text)`` when a stage starts, ``frames(done, total)`` while
    output frames are written. The default does nothing (the pipeline's own tqdm bars remain)."""

    def stage(self, text: str) -> None:
        pass

    def frames(self, done: int, total: int) -> None:
        pass


def guidance_scales(engine) -> tuple[float, float] | None:
    """``(audio_ratio, ref_ratio)`` of an engine's audio/reference guider, None if it has none."""
    guider = getattr(getattr(engine, "sampler", None), "guider", None)
    if guider is None or not hasattr(guider, "audio_ratio") or not hasattr(guider, "ref_ratio"):
        return None
    return float(guider.audio_ratio), float(guider.ref_ratio)


def set_guidance(engine, scales: tuple[float, float] | None) -> None:
    if scales is None or guidance_scales(engine) is None:
        return
    audio, ref = (float(s) for s in scales)
    if not (math.isfinite(audio) and math.isfinite(ref)) or audio < 0 or ref < 0:
        raise DemoInputError(f"guidance scales must be finite and ≥ 0, got audio {audio}, reference {ref}")
    engine.sampler.guider.set_scale([audio, ref])


def speech_seconds(audio: str | Path) -> float:
    """Length of the speech file in seconds (decoded when the container does not say)."""
    from keysync.media import probe_audio, read_audio

    info = probe_audio(audio)
    if info.duration is not None and info.duration > 0:
        return float(info.duration)
    return len(read_audio(audio, 16000, mono=True)) / 16000


def check_length(seconds: float, max_seconds: float) -> None:
    if seconds > max_seconds + 1e-6:
        raise DemoInputError(f"the speech is {seconds:.1f} s long; this demo dubs at most {max_seconds:g} s per job "
                             f"(start it with a larger --max_seconds, or use `keysync dub`)")


def output_path(folder: Path, kind: str, source: str | Path) -> Path:
    """``<folder>/<kind>_<date-time>_<source stem>.mp4``, not yet taken."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(source).stem)[:40] or "input"
    base = f"{kind}_{time.strftime('%Y%m%d-%H%M%S')}_{stem}"
    path, k = folder / f"{base}.mp4", 1
    while path.exists():
        k += 1
        path = folder / f"{base}-{k}.mp4"
    return path


def _points(settings: DubSettings, info, scale: tuple[float, float], resolution: int | None, occluder,
            no_sam2_message: str) -> list[tuple[float, float]] | None:
    """Clicked points (source pixels of frame ``occlusion_frame``) → the pipeline's coordinates."""
    if not settings.occlusion_points:
        return None
    if occluder is None:
        raise DemoInputError(no_sam2_message)
    if not 0 <= settings.occlusion_frame < info.num_frames:
        raise DemoInputError(f"occlusion frame {settings.occlusion_frame} is outside the video "
                             f"(frames 0..{info.num_frames - 1})")
    for x, y in settings.occlusion_points:
        if not (0 <= x < info.width and 0 <= y < info.height):
            raise DemoInputError(f"occlusion point ({x:g}, {y:g}) is outside the {info.width}×{info.height} frame")
    sx, sy = scale
    if resolution is not None:  # reference mode segments the squashed R×R frames
        sx, sy = resolution / info.width, resolution / info.height
    return [(float(x) * sx, float(y) * sy) for x, y in settings.occlusion_points]


def run_dub(runtime, video: str | Path, audio: str | Path, settings: DubSettings,
            reporter: Reporter | None = None):
    """Dub ``video`` with ``audio`` using ``runtime``'s models; the video is written under the
    runtime's output folder. Returns the :class:`~keysync.pipelines.dubbing.DubResult`."""
    from keysync.media import probe_video
    from keysync.pipelines.dubbing import dub

    reporter = reporter or Reporter()
    if not video:
        raise DemoInputError("give a video (with a face) to dub")
    if not audio:
        raise DemoInputError("give the new speech (an audio file)")
    reporter.stage("checking the inputs")
    info = probe_video(video)
    if info.num_frames <= 0:
        raise DemoInputError(f"{video}: the video has no frames")
    seconds = speech_seconds(audio)
    check_length(seconds, runtime.config.max_seconds)

    models, base = runtime.dubbing.models, runtime.dubbing.options
    compat = not settings.full_length
    size = None if compat else scaled_size(info.width, info.height, settings.output_height)
    scale = (1.0, 1.0) if size is None else (size[0] / info.width, size[1] / info.height)
    points = _points(settings, info, scale, base.resolution if compat else None, models.occluder,
                     runtime.no_sam2_message)
    set_guidance(models.keyframe, settings.keyframe_guidance)
    set_guidance(models.interpolation, settings.interpolation_guidance)
    options = replace(base, seed=int(settings.seed), reference_compat=compat,
                      compute_until=REFERENCE_COMPUTE_UNTIL if compat else None, occlusion_points=points,
                      occlusion_frame=int(settings.occlusion_frame), progress=True)
    if runtime.dubbing.kind == "demo" and size is None and not compat:
        from keysync.pipelines.demo_model import known_example_landmarks

        options = replace(options, landmarks=known_example_landmarks(video))  # the bundled synthetic face
    output = output_path(runtime.config.output_dir, "dub", video)
    source = Path(video)
    if size is not None:
        reporter.stage(f"resizing the video to {size[0]}×{size[1]}")
        source = downscale_video(video, size, output.with_name(f".{output.stem}.input.mp4"))
    fps = 25.0 if compat else info.fps
    total = max(1, math.ceil(min(seconds, REFERENCE_COMPUTE_UNTIL if compat else seconds) * fps))
    if compat:
        total = min(total, info.num_frames)

    def on_frame(index, *_):
        reporter.frames(min(index + 1, total), total)

    reporter.stage("audio features, face tracking, encoding")
    try:
        result = dub(models, source, audio, output, options, on_frame=on_frame)
    finally:
        if source != Path(video):
            source.unlink(missing_ok=True)
    log.info("%s: %d frames %dx%d at %.2f fps, %.2f s of audio; stages %s", result.output, result.frames,
             result.size[1], result.size[0], result.fps, result.audio_seconds,
             {k: round(v, 2) for k, v in result.timings.items()})
    return result


def result_markdown(result) -> str:
    """A short report of a finished job for the page."""
    stages = " · ".join(f"{k} {v:.1f} s" for k, v in result.timings.items() if v >= 0.05)
    return (f"**Written:** `{result.output}`  \n{result.frames} frames, {result.size[1]}×{result.size[0]} at "
            f"{result.fps:g} fps, {result.audio_seconds:.2f} s of speech  \n**Stages:** {stages}")
