"""``keysync precompute latents|audio|landmarks|emotions``: write the artefacts datasets and pipelines read.

    keysync precompute latents   data/video_crop --vae pretrained_models/svd_vae
    keysync precompute audio     data/video_crop --model wavlm --weights pretrained_models/checkpoints/WavLM-Base+.pt
    keysync precompute audio     data/video_crop --model beats     # KeyFace: also wavlm and wav2vec2
    keysync precompute landmarks data/video_crop --backend mediapipe
    keysync precompute emotions  data/video_crop --detector mypackage.emotion:detector   # KeyFace

INPUT is a folder, a glob or a ``.txt`` file list of videos under ``<root>/video_crop``;
outputs go to the reference layout under ``--output-root`` (default: the same root).
Exit status 1 if any clip failed (the others are still written).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from keysync.data.paths import ArtefactLayout, list_videos

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = {
    "hubert": "pretrained_models/hubert-base-ls960",
    "wav2vec2": "pretrained_models/wav2vec2-base-960h",
    "wavlm": "pretrained_models/checkpoints/WavLM-Base+.pt",
    "beats": "pretrained_models/checkpoints/BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt",
    "logmel": None,  # no weights (keysync.audio.logmel)
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("precompute", help="precompute latents, audio features or landmarks",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = parser.add_subparsers(dest="kind", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("input", help="folder, glob or .txt list of videos under <root>/video_crop")
        p.add_argument("--root", help="dataset root (default: found from the videos' video_crop folder)")
        p.add_argument("--output-root", help="write artefacts under this root instead (mirrored tree)")
        p.add_argument("--video-folder", default="video_crop")
        p.add_argument("--only-missing", action="store_true", help="skip clips whose output exists")
        p.add_argument("--device", default="cpu")
        p.set_defaults(func=run)

    lat = kinds.add_parser("latents", help="VAE latents × 0.18215 (<rel>_video_512_latent.safetensors)")
    common(lat)
    lat.add_argument("--vae", default="pretrained_models/svd_vae", help="diffusers SVD VAE folder or keysync VAE file")
    lat.add_argument("--resolution", type=int, default=512)
    lat.add_argument("--chunk-size", type=int, default=10)
    lat.add_argument("--mode", choices=("sample", "mode"), default="sample",
                     help="posterior sample (reference) or mode (deterministic)")
    lat.add_argument("--seed", type=int, default=None)

    aud = kinds.add_parser("audio", help="audio features (<rel>_<model>_emb.safetensors)")
    common(aud)
    aud.add_argument("--model", choices=sorted(DEFAULT_WEIGHTS), required=True)
    aud.add_argument("--weights", help="local model folder/file (default: pretrained_models/...)")

    lmk = kinds.add_parser("landmarks", help="68-point landmarks (<rel>.npy)")
    common(lmk)
    lmk.add_argument("--backend", default="mediapipe", choices=("mediapipe", "fan"))
    lmk.add_argument("--batch-size", type=int, default=16)
    lmk.add_argument("--smooth-sigma", type=float, default=1.0, help="temporal smoothing in frames (0 = off)")

    emo = kinds.add_parser("emotions", help="per-frame valence/arousal/labels (emotions/<rel>.pt) from your detector")
    common(emo)
    emo.add_argument("--detector", required=True,
                     help="package.module:name of a callable (frames, landmarks) -> {valence, arousal[, labels, "
                          "scores]}, or of a factory returning one (see keysync.data.emotion_files)")
    emo.add_argument("--batch-size", type=int, default=32)
    emo.add_argument("--no-landmarks", action="store_true", help="do not pass the precomputed landmarks")


def _job(args: argparse.Namespace, layout_in: ArtefactLayout):
    from keysync.data import precompute as pc

    if args.kind == "latents":
        from keysync.models.vae_io import load_vae

        return pc.latents_job(load_vae(args.vae, device=args.device), args.resolution, args.chunk_size, args.mode,
                              args.seed)
    if args.kind == "audio":
        from keysync.audio.encoders import load_audio_encoder

        weights = args.weights or DEFAULT_WEIGHTS[args.model]
        if weights is not None and not Path(weights).exists():
            raise FileNotFoundError(f"{args.model} weights not found at {weights}; download them and pass --weights")
        return pc.audio_job(load_audio_encoder(args.model, weights, device=args.device), args.model, layout_in)
    if args.kind == "emotions":
        from keysync.data.emotion_files import emotions_job, load_detector

        return emotions_job(load_detector(args.detector), args.batch_size, not args.no_landmarks, layout_in)
    from keysync.face.landmarks import create_backend

    return pc.landmarks_job(create_backend(args.backend), args.batch_size, args.smooth_sigma)


def run(args: argparse.Namespace) -> int:
    from keysync.data.precompute import run_precompute

    videos = list_videos(args.input)
    if not videos:
        raise FileNotFoundError(f"no videos found in {args.input}")
    if args.root:
        layout_in = ArtefactLayout(args.root, video_folder=args.video_folder)
    else:
        layout_in = ArtefactLayout.from_video(videos[0], video_folder=args.video_folder)
    layout_out = ArtefactLayout(args.output_root, video_folder=args.video_folder) if args.output_root else layout_in
    summary = run_precompute(videos, _job(args, layout_in), layout_in, layout_out, args.only_missing,
                             progress=not args.quiet)
    print(f"precompute {args.kind}: {summary.report()}")
    return 0 if summary.ok else 1
