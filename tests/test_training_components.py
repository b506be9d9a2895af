"""LR schedule, EMA, strategy resolution, SVD-style init and config composition."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from keysync.cli.train import compose_train_config
from keysync.models.checkpoints import FINETUNE_REMOVE_KEYS, read_state_dict
from keysync.models.engine import build_engine
from keysync.training.ema import ParameterEMA
from keysync.training.module import KeySyncTrainingModule
from keysync.training.runner import resolve_resume, resolve_strategy
from keysync.training.schedules import LambdaLinearScheduler

REPO = Path(__file__).resolve().parents[1]




def test_linear_warmup_then_constant():
    f = LambdaLinearScheduler(warm_up_steps=[1000], f_start=[1e-6], f_max=[1.0], f_min=[1.0], cycle_lengths=[1e13])
    assert f(0) == pytest.approx(1e-6)
    assert f(500) == pytest.approx(1e-6 + (1 - 1e-6) * 0.5)
    assert f(1000) == f(10**7) == 1.0
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, LambdaLinearScheduler(warm_up_steps=10))
    for _ in range(5):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-5 * (1e-6 + (1 - 1e-6) * 0.5))
    state = sched.state_dict()  # the schedule object is saved and restored with the scheduler
    assert state["lr_lambdas"][0]["warm_up_steps"] == [10.0] and state["last_epoch"] == 5


def test_ema_tracks_and_swaps():
    net = torch.nn.Linear(2, 2)
    ema = ParameterEMA(net, decay=0.5, use_num_updates=False)
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(2.0)
    ema.update(net)
    assert torch.allclose(ema.weight, start + 1.0)
    with ema.swapped_in(net):
        assert torch.allclose(net.weight, start + 1.0)
    assert torch.allclose(net.weight, start + 2.0)
    assert "weight" in ema.state_dict() and "num_updates" in ema.state_dict()


def test_strategy_resolution():
    assert resolve_strategy({"strategy": "default", "accelerator": "cpu", "devices": 1}) == "auto"
    ddp = resolve_strategy({"strategy": "default", "accelerator": "cpu", "devices": 2})
    assert type(ddp).__name__ == "DDPStrategy"
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="deepspeed"):
            resolve_strategy({"strategy": "default", "accelerator": "gpu", "devices": 1})
        with pytest.raises(RuntimeError, match="trainer.strategy=ddp"):
            resolve_strategy({"strategy": "deepspeed_stage_2", "accelerator": "gpu"})
    else:  # pragma: no cover - only where deepspeed is installed
        assert resolve_strategy({"strategy": "default", "accelerator": "gpu", "devices": 1}) == "deepspeed_stage_1"


def test_resume_resolution(tmp_path):
    assert resolve_resume(None, tmp_path) is None and resolve_resume("auto", tmp_path) is None
    with pytest.raises(FileNotFoundError):
        resolve_resume("last", tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert resolve_resume("auto", tmp_path) == tmp_path / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("kind", ["keyframe", "interpolation"])
def test_init_from_svd_style_checkpoint(tmp_path, kind):
    # an "SVD without embedders" file: every network/VAE weight, no conditioner embedders
    source = build_engine(f"tiny/keysync_{kind}")
    svd = {k: v for k, v in source.state_dict().items() if not k.startswith("conditioner.")}
    save_file(svd, str(tmp_path / "svd_no_emb.safetensors"))
    engine = build_engine(f"tiny/keysync_{kind}")
    removed = FINETUNE_REMOVE_KEYS[kind]
    fresh = {k: v.clone() for k, v in engine.state_dict().items()}
    KeySyncTrainingModule(engine, init_checkpoint=tmp_path / "svd_no_emb.safetensors", remove_keys=removed,
                          to_freeze=["time_"], to_unfreeze=["time_embed"])
    state = engine.state_dict()
    for key, value in svd.items():
        expected = fresh[key] if key in removed else value
        assert torch.equal(state[key], expected), key
    assert torch.equal(state["conditioner.embedders.2.linear.weight"], fresh["conditioner.embedders.2.linear.weight"])


@pytest.mark.parametrize("experiment,config,lr,mode,remove", [
    ("keysync_keyframe", "keysync_keyframe", 1e-5, "keyframe", 1),
    ("keysync_interpolation", "keysync_interpolation", 3e-5, "interpolation", 2),
    ("tiny_keyframe", "tiny/keysync_keyframe", 1e-3, "keyframe", 0),
    ("tiny_interpolation", "tiny/keysync_interpolation", 1e-3, "interpolation", 0),
])
def test_experiments_compose(experiment, config, lr, mode, remove):
    cfg = compose_train_config([f"experiment={experiment}", "data.filelist=x.txt", "trainer.devices=3"])
    assert cfg.model.config == config and cfg.module.learning_rate == lr and cfg.data.dataset.mode == mode
    assert len(cfg.model.remove_keys) == remove and cfg.trainer.devices == 3
    assert cfg.module.to_freeze == ["time_"] and cfg.module.to_unfreeze == ["time_embed"]
    assert cfg.module.optimizer.weight_decay == 0.01 and cfg.module.scheduler.f_start == [1e-6]
    assert cfg.data.dataset.skip_frames == (12 if mode == "keyframe" else 0)
    full = experiment.startswith("keysync")
    assert cfg.trainer.strategy == ("default" if full else "auto") and cfg.trainer.precision == 32
    assert cfg.module.scheduler.warm_up_steps == ([1000] if full else [10])


def test_export_weights_with_ema(tmp_path):
    from keysync.training.export import export_weights

    engine = build_engine("tiny/keysync_interpolation")
    module = KeySyncTrainingModule(engine, to_freeze=["time_"], to_unfreeze=["time_embed"], use_ema=True)
    with torch.no_grad():
        engine.model.learned_mask.add_(1.0)  # the EMA shadow still holds zeros
    torch.save({"state_dict": module.state_dict()}, tmp_path / "run.ckpt")
    assert any(k.startswith("model_ema.") for k in module.state_dict())
    plain = read_state_dict(export_weights(tmp_path / "run.ckpt", tmp_path / "plain.safetensors"))
    ema = read_state_dict(export_weights(tmp_path / "run.ckpt", tmp_path / "ema.safetensors", use_ema=True))
    assert set(plain) == set(ema) == set(engine.state_dict())
    assert plain["model.learned_mask"].eq(1).all() and ema["model.learned_mask"].eq(0).all()
    assert torch.equal(plain["model.diffusion_model.out.2.weight"], ema["model.diffusion_model.out.2.weight"])
    small = read_state_dict(export_weights(tmp_path / "run.ckpt", tmp_path / "small.safetensors", use_ema=True,
                                           dtype=torch.float16, exclude=("first_stage_model.",)))
    assert set(small) == {k for k in engine.state_dict() if not k.startswith("first_stage_model.")}
    assert all(v.dtype == torch.float16 for v in small.values() if v.is_floating_point())
    assert torch.equal(small["model.diffusion_model.out.2.weight"], ema["model.diffusion_model.out.2.weight"].half())


@pytest.mark.parametrize("script,lr,mode", [("train_keyframe.sh", 1e-5, "keyframe"),
                                            ("train_interpolation.sh", 3e-5, "interpolation")])
def test_train_scripts_pass_reference_arguments(script, lr, mode):
    env = {**os.environ, "PYTHON": sys.executable}
    out = subprocess.run(["bash", str(REPO / script), "list.txt", "3", "2", "4", "--print-config"], env=env,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    cfg = OmegaConf.create(out)
    assert cfg.data.filelist == "list.txt" and cfg.data.num_workers == 3 and cfg.data.batch_size == 2
    assert cfg.trainer.devices == 4 and cfg.trainer.strategy == "default" and cfg.trainer.precision == 32
    assert cfg.module.learning_rate == lr and cfg.data.dataset.mode == mode
    assert cfg.data.dataset.audio_emb_type == "hubert" and cfg.data.balance_datasets
    bad = subprocess.run(["bash", str(REPO / script), "list.txt", "x"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "must be integers" in bad.stderr


def test_cli_subcommand_and_errors(capsys):
    import argparse

    from keysync.cli import train

    parser = argparse.ArgumentParser(prog="keysync")
    train.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", "experiment=tiny_interpolation", "data.filelist=list.txt", "--print-config"])
    assert args.func is train.run and args.func(args) == 0
    assert OmegaConf.create(capsys.readouterr().out).model.config == "tiny/keysync_interpolation"
    with pytest.raises(ValueError, match="cannot compose"):
        compose_train_config(["experiment=no_such_experiment"])
    assert train.main(["experiment=tiny_keyframe"]) == 2  # no data.filelist: a clear error, no traceback
    assert "data.filelist" in capsys.readouterr().err
