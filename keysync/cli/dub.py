"""``keysync dub``: lip-sync one video to new audio, or a whole batch.

    keysync dub --video v.mp4 --audio a.wav -o out.mp4
    keysync dub --filelist data/videos --file_list_audio data/audios --output_folder out
    keysync dub --manifest pairs.csv --output_folder out            # columns video,audio[,output]
    torchrun --nproc_per_node 4 -m keysync.cli.main dub ...         # one batch over 4 GPUs

Weights are read from ``--weights_root`` (default ``pretrained_models/``) unless given one by one.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected x,y pixels, got {text!r}") from err
    return x, y


def _until(text: str):
    return text if text == "end" else float(text)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dub", help="lip-sync videos to new audio (KeySync)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    io = p.add_argument_group("inputs and outputs")
    io.add_argument("--video", type=Path, help="one video (with --audio and -o)")
    io.add_argument("--audio", type=Path, help="its new audio (any format ffmpeg reads)")
    io.add_argument("-o", "--output", type=Path, help="output .mp4 (one pair)")
    io.add_argument("--filelist", help="videos: a .txt list, a folder or a glob")
    io.add_argument("--file_list_audio", help="audio paired one-to-one with --filelist (default: each video's own)")
    io.add_argument("--manifest", type=Path, help="CSV with columns video,audio[,output]")
    io.add_argument("--output_folder", type=Path, default=Path("outputs"))
    io.add_argument("--overwrite", action="store_true", help="redo outputs that exist")
    io.add_argument("--precomputed_root", type=Path,
                    help="dataset root with `keysync precompute` artefacts (latents, landmarks, hubert/wavlm features): "
                         "no encoder runs; R×R output at 25 fps as the reference's inference.sh")
    w = p.add_argument_group("weights (local files; nothing is downloaded)")
    w.add_argument("--weights_root", type=Path, default=Path("pretrained_models"))
    w.add_argument("--keyframes_ckpt", type=Path)
    w.add_argument("--interpolation_ckpt", type=Path)
    w.add_argument("--vae", type=Path, help="SVD VAE folder or keysync VAE file (encoder)")
    w.add_argument("--hubert", type=Path, help="HuBERT folder (keyframe audio features)")
    w.add_argument("--wavlm", type=Path, help="WavLM-Base+.pt (interpolation audio features)")
    w.add_argument("--keyframe_config", default="keysync_keyframe_inference")
    w.add_argument("--interpolation_config", default="keysync_interpolation_inference")
    w.add_argument("--landmarks", choices=("mediapipe", "fan"), default="mediapipe")
    w.add_argument("--landmarks_file", type=Path, default=None,
                   help="known landmarks of --video instead of detecting them: .npy (N, 68, 2) x, y pixels")
    w.add_argument("--fan_weights", type=Path)
    w.add_argument("--detector_weights", type=Path)
    g = p.add_argument_group("generation")
    g.add_argument("--compute_until", type=_until, default=45.0, help="seconds to dub, or 'end' (default 45)")
    g.add_argument("--seed", type=int, default=23)
    g.add_argument("--reference_compat", action="store_true",
                   help="reproduce the original pipeline: 512x512 squashed, 25 fps, 14+13k cap, tail dropped")
    g.add_argument("--audio_scale", type=float, default=None, help="audio guidance scale (config default 5)")
    g.add_argument("--ref_scale", type=float, default=None, help="reference guidance scale (config default 2)")
    g.add_argument("--fast", action="store_true",
                   help="fast mode: DPM-Solver++(2M) with --fast_steps steps instead of 11 Euler steps "
                        "(about 11/N times less sampling work; not the reference's sampler). Cost measured on "
                        "the demo model: 5 steps halve the whole job's time, sync 0.911 vs 0.923, 39.7 dB PSNR "
                        "against reference mode (tests/test_fast_path.py)")
    g.add_argument("--fast_steps", type=int, default=5, help="fast-mode steps (8: sync 0.928, 42.0 dB)")
    g.add_argument("--resolution", type=int, default=512, help="face crop size fed to the models")
    g.add_argument("--feather", type=float, default=0.04, help="mask feather, fraction of the face box")
    g.add_argument("--crf", type=int, default=18)
    o = p.add_argument_group("occlusion (SAM 2)")
    o.add_argument("--fix_occlusion", action="store_true")
    o.add_argument("--position", type=_point, action="append", help="x,y on the occluder (repeatable)")
    o.add_argument("--start_frame", type=int, default=0, help="frame the position refers to")
    o.add_argument("--sam2_checkpoint", type=Path, default=None)
    o.add_argument("--sam2_config", default=None)
    o.add_argument("--occlusion_masks", type=Path, default=None,
                   help="instead of SAM 2: .npy uint8 (N, H, W) or (H, W) occluder masks of the source frames")
    d = p.add_argument_group("device")
    d.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    d.add_argument("--compile", choices=("on", "off"), default="off",
                   help="torch.compile the UNets and the VAE decoder (output within float tolerance of eager, "
                        "tests/test_compile.py; each new input shape compiles first: 1.5-2.5 min for the tiny "
                        "models on 2 CPU cores; off by default: not yet measured on a GPU)")
    d.add_argument("--dtype", choices=tuple(DTYPES), default="fp32",
                   help="autocast dtype of the diffusion models (bf16/fp16: faster on GPUs; on the demo model "
                        "bf16 output is within 2 grey levels of fp32 (mean 0.04), same sync; see "
                        "benchmarks/bench_fast.py)")
    m = p.add_argument_group("memory (bounded whatever the clip's length; these set per-call batch sizes, so the "
                             "peak; the frames do not change beyond float rounding)")
    m.add_argument("--decoding_t", type=int, default=8,
                   help="frames per VAE decode call (each decoded alone); the decode's activations scale with it")
    m.add_argument("--encode_batch", type=int, default=10, help="face crops per VAE encode call")
    m.add_argument("--interpolation_chunk", type=int, default=28,
                   help="frames per interpolation network call (a multiple of 14; 14 halves the interpolation "
                        "stage's activation memory; same frames up to float rounding; 28 is the reference)")
    m.add_argument("--segments_per_call", type=int, default=None,
                   help="interpolation segments (14 frames) sampled together (default: interpolation_chunk / 14); "
                        "the sampler state held at once scales with it, the frames do not change")
    p.set_defaults(func=run)


def _jobs(args):
    from keysync.pipelines.batch import DubJob, jobs_from_manifest, pair_jobs

    if args.video is not None:
        if args.audio is None or args.output is None:
            raise ValueError("--video needs --audio and -o/--output")
        return [DubJob(0, args.video, args.audio, args.output)], args.output.parent
    if args.manifest is not None:
        return jobs_from_manifest(args.manifest, args.output_folder), args.output_folder
    if args.filelist is not None:
        return pair_jobs(args.filelist, args.file_list_audio, args.output_folder), args.output_folder
    raise ValueError("give --video/--audio/-o, --filelist [--file_list_audio], or --manifest")


def _load_masks(path: Path | None):
    if path is None:
        return None
    import numpy as np

    if not path.is_file():
        raise FileNotFoundError(f"occlusion masks not found: {path}")
    return np.load(path, allow_pickle=False)


def _device(name: str, world: int) -> str:
    if name == "cuda" and world > 1:
        import os

        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return name


def _engines_only(args, weights, device):
    from keysync.pipelines.dubbing_models import DubbingModels, load_engine
    from keysync.pipelines.weights import DUBBING_FILES, resolve_weights

    files = {k: DUBBING_FILES[k] for k in ("keyframe", "interpolation")}
    paths = resolve_weights(files, args.weights_root, weights)
    return DubbingModels(load_engine(args.keyframe_config, paths["keyframe"], device),
                         load_engine(args.interpolation_config, paths["interpolation"], device),
                         None, None, None, None)


def run(args: argparse.Namespace) -> int:
    from keysync.pipelines.batch import distributed_rank, gather_reports, run_batch, write_summary
    from keysync.pipelines.dubbing import DubbingOptions, dub
    from keysync.pipelines.dubbing_models import load_dubbing_models
    from keysync.pipelines.two_stage import SamplingOptions

    if args.landmarks_file is not None and args.video is None:
        raise ValueError("--landmarks_file belongs to one video: use it with --video")
    jobs, folder = _jobs(args)
    if args.fix_occlusion and not args.position:
        raise ValueError("--fix_occlusion needs --position x,y on the occluding object")
    rank, world = distributed_rank()
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("nccl" if args.device.startswith("cuda") else "gloo")
    device = _device(args.device, world)
    weights = {"keyframe": args.keyframes_ckpt, "interpolation": args.interpolation_ckpt, "vae": args.vae,
               "hubert": args.hubert, "wavlm": args.wavlm}
    if args.precomputed_root is not None:
        models = _engines_only(args, weights, device)
    else:
        models = load_dubbing_models(weights, args.weights_root, args.keyframe_config, args.interpolation_config,
                                     device, args.landmarks, args.fan_weights, args.detector_weights,
                                     args.sam2_checkpoint if args.fix_occlusion else None, args.sam2_config)
    models.set_guidance(args.audio_scale, args.ref_scale)
    if args.fast:
        models.use_fast_sampler(args.fast_steps)
    if args.compile == "on":
        models.compile()
    quiet = logging.getLogger().level > logging.INFO
    options = DubbingOptions(
        compute_until=args.compute_until, reference_compat=args.reference_compat, seed=args.seed,
        resolution=args.resolution, feather=args.feather, crf=args.crf, progress=not quiet,
        occlusion_points=args.position if args.fix_occlusion else None, occlusion_frame=args.start_frame,
        occlusion_masks=_load_masks(args.occlusion_masks), landmarks=args.landmarks_file,
        autocast_dtype=DTYPES[args.dtype], encode_batch=args.encode_batch,
        sampling=SamplingOptions(decode_batch=args.decoding_t, interpolation_chunk=args.interpolation_chunk,
                                 segments_per_call=args.segments_per_call))

    def one(job):
        if args.precomputed_root is not None:
            from keysync.data.paths import ArtefactLayout
            from keysync.pipelines.dubbing_precomputed import dub_precomputed

            result = dub_precomputed(models, job.video, job.audio, job.output, ArtefactLayout(args.precomputed_root),
                                     options)
        else:
            result = dub(models, job.video, job.audio, job.output, options)
        log.info("%s: %d frames %dx%d at %.2f fps, %.2f s of audio; stages %s", job.output, result.frames,
                 result.size[1], result.size[0], result.fps, result.audio_seconds,
                 {k: round(v, 2) for k, v in result.timings.items()})

    try:
        report = run_batch(jobs, one, overwrite=args.overwrite or args.video is not None, rank=rank, world=world,
                           progress=not quiet)
    finally:
        models.close()
    report = gather_reports(report, world)
    if rank == 0:
        if len(jobs) > 1:
            print(f"summary: {write_summary(report, folder)}")
        print(report.summary())
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return 0 if report.ok else 1
