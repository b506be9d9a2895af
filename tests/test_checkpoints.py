"""Checkpoint loading: every published format, safe unpickling, clear errors naming files and keys."""

from __future__ import annotations

import collections
import json

import pytest
import torch
from safetensors.torch import save_file

from conftest import load_reference, max_abs_err
from keysync.cli.main import main as cli_main
from keysync.models.checkpoints import (
    FINETUNE_REMOVE_KEYS,
    CheckpointError,
    load_checkpoint,
    read_state_dict,
)
from keysync.models.engine import build_engine

TINY_OVERRIDES = ["conditioner.emb_models.cond_frames.embedder.n_copies=1"]


def reference_engine_state() -> dict[str, torch.Tensor]:
    """The tiny keyframe engine's state dict as the reference stores it (1037 keys)."""
    state = dict(load_reference("unet_keyframe_tiny_weights.safetensors"))
    state.update({k: v for k, v in load_reference("embedders_tiny.safetensors").items()
                  if k.startswith("conditioner.embedders.2.")})
    state.update({k: v for k, v in load_reference("vae_tiny_weights.safetensors").items()
                  if k.startswith("first_stage_model.decoder.")})
    return state


@pytest.fixture(scope="module")
def ref_state():
    return reference_engine_state()


def _engine():
    return build_engine("tiny/keysync_keyframe", overrides=TINY_OVERRIDES)


def _write(fmt: str, state: dict, path):
    if fmt == "safetensors":
        save_file(state, str(path))
    elif fmt == "pt":  # DeepSpeed model states
        torch.save({"module": {f"_forward_module.{k}": v for k, v in state.items()}, "ds_version": "0.14.0",
                    "global_steps": 5000, "buffer_names": []}, path)
    elif fmt == "ckpt":  # Lightning
        torch.save({"state_dict": state, "epoch": 3, "global_step": 5000}, path)
    elif fmt == "bin":
        torch.save(collections.OrderedDict((f"_forward_module.{k}", v) for k, v in state.items()), path)


@pytest.mark.parametrize("fmt", ["safetensors", "pt", "ckpt", "bin"])
def test_every_format_loads_strictly_and_reproduces_reference(tmp_path, ref_state, fmt):
    path = tmp_path / f"model.{fmt}"
    _write(fmt, ref_state, path)
    engine = _engine()
    report = load_checkpoint(engine, path, strict=True)
    assert report.ok and len(report.loaded) == len(ref_state) == 1037
    io = load_reference("unet_keyframe_tiny_io.safetensors")
    cond = {"concat": io["wrapper_in_c_concat"], "crossattn": io["wrapper_in_c_crossattn"]}
    with torch.no_grad():
        out = engine.model(io["wrapper_in_x"], io["wrapper_in_t"], cond, num_video_frames=14,
                           image_only_indicator=io["wrapper_in_image_only_indicator"])
    assert max_abs_err(out, io["output"]) <= 1e-4


def test_deepspeed_folder(tmp_path, ref_state):
    folder = tmp_path / "last.ckpt" / "checkpoint"
    folder.mkdir(parents=True)
    _write("pt", ref_state, folder / "mp_rank_00_model_states.pt")
    assert len(read_state_dict(tmp_path / "last.ckpt")) == 1037


def test_missing_empty_truncated_and_corrupt_files(tmp_path, ref_state):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        read_state_dict(tmp_path / "nope.pt")
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.safetensors: the file is empty"):
        read_state_dict(empty)
    for fmt in ("pt", "safetensors"):
        full = tmp_path / f"full.{fmt}"
        _write(fmt, ref_state, full)
        cut = tmp_path / f"cut.{fmt}"
        cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        with pytest.raises(CheckpointError, match=rf"cut\.{fmt}: .*truncated or corrupt"):
            read_state_dict(cut)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00not a checkpoint" * 100)
    with pytest.raises(CheckpointError, match="garbage.ckpt"):
        read_state_dict(garbage)
    with pytest.raises(CheckpointError, match="unknown checkpoint type '.txt'"):
        (tmp_path / "w.txt").write_text("x")
        read_state_dict(tmp_path / "w.txt")


class Payload:
    """An arbitrary object: unpickling it would run code we do not control."""

    def __reduce__(self):
        return (print, ("unpickled an arbitrary object!",))


def test_pickled_objects_are_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"module": {"w": torch.zeros(1)}, "hook": Payload()}, path)
    with pytest.raises(CheckpointError, match="evil.pt: refusing to load"):
        read_state_dict(path)
    assert "unpickled an arbitrary object" not in capsys.readouterr().out


def test_wrong_model_names_mismatching_keys(tmp_path, ref_state):
    path = tmp_path / "keyframe.safetensors"
    _write("safetensors", ref_state, path)
    interp = build_engine("tiny/keysync_interpolation")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(interp, path, strict=True)
    msg = str(err.value)
    assert "model.diffusion_model.input_blocks.0.0.weight checkpoint [32, 8, 3, 3] vs model [32, 9, 3, 3]" in msg
    assert "missing (1): model.learned_mask" in msg
    # non-strict loading loads what fits and reports the rest
    report = load_checkpoint(interp, path, strict=False)
    assert report.missing == ["model.learned_mask"]
    assert list(report.shape_mismatch) == ["model.diffusion_model.input_blocks.0.0.weight"]
    assert torch.equal(interp.state_dict()["model.diffusion_model.out.2.weight"],
                       ref_state["model.diffusion_model.out.2.weight"])


def test_known_unused_encoder_keys_are_reported_not_fatal(tmp_path, ref_state):
    state = dict(ref_state)
    state["conditioner.embedders.0.encoder.encoder.conv_in.weight"] = torch.zeros(32, 3, 3, 3)
    state["some.unknown.key"] = torch.zeros(1)
    path = tmp_path / "extra.safetensors"
    _write("safetensors", state, path)
    with pytest.raises(CheckpointError, match="unexpected \\(1\\): some.unknown.key"):
        load_checkpoint(_engine(), path, strict=True)
    del state["some.unknown.key"]
    _write("safetensors", state, path)
    report = load_checkpoint(_engine(), path, strict=True)
    assert report.unused_known == ["conditioner.embedders.0.encoder.encoder.conv_in.weight"] and report.ok


def test_finetune_key_removal(tmp_path, ref_state):
    path = tmp_path / "svd_like.safetensors"
    _write("safetensors", ref_state, path)
    engine = _engine()
    fresh = engine.state_dict()["model.diffusion_model.label_emb.0.0.weight"].clone()
    report = load_checkpoint(engine, path, strict=True, remove_keys=FINETUNE_REMOVE_KEYS["keyframe"])
    assert report.removed == ["model.diffusion_model.label_emb.0.0.weight"]
    assert torch.equal(engine.state_dict()["model.diffusion_model.label_emb.0.0.weight"], fresh)
    assert torch.equal(engine.state_dict()["model.diffusion_model.label_emb.0.0.bias"],
                       ref_state["model.diffusion_model.label_emb.0.0.bias"])


def test_cli_keys_and_inspect(tmp_path, capsys, ref_state):
    assert cli_main(["checkpoint", "keys", "--model", "keyframe", "--json"]) == 0
    keys = json.loads(capsys.readouterr().out)
    assert len(keys) == 1696 and keys["model.diffusion_model.label_emb.0.0.weight"] == [1280, 1024]
    path = tmp_path / "tiny.safetensors"
    _write("safetensors", ref_state, path)
    assert cli_main(["checkpoint", "inspect", str(path), "--model", "tiny/keysync_keyframe", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fits"] is True
    assert cli_main(["checkpoint", "inspect", str(path), "--model", "interpolation"]) == 1
    out = capsys.readouterr().out
    assert "does NOT fit" in out and "shape mismatch" in out
    assert cli_main(["checkpoint", "inspect", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err
