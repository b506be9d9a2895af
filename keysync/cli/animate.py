"""``keysync animate``: a talking-face video from one face image and speech (KeyFace).

    keysync animate --image face.png --audio speech.wav -o out.mp4
    keysync animate --image face.png --audio speech.wav -o out.mp4 --emotion happy
    keysync animate --image face.png --audio speech.wav -o out.mp4 --emotion happy,sad --accentuate
    keysync animate --image face.png --audio speech.wav -o out.mp4 --emotion_csv va.csv
    keysync animate --filelist faces/ --file_list_audio speech/ --output_folder out   # paired one-to-one
    keysync animate --manifest jobs.csv --output_folder out       # columns image,audio[,output]

``--emotion_csv``: columns ``time`` (seconds) or ``frame`` (25 fps), ``valence``, ``arousal`` in
[-1, 1], interpolated over the clip. Emotion states: see ``keysync.pipelines.emotion``.
Weights are read from ``--weights_root`` (default ``pretrained_models/``) unless given one by one.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
SUMMARY_NAME = "animate_summary.json"


def _until(text: str):
    return text if text == "end" else float(text)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("animate", help="animate a face image with speech (KeyFace)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    io = p.add_argument_group("inputs and outputs")
    io.add_argument("--image", type=Path, help="one face image (or a video: its first frame), with --audio and -o")
    io.add_argument("--audio", type=Path, help="its speech (any format ffmpeg reads)")
    io.add_argument("-o", "--output", type=Path, help="output .mp4 (one pair)")
    io.add_argument("--filelist", help="images: a .txt list, a folder or a glob")
    io.add_argument("--file_list_audio", help="audio paired one-to-one with --filelist")
    io.add_argument("--manifest", type=Path, help="CSV with columns image,audio[,output]")
    io.add_argument("--output_folder", type=Path, default=Path("outputs"))
    io.add_argument("--overwrite", action="store_true", help="redo outputs that exist")
    e = p.add_argument_group("emotion")
    e.add_argument("--emotion", "--emotion_states", dest="emotion", default="neutral",
                   help="state, or comma-separated states interpolated over the clip (default neutral)")
    e.add_argument("--emotion_csv", type=Path, help="per-frame valence/arousal CSV (overrides --emotion)")
    e.add_argument("--accentuate", action="store_true", help="scale valence/arousal by 1.5 (clamped to [-1, 1])")
    w = p.add_argument_group("weights (local files; nothing is downloaded)")
    w.add_argument("--weights_root", type=Path, default=Path("pretrained_models"))
    w.add_argument("--keyframes_ckpt", type=Path)
    w.add_argument("--interpolation_ckpt", type=Path)
    w.add_argument("--interpolation_bad_ckpt", type=Path, help="weak interpolation model (autoguidance)")
    w.add_argument("--vae", type=Path, help="SVD VAE folder or keysync VAE file (encoder)")
    w.add_argument("--wavlm", type=Path, help="WavLM-Base+.pt (keyframe audio features)")
    w.add_argument("--wav2vec2", type=Path, help="wav2vec2-base-960h folder (interpolation audio features)")
    w.add_argument("--beats", type=Path, help="BEATs checkpoint (audio-event features)")
    w.add_argument("--keyframe_config", default="keyface_keyframe_inference")
    w.add_argument("--interpolation_config", default="keyface_interpolation_inference")
    w.add_argument("--bad_config", default="keyface_interpolation_bad_inference")
    g = p.add_argument_group("generation")
    g.add_argument("--compute_until", type=_until, default=None,
                   help="seconds of audio to animate, or 'end' (default: all of it)")
    g.add_argument("--seed", type=int, default=23)
    g.add_argument("--reference_compat", action="store_true",
                   help="reproduce the original KeyFace loop (45 s cap, its tail and flip handling)")
    g.add_argument("--resolution", type=int, default=512, help="square size fed to the models and written")
    g.add_argument("--fit", choices=("crop", "squash"), default="crop", help="how a non-square image is squared")
    g.add_argument("--decoding_t", type=int, default=8, help="frames per VAE decode call (each decoded alone)")
    g.add_argument("--crf", type=int, default=18)
    d = p.add_argument_group("device")
    d.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    d.add_argument("--dtype", choices=tuple(DTYPES), default="fp32")
    p.set_defaults(func=run)


def _jobs(args):
    from keysync.data.paths import list_files
    from keysync.pipelines.animation import IMAGE_SUFFIXES
    from keysync.pipelines.batch import DubJob, jobs_from_manifest, pair_jobs

    if args.image is not None:
        if args.audio is None or args.output is None:
            raise ValueError("--image needs --audio and -o/--output")
        return [DubJob(0, args.image, args.audio, args.output)], args.output.parent
    if args.manifest is not None:
        return jobs_from_manifest(args.manifest, args.output_folder, source_column="image"), args.output_folder
    if args.filelist is not None:
        if args.file_list_audio is None:
            raise ValueError("--filelist needs --file_list_audio (one audio file per image)")
        images = list_files(args.filelist, IMAGE_SUFFIXES)
        return pair_jobs(images, args.file_list_audio, args.output_folder), args.output_folder
    raise ValueError("give --image/--audio/-o, --filelist with --file_list_audio, or --manifest")


def _device(name: str, world: int) -> str:
    if name == "cuda" and world > 1:
        import os

        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return name


def run(args: argparse.Namespace) -> int:
    from keysync.pipelines.animation import AnimationOptions, animate, read_identity
    from keysync.pipelines.animation_models import load_animation_models
    from keysync.pipelines.batch import distributed_rank, gather_reports, run_batch, write_summary
    from keysync.pipelines.emotion import parse_states
    from keysync.pipelines.two_stage import SamplingOptions

    jobs, folder = _jobs(args)
    parse_states(args.emotion)  # bad inputs of a single job fail before any model is loaded
    if args.image is not None:
        read_identity(args.image)
        if not args.audio.is_file():
            raise FileNotFoundError(f"audio not found: {args.audio}")
    if args.emotion_csv is not None and not args.emotion_csv.is_file():
        raise FileNotFoundError(f"emotion CSV not found: {args.emotion_csv}")
    rank, world = distributed_rank()
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("nccl" if args.device.startswith("cuda") else "gloo")
    weights = {"keyframe": args.keyframes_ckpt, "interpolation": args.interpolation_ckpt,
               "interpolation_bad": args.interpolation_bad_ckpt, "vae": args.vae, "wavlm": args.wavlm,
               "wav2vec2": args.wav2vec2, "beats": args.beats}
    models = load_animation_models(weights, args.weights_root, args.keyframe_config, args.interpolation_config,
                                   args.bad_config, _device(args.device, world))
    quiet = logging.getLogger().level > logging.INFO
    options = AnimationOptions(
        compute_until=args.compute_until, reference_compat=args.reference_compat, seed=args.seed,
        resolution=args.resolution, fit=args.fit, emotion=args.emotion, emotion_csv=args.emotion_csv,
        accentuate=args.accentuate, autocast_dtype=DTYPES[args.dtype], crf=args.crf, progress=not quiet,
        sampling=SamplingOptions(decode_batch=args.decoding_t, paste_keyframes=False))

    def one(job):
        result = animate(models, job.video, job.audio, job.output, options)
        log.info("%s: %d frames %dx%d at %.0f fps, %.2f s of audio; stages %s", job.output, result.frames,
                 result.size[1], result.size[0], result.fps, result.audio_seconds,
                 {k: round(v, 2) for k, v in result.timings.items()})

    single = args.image is not None
    if single:  # one pair: errors reach the caller (exit status 2 with the message)
        one(jobs[0])
        print(f"wrote {jobs[0].output}")
        return 0
    report = run_batch(jobs, one, overwrite=args.overwrite, rank=rank, world=world, progress=not quiet,
                       desc="animating")
    report = gather_reports(report, world)
    if rank == 0:
        print(f"summary: {write_summary(report, folder, SUMMARY_NAME)}")
        print(report.summary("animated"))
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return 0 if report.ok else 1
