"""Lightning module that trains a :class:`~keysync.models.engine.DiffusionEngine` (SPEC §6.1).

The engine's parts are registered under their own names (``model``, ``conditioner``,
``first_stage_model``), so every checkpoint this module writes has the published state-dict
keys (``model.diffusion_model.*``, ``model.learned_mask``, ``conditioner.embedders.N.*``,
``first_stage_model.decoder.*``; plus ``model_ema.*`` with EMA) and loads directly with
:func:`keysync.models.checkpoints.load_checkpoint` into an inference engine.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from keysync.models.checkpoints import load_checkpoint
from keysync.models.engine import DiffusionEngine
from keysync.training.ema import ParameterEMA
from keysync.training.freezing import apply_freeze_rules, count_parameters
from keysync.training.schedules import LambdaLinearScheduler

log = logging.getLogger(__name__)

DEFAULT_OPTIMIZER = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}  # torch AdamW defaults


class KeySyncTrainingModule(pl.LightningModule):
    """Training step = ``engine(batch)`` (v-weighted latent loss + optional pixel loss).

    Args:
        engine: the engine to train (built from a *training* model config).
        learning_rate: AdamW learning rate (no scaling by batch size or devices).
        optimizer: AdamW options (betas, eps, weight_decay).
        scheduler: :class:`LambdaLinearScheduler` options, applied per step; None = constant.
        to_freeze, to_unfreeze: name rules on ``model`` (:func:`apply_freeze_rules`).
        init_checkpoint, remove_keys: weights to start from (e.g. SVD without its embedders),
            loaded non-strictly with ``remove_keys`` dropped (those keep their fresh init).
        use_ema, ema_decay: keep an EMA of the trainable weights (``model_ema``).
    """

    def __init__(self, engine: DiffusionEngine, learning_rate: float = 1e-5,
                 optimizer: Mapping[str, Any] | None = None, scheduler: Mapping[str, Any] | None = None,
                 to_freeze: Sequence[str] = (), to_unfreeze: Sequence[str] = (),
                 init_checkpoint: str | Path | None = None, remove_keys: Iterable[str] = (),
                 use_ema: bool = False, ema_decay: float = 0.9999) -> None:
        super().__init__()
        self.model = engine.model
        self.conditioner = engine.conditioner
        self.first_stage_model = engine.first_stage_model
        object.__setattr__(self, "_engine", engine)  # not a child: keeps the published key names
        self.learning_rate = learning_rate
        self.optimizer_options = {**DEFAULT_OPTIMIZER, **dict(optimizer or {})}
        self.scheduler_options = dict(scheduler) if scheduler is not None else None
        if init_checkpoint:
            report = load_checkpoint(engine, init_checkpoint, strict=False, remove_keys=remove_keys)
            log.info("initialised from %s", report.summary())
        self.frozen_names = apply_freeze_rules(self.model, to_freeze, to_unfreeze)
        log.info("trainable parameters: %s (network %s, conditioner %s); frozen by rules: %s tensors",
                 f"{self.num_trainable:,}", f"{count_parameters(self.model, True):,}",
                 f"{count_parameters(self.conditioner, True):,}", len(self.frozen_names))
        self.model_ema = ParameterEMA(self.model, ema_decay) if use_ema else None

    @property
    def engine(self) -> DiffusionEngine:
        return self._engine

    @property
    def num_trainable(self) -> int:
        return count_parameters(self.model, True) + count_parameters(self.conditioner, True)

    def train(self, mode: bool = True) -> "KeySyncTrainingModule":
        super().train(mode)
        self.first_stage_model.eval()  # the frozen VAE always runs in eval mode, as in the reference
        return self

    def forward(self, batch: Mapping[str, Any], **loss_kwargs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self._engine(batch, **loss_kwargs)

    # ------------------------------------------------------------------ optimisation
    def optimized_parameters(self) -> list[torch.nn.Parameter]:
        """Trainable network parameters + those of trainable embedders.

        The reference passes *all* network parameters; frozen ones never get a gradient and
        AdamW skips them, so listing only trainable ones is equivalent (and lighter for ZeRO).
        """
        params = [p for p in self.model.parameters() if p.requires_grad]
        for embedder in self.conditioner.embedders:
            if getattr(embedder, "is_trainable", False):
                params += [p for p in embedder.parameters() if p.requires_grad]
        return params

    def configure_optimizers(self):
        opt = self.optimizer_options
        optimizer = torch.optim.AdamW(self.optimized_parameters(), lr=self.learning_rate, betas=tuple(opt["betas"]),
                                      eps=opt["eps"], weight_decay=opt["weight_decay"])
        if self.scheduler_options is None:
            return optimizer
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, LambdaLinearScheduler(**self.scheduler_options))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step", "frequency": 1}}

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        loss, logs = self._engine(batch)
        batch_size = batch[self._engine.input_key].shape[0]
        self.log_dict({f"train/{k}": v.detach() for k, v in logs.items()}, on_step=True, batch_size=batch_size)
        self.log("loss", loss.detach(), prog_bar=True, on_step=True, logger=False, batch_size=batch_size)
        self.log("lr_abs", self.optimizers().param_groups[0]["lr"], on_step=True, batch_size=batch_size)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.model_ema is not None:
            self.model_ema.update(self.model)

    @contextmanager
    def ema_scope(self):
        """Run with the EMA weights if EMA is on (sampling, export)."""
        with self.model_ema.swapped_in(self.model) if self.model_ema is not None else nullcontext():
            yield
