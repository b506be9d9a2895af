"""``keysync demo``: a local web page for dubbing (KeySync) and animation (KeyFace).

    keysync demo                                   # http://127.0.0.1:7860
    keysync demo --port 8000 --max_seconds 30
    keysync demo --host 0.0.0.0                    # reachable from other machines (no auth!)
    keysync demo --sam2_checkpoint pretrained_models/checkpoints/sam2.1_hiera_large.pt

Models come from ``--weights_root`` (published weights, else tiny random-weight models that run
every stage but do not lip-sync); the page says which. Nothing is fetched from the network:
no analytics, no CDN assets, no share link unless ``--share on``. Needs the ``web`` extra.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from keysync.web.config import DEFAULT_MAX_SECONDS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="serve the web demo (Gradio)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", choices=("off", "on"), default="off",
                   help="a public gradio.live link (on: contacts Gradio's servers; default off)")
    p.add_argument("--weights_root", type=Path, default=Path("pretrained_models"))
    p.add_argument("--output_dir", type=Path, default=Path("outputs/web"), help="where every job's video is written")
    p.add_argument("--max_seconds", type=float, default=DEFAULT_MAX_SECONDS,
                   help=f"longest speech a job accepts, in seconds (default {DEFAULT_MAX_SECONDS:g})")
    p.add_argument("--sam2_checkpoint", type=Path, default=None,
                   help="SAM 2 checkpoint for occlusion handling (default: <weights_root>/checkpoints/"
                        "sam2.1_hiera_large.pt if present)")
    p.add_argument("--sam2_config", default=None, help="SAM 2 config (default: the large 2.1 one)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from keysync.web.app import serve
    from keysync.web.config import DemoConfig

    config = DemoConfig(host=args.host, port=args.port, share=args.share == "on", weights_root=args.weights_root,
                        device=args.device, output_dir=args.output_dir, max_seconds=args.max_seconds,
                        sam2_checkpoint=args.sam2_checkpoint, sam2_config=args.sam2_config)
    try:
        serve(config)
    except ImportError as err:  # the `web` extra is missing
        raise RuntimeError(str(err)) from err
    except OSError as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise RuntimeError(f"cannot serve on {args.host}:{args.port}: {err}") from err
    return 0
