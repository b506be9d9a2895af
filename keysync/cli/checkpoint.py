"""``keysync checkpoint``: list the expected keys of a model, check whether a file fits, export
training checkpoints as plain weights."""

from __future__ import annotations

import argparse
import json

from keysync.models.checkpoints import load_checkpoint, match_state_dict, read_state_dict
from keysync.models.engine import build_engine

#: short model names → model configs (inference variants; same keys as training).
MODEL_CONFIGS = {
    "keyframe": "keysync_keyframe_inference",
    "interpolation": "keysync_interpolation_inference",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("checkpoint", help="inspect checkpoints and expected state-dict keys")
    actions = parser.add_subparsers(dest="action", required=True)

    keys = actions.add_parser("keys", help="print the key → shape map of a full-size model (built on the meta device)")
    _model_args(keys)
    keys.add_argument("--json", action="store_true", help="print JSON {key: shape}")
    keys.set_defaults(func=run_keys)

    inspect = actions.add_parser("inspect", help="tell whether a checkpoint file fits a model")
    inspect.add_argument("path", help=".pt / .ckpt / .bin / .safetensors file or DeepSpeed folder")
    _model_args(inspect)
    inspect.add_argument("--json", action="store_true", help="print the report as JSON")
    inspect.set_defaults(func=run_inspect)

    export = actions.add_parser("export", help="training checkpoint → plain .safetensors weights (published keys)")
    export.add_argument("checkpoint", help="Lightning .ckpt, DeepSpeed folder or weights file")
    export.add_argument("output", help=".safetensors file to write")
    export.add_argument("--ema", action="store_true", help="write the EMA weights")
    export.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32",
                        help="store floating-point weights in this type (loading casts back to the model's)")
    export.add_argument("--exclude", action="append", default=[], metavar="PREFIX",
                        help="drop keys starting with PREFIX (repeatable), e.g. first_stage_model.")
    export.set_defaults(func=run_export)


def _model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="keyframe", help=f"one of {sorted(MODEL_CONFIGS)} or a config under configs/model")
    parser.add_argument("--override", action="append", default=[], help="Hydra override, e.g. network.diffusion_model.in_channels=9")


def _engine(args: argparse.Namespace):
    return build_engine(MODEL_CONFIGS.get(args.model, args.model), overrides=args.override, device="meta")


def run_keys(args: argparse.Namespace) -> int:
    shapes = {k: list(v.shape) for k, v in _engine(args).state_dict().items()}
    if args.json:
        print(json.dumps(shapes, indent=1))
    else:
        for key, shape in shapes.items():
            print(f"{key}\t{shape}")
        print(f"# {len(shapes)} keys, {sum(_numel(s) for s in shapes.values()):,} parameters")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    engine = _engine(args)
    _, report = match_state_dict(engine, read_state_dict(args.path), args.path)
    if args.json:
        print(json.dumps({"path": report.path, "fits": report.ok, "loaded": len(report.loaded),
                          "missing": report.missing, "unexpected": report.unexpected,
                          "unused_known": report.unused_known,
                          "shape_mismatch": {k: [list(a), list(b)] for k, (a, b) in report.shape_mismatch.items()}},
                         indent=1))
    else:
        print(report.summary())
        print(f"verdict: {'fits' if report.ok else 'does NOT fit'} the {args.model} model")
    return 0 if report.ok else 1


def run_export(args: argparse.Namespace) -> int:
    import torch

    from keysync.training.export import export_weights

    dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    path = export_weights(args.checkpoint, args.output, use_ema=args.ema, dtype=dtype, exclude=tuple(args.exclude))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


__all__ = ["add_parser", "load_checkpoint"]
