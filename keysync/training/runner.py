"""Build and run a training job from a composed ``configs/train.yaml`` (SPEC §6.1).

``run_training(cfg)``: seed → engine (``model.config`` + ``model.overrides``) → Lightning
module (freezing, init checkpoint, optimizer, schedule, EMA) → data module → Trainer
(strategy, precision, checkpoints, sample logger, logger) → ``fit``, resuming when asked.

Strategies (``trainer.strategy``): ``default`` = ``deepspeed_stage_1`` on GPU (the reference),
plain single-process on CPU (``ddp`` when several CPU devices are asked for); or explicitly
``ddp``, ``ddp_spawn``, ``deepspeed_stage_1``, ``deepspeed_stage_2``, ``auto``.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig, OmegaConf

from keysync.data.datamodule import LatentVideoDataModule
from keysync.data.paths import list_videos
from keysync.models.engine import build_engine
from keysync.training.callbacks import FinalStateCheckpoint, SampleIdRecorder, SampleVideoLogger
from keysync.utils.config import isolated_global_hydra
from keysync.training.module import KeySyncTrainingModule

log = logging.getLogger(__name__)

#: trainer-config keys handled here rather than passed to ``pl.Trainer``.
_CUSTOM_TRAINER_KEYS = ("strategy", "find_unused_parameters", "process_group_backend")


@dataclass
class TrainingRun:
    trainer: pl.Trainer
    module: KeySyncTrainingModule
    datamodule: LatentVideoDataModule
    run_dir: Path
    resumed_from: Path | None


def _gpu_requested(accelerator: str) -> bool:
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def _num_devices(devices: Any) -> int:
    if isinstance(devices, int):
        return devices if devices > 0 else max(torch.cuda.device_count(), 1)
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if isinstance(devices, str) and devices.isdigit():
        return int(devices)
    return 1


def resolve_strategy(tcfg: DictConfig | dict) -> Any:
    """The Lightning strategy object/name for a trainer config (see the module docstring)."""
    name = str(tcfg.get("strategy", "default"))
    accelerator = str(tcfg.get("accelerator", "auto"))
    if name == "default":
        if _gpu_requested(accelerator):
            name = "deepspeed_stage_1"
        else:
            name = "ddp" if _num_devices(tcfg.get("devices", 1)) * int(tcfg.get("num_nodes", 1)) > 1 else "auto"
    if name.startswith("deepspeed"):
        if importlib.util.find_spec("deepspeed") is None:
            raise RuntimeError(f"trainer.strategy={name} needs the deepspeed package (pip install deepspeed); "
                               "use trainer.strategy=ddp to train without it")
        return name
    if name in ("ddp", "ddp_spawn"):
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(start_method="spawn" if name == "ddp_spawn" else "popen",
                           find_unused_parameters=bool(tcfg.get("find_unused_parameters", False)),
                           process_group_backend=tcfg.get("process_group_backend"))
    return name


def needs_original_frames(engine) -> bool:
    """Whether the engine's loss decodes pixels (then the dataset must load video frames)."""
    loss = engine.loss_fn
    return bool(loss is not None and getattr(loss, "weight_pixel", 0) > 0 and getattr(loss, "what_pixel_losses", None))


def build_datamodule(cfg: DictConfig, engine) -> LatentVideoDataModule:
    data = OmegaConf.to_container(cfg.data, resolve=True)
    dataset = data.pop("dataset")
    data.pop("filelist", None)
    data.pop("root", None)
    if dataset.get("load_original_frames") is None:
        dataset["load_original_frames"] = needs_original_frames(engine)
    return LatentVideoDataModule(dataset=dataset, **data)


def build_module(cfg: DictConfig, engine) -> KeySyncTrainingModule:
    mcfg = OmegaConf.to_container(cfg.module, resolve=True)
    return KeySyncTrainingModule(engine, init_checkpoint=cfg.model.get("init_checkpoint"),
                                 remove_keys=list(cfg.model.get("remove_keys") or []), **mcfg)


def build_callbacks(cfg: DictConfig, run_dir: Path) -> list[pl.Callback]:
    from lightning.pytorch.callbacks import ModelCheckpoint

    ccfg = cfg.callbacks
    ckpt_dir = run_dir / "checkpoints"
    callbacks: list[pl.Callback] = [
        FinalStateCheckpoint(dirpath=ckpt_dir, filename="step{step:07d}", auto_insert_metric_name=False,
                             every_n_train_steps=ccfg.checkpoint.every_n_train_steps,
                             save_top_k=ccfg.checkpoint.save_top_k, save_last=ccfg.checkpoint.save_last),
    ]
    if ccfg.get("weights_checkpoint") and ccfg.weights_checkpoint.get("every_n_train_steps"):
        callbacks.append(ModelCheckpoint(dirpath=ckpt_dir / "trainstep_checkpoints", filename="step{step:07d}",
                                         auto_insert_metric_name=False, save_top_k=-1, save_weights_only=True,
                                         every_n_train_steps=ccfg.weights_checkpoint.every_n_train_steps))
    if ccfg.get("sample_logger") and ccfg.sample_logger.get("every_n_steps"):
        callbacks.append(SampleVideoLogger(**OmegaConf.to_container(ccfg.sample_logger, resolve=True)))
    if ccfg.get("record_sample_ids"):
        callbacks.append(SampleIdRecorder())
    return callbacks


def build_logger(cfg: DictConfig, run_dir: Path):
    kind = cfg.get("logger", "csv")
    if kind in (None, "none", False):
        return False
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=str(run_dir), name="logs")
    if kind == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(save_dir=str(run_dir), name="logs")
    if kind == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        return WandbLogger(project="keysync", name=cfg.name, save_dir=str(run_dir))
    raise ValueError(f"logger must be csv, tensorboard, wandb or none; got {kind!r}")


def build_trainer(cfg: DictConfig, run_dir: Path) -> pl.Trainer:
    tcfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    strategy = resolve_strategy(tcfg)
    kwargs = {k: v for k, v in tcfg.items() if k not in _CUSTOM_TRAINER_KEYS}
    return pl.Trainer(strategy=strategy, default_root_dir=str(run_dir), use_distributed_sampler=False,
                      callbacks=build_callbacks(cfg, run_dir), logger=build_logger(cfg, run_dir), **kwargs)


def resolve_resume(resume: str | None, run_dir: Path) -> Path | None:
    """``null`` → start fresh; ``auto`` → the run's last checkpoint if there is one; ``last`` →
    the run's last checkpoint (error if none); anything else → that checkpoint path."""
    if resume in (None, "", "none", False):
        return None
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume == "auto":
        return last if last.exists() else None
    path = last if resume == "last" else Path(resume)
    if not path.exists():
        raise FileNotFoundError(f"cannot resume: no checkpoint at {path}")
    return path


def run_training(cfg: DictConfig, fit: bool = True) -> TrainingRun:
    """Train as configured; returns the trainer, module, data module and run folder."""
    if cfg.data.get("filelist") in (None, "???"):
        raise ValueError("no training data: set data.filelist=<file list, folder or glob>")
    run_dir = Path(cfg.run_dir)
    resume = resolve_resume(cfg.get("resume"), run_dir)
    init = cfg.model.get("init_checkpoint")
    if init and not Path(init).exists():  # fail before building a 1.5B-parameter model
        raise FileNotFoundError(f"model.init_checkpoint not found: {init} (set model.init_checkpoint=null to "
                                "train from scratch)")
    list_videos(cfg.data.filelist)  # raises early on a missing file list / folder
    pl.seed_everything(int(cfg.seed), workers=True)
    with isolated_global_hydra():
        engine = build_engine(cfg.model.config, overrides=list(cfg.model.get("overrides") or []))
    module = build_module(cfg, engine)
    datamodule = build_datamodule(cfg, engine)
    trainer = build_trainer(cfg, run_dir)
    if trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    if resume is not None:
        log.info("resuming from %s", resume)
    if fit:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume) if resume else None)
    return TrainingRun(trainer, module, datamodule, run_dir, resume)
