"""``keysync train``: train a KeySync model from ``configs/train.yaml`` with Hydra overrides.

Examples::

    keysync train experiment=keysync_keyframe data.filelist=data/filelist_train.txt trainer.devices=4
    keysync train experiment=tiny_interpolation data.filelist=tests/clips trainer.max_steps=100
    keysync train experiment=keysync_keyframe data.filelist=list.txt resume=auto   # continue a killed run
    python -m keysync.cli.train experiment=tiny_keyframe data.filelist=... --print-config

Multi-process (DDP) runs re-execute this same command once per extra device, so it must be
runnable as is (``python -m keysync.cli.train`` or the ``keysync`` script).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from keysync.utils.config import configs_dir, isolated_global_hydra


def compose_train_config(overrides: Sequence[str] = (), config_dir: str | Path | None = None,
                         config_name: str = "train") -> DictConfig:
    """Compose ``<configs>/train.yaml`` (or ``config_name``) with Hydra override strings.

    Raises ValueError for an unknown experiment or a malformed override.
    """
    from hydra import compose, initialize_config_dir

    directory = Path(config_dir) if config_dir is not None else configs_dir()
    if not (directory / f"{config_name}.yaml").is_file():
        raise FileNotFoundError(f"no training config {config_name}.yaml in {directory}")
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with isolated_global_hydra(), initialize_config_dir(config_dir=str(directory.resolve()), version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as err:  # bad override / unknown experiment
        raise ValueError(f"cannot compose {config_name}.yaml with {list(overrides)}: {err}") from err


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="train a KeySync model (Hydra overrides, e.g. experiment=tiny_keyframe)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(parser)
    parser.set_defaults(func=run)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", help="Hydra overrides: experiment=..., data.filelist=..., trainer.devices=...")
    parser.add_argument("--config-dir", default=None, help="folder holding train.yaml (default: the repository's configs/)")
    parser.add_argument("--config-name", default="train", help="training config name (default: train)")
    parser.add_argument("--print-config", action="store_true", help="print the composed config and exit")


def run(args: argparse.Namespace) -> int:
    for name in ("lightning.pytorch", "lightning.fabric"):  # Lightning prints through its own handler
        logging.getLogger(name).propagate = False
    cfg = compose_train_config(args.overrides, args.config_dir, args.config_name)
    if args.print_config:
        print(OmegaConf.to_yaml(cfg, resolve=False))
        return 0
    from keysync.training.runner import run_training

    result = run_training(cfg)
    trainer = result.trainer
    if trainer.is_global_zero:
        print(f"training finished at step {trainer.global_step}; run folder {result.run_dir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keysync.cli.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    _arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"keysync train: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
