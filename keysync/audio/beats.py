"""BEATs audio encoder (KeyFace's extra audio features; SPEC §9, §11.26).

A re-implementation of Microsoft's BEATs (as copied into KeyFace's
``scripts/util/audio/BEATs.py`` / ``BEAT_module.py``) that loads the original
``{"cfg", "model"}`` checkpoint (``BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt``)
under its original parameter names, plus the KeyFace wrapper's frame alignment.

Model (post-norm "deep norm" transformer over spectrogram patches):

* input: Kaldi fbank (128 mel bins, 25/10 ms) of the waveform scaled by 2**15,
  normalised as ``(fbank - 15.41663) / (2 * 6.55582)`` (twice the std, as published);
* ``patch_embedding``: Conv2d(1, embed_dim, 16, stride 16) over ``(T, 128)``; the
  ``floor(T/16) x 8`` patches are flattened **time-major** (frequency fastest);
  LayerNorm(embed_dim), then ``post_extract_proj`` to the encoder width;
* encoder: ``x + GELU(SamePad(weight-normed grouped conv(x)))``, LayerNorm, then layers
  ``x = LN(alpha * x + SelfAttn(x)); x = LN(alpha * x + FFN(x))`` with
  ``alpha = (2 * layers) ** 0.25``; the attention adds a relative-position bias table
  (computed once, in layer 0, bidirectional log buckets) scaled per head and query
  position by a gate computed from the **projected** query
  ``g = sigmoid(sum4(grep_linear(q_h)))``: ``bias * (g_a * (g_b * grep_a - 1) + 2)``.

Alignment (reference, kept as the default because the published KeyFace weights were
trained on it): frames padded to even ``F'``, and the ``8 * floor(T/16)`` patch tokens
(frequency bands, not time steps) nearest-resized to ``2 F'``. For ``F' <= 4`` the
reference crashes (fewer than 16 fbank frames); by default we zero-pad the audio to
6 frames instead, ``reference_short_input_error=True`` raises like the reference.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np
import torch
from torch import nn

from .alignment import SAMPLE_RATE, SAMPLES_PER_FRAME, nearest_resize_tokens, pad_frames_to_even
from .fbank import kaldi_fbank
from .loading import prepare_waveform, reference_offline_waveform, to_mono_16k

__all__ = ["BEATsModel", "BEATsEncoder", "load_beats", "FBANK_MEAN", "FBANK_STD"]

FBANK_MEAN = 15.41663
FBANK_STD = 6.55582
_DEFAULTS: Dict[str, Any] = dict(
    input_patch_size=16, embed_dim=512, conv_bias=False, encoder_layers=12, encoder_embed_dim=768,
    encoder_ffn_embed_dim=3072, encoder_attention_heads=12, activation_fn="gelu",
    layer_norm_first=False, deep_norm=False, conv_pos=128, conv_pos_groups=16,
    relative_position_embedding=False, num_buckets=320, max_distance=1280, gru_rel_pos=False,
    finetuned_model=False, predictor_class=527,
)


class _WeightNormConv(nn.Module):
    """Grouped Conv1d with the old ``weight_norm(dim=2)`` storage (``weight_g``, ``weight_v``)."""

    def __init__(self, dim: int, kernel: int, groups: int):
        super().__init__()
        self.kernel, self.groups = kernel, groups
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.randn(dim, dim // groups, kernel) * 0.02)
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):  # (B, C, T)
        v = self.weight_v
        w = v * (self.weight_g / v.norm(dim=(0, 1), keepdim=True))
        y = nn.functional.conv1d(x, w, self.bias, padding=self.kernel // 2, groups=self.groups)
        if self.kernel % 2 == 0:  # SamePad
            y = y[:, :, :-1]
        return nn.functional.gelu(y)


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, rel_bias: bool, num_buckets: int, max_distance: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.scaling = self.head_dim ** -0.5
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.grep_linear = nn.Linear(self.head_dim, 8)
        self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))
        if rel_bias:
            self.relative_attention_bias = nn.Embedding(num_buckets, heads)

    def position_bias(self, n: int) -> torch.Tensor:
        """``(heads, n, n)`` bias from bidirectional log-spaced distance buckets."""
        rel = torch.arange(n)[None, :] - torch.arange(n)[:, None]  # key - query
        half = self.num_buckets // 2
        bucket = (rel > 0).long() * half
        rel = rel.abs()
        exact = half // 2
        large = exact + (torch.log(rel.clamp(min=1).float() / exact)
                         / math.log(self.max_distance / exact) * (half - exact)).long()
        large = torch.clamp(large, max=half - 1)
        bucket = bucket + torch.where(rel < exact, rel, large)
        emb = self.relative_attention_bias(bucket.to(self.relative_attention_bias.weight.device))
        return emb.permute(2, 0, 1)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:  # x (B, L, C)
        b, n, c = x.shape
        split = lambda t: t.view(b, n, self.heads, self.head_dim).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        gate_a, gate_b = torch.sigmoid(self.grep_linear(q).view(b, self.heads, n, 2, 4).sum(-1)).chunk(2, -1)
        gate = gate_a * (gate_b * self.grep_a - 1.0) + 2.0  # (B, H, L, 1)
        logits = (q * self.scaling) @ k.transpose(-1, -2) + gate * bias[None]
        out = torch.softmax(logits, dim=-1) @ v
        return self.out_proj(out.transpose(1, 2).reshape(b, n, c))


class _Layer(nn.Module):
    def __init__(self, cfg: Mapping[str, Any], first: bool):
        super().__init__()
        dim = cfg["encoder_embed_dim"]
        self.self_attn = _Attention(dim, cfg["encoder_attention_heads"],
                                    first and cfg["relative_position_embedding"],
                                    cfg["num_buckets"], cfg["max_distance"])
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, cfg["encoder_ffn_embed_dim"])
        self.fc2 = nn.Linear(cfg["encoder_ffn_embed_dim"], dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.alpha = math.pow(2 * cfg["encoder_layers"], 0.25) if cfg["deep_norm"] else 1.0

    def forward(self, x, bias):
        x = self.self_attn_layer_norm(x * self.alpha + self.self_attn(x, bias))
        return self.final_layer_norm(x * self.alpha + self.fc2(nn.functional.gelu(self.fc1(x))))


class _Encoder(nn.Module):
    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__()
        dim = cfg["encoder_embed_dim"]
        self.pos_conv = nn.Sequential(_WeightNormConv(dim, cfg["conv_pos"], cfg["conv_pos_groups"]))
        self.layer_norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(_Layer(cfg, i == 0) for i in range(cfg["encoder_layers"]))

    def forward(self, x):  # (B, L, C)
        x = self.layer_norm(x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2))
        bias = self.layers[0].self_attn.position_bias(x.shape[1])
        for layer in self.layers:
            x = layer(x, bias)
        return x


class BEATsModel(nn.Module):
    """BEATs under the original state-dict names. ``forward(fbank (B, T, 128))`` returns
    the encoder output ``(B, 8 * floor(T / 16), D)`` (the predictor head is not run)."""

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__()
        c = dict(_DEFAULTS)
        c.update({k: v for k, v in cfg.items() if v is not None})
        if c["layer_norm_first"] or not c["gru_rel_pos"] or not c["relative_position_embedding"]:
            raise NotImplementedError("only the published BEATs layout (post-norm, gated "
                                      "relative position bias) is supported")
        self.cfg = c
        p = c["input_patch_size"]
        self.patch_embedding = nn.Conv2d(1, c["embed_dim"], p, stride=p, bias=c["conv_bias"])
        self.layer_norm = nn.LayerNorm(c["embed_dim"])
        self.post_extract_proj = nn.Linear(c["embed_dim"], c["encoder_embed_dim"]) \
            if c["embed_dim"] != c["encoder_embed_dim"] else None
        self.encoder = _Encoder(c)
        if c["finetuned_model"]:
            self.predictor = nn.Linear(c["encoder_embed_dim"], c["predictor_class"])

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        p = self.cfg["input_patch_size"]
        if fbank.shape[1] < p:
            raise ValueError(f"BEATs needs at least {p} fbank frames (~{(p + 1) * 10} ms of audio), "
                             f"got {fbank.shape[1]}")
        x = self.patch_embedding(fbank.unsqueeze(1))  # (B, E, T/16, 8)
        x = self.layer_norm(x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2))
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        return self.encoder(x)

    def load_original_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Strict load of an original state dict; the per-layer copies of layer 0's shared
        relative-position table (keys of layers >= 1) must equal layer 0's and are dropped."""
        state = dict(state)
        shared = "encoder.layers.0.self_attn.relative_attention_bias.weight"
        for key in [k for k in state if k.endswith("relative_attention_bias.weight") and k != shared]:
            if shared in state and not torch.equal(state[key], state[shared]):
                raise ValueError(f"{key} differs from the shared table {shared}")
            del state[key]
        if self.cfg["finetuned_model"] is False:
            state = {k: v for k, v in state.items() if not k.startswith("predictor.")}
        self.load_state_dict(state, strict=True)


def fbank_features(wave: torch.Tensor, mean: float = FBANK_MEAN, std: float = FBANK_STD) -> torch.Tensor:
    """BEATs input: ``(N,)`` waveform in [-1, 1] -> normalised fbank ``(T, 128)``."""
    fb = kaldi_fbank(wave * 2 ** 15, num_mel_bins=128, sample_frequency=16000,
                     frame_length=25, frame_shift=10)
    return (fb - mean) / (2 * std)


def load_beats(path: Union[str, Path, Mapping[str, Any]], *, device="cpu", dtype=torch.float32) -> BEATsModel:
    """Original ``{"cfg", "model"}`` BEATs checkpoint (path or loaded dict) -> eval model."""
    if isinstance(path, Mapping):
        obj = path
    else:
        p = Path(path).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"BEATs checkpoint not found at '{p}'")
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    if not (isinstance(obj, Mapping) and isinstance(obj.get("cfg"), Mapping)
            and isinstance(obj.get("model"), Mapping)):
        raise ValueError(f"{path if not isinstance(path, Mapping) else 'object'} is not a "
                         "{'cfg', 'model'} BEATs checkpoint")
    model = BEATsModel(obj["cfg"])
    model.load_original_state_dict(obj["model"])
    return model.to(device=device, dtype=dtype).eval()


class BEATsEncoder:
    """BEATs features ``(F, 2, D)`` with KeyFace's alignment (see module docstring).

    ``mode="reference_offline"`` also applies the reference's loading quirks;
    ``keep_even_padding=True`` returns the reference's ``F'`` frames.
    """

    def __init__(self, model: BEATsModel, *, mode: str = "aligned",
                 reference_short_input_error: bool = False):
        if mode not in ("aligned", "reference_offline"):
            raise ValueError(f"mode must be 'aligned' or 'reference_offline', got {mode!r}")
        self.model, self.mode = model.eval(), mode
        self.reference_short_input_error = reference_short_input_error or mode == "reference_offline"

    @classmethod
    def from_path(cls, path, *, device="cpu", dtype=torch.float32, **kwargs):
        return cls(load_beats(path, device=device, dtype=dtype), **kwargs)

    @torch.inference_mode()
    def tokens(self, wave: torch.Tensor) -> torch.Tensor:
        """``(N,)`` waveform -> ``(8 * floor(T/16), D)`` patch tokens (float32, CPU)."""
        p = next(self.model.parameters())
        fb = fbank_features(wave.to(torch.float32)).to(device=p.device, dtype=p.dtype)
        return self.model(fb[None])[0].to(device="cpu", dtype=torch.float32)

    def __call__(self, audio, sr: int = SAMPLE_RATE, n_frames: Optional[int] = None, **kw):
        return self.encode(audio, sr, n_frames, **kw)

    def encode(self, audio: Union[np.ndarray, torch.Tensor], sr: int = SAMPLE_RATE,
               n_frames: Optional[int] = None, *, channel_axis: int = 0,
               keep_even_padding: bool = False) -> torch.Tensor:
        if self.mode == "reference_offline":
            x = reference_offline_waveform(audio, sr, n_video_frames=n_frames, normalize=False,
                                           channel_axis=channel_axis)
        else:
            x = prepare_waveform(to_mono_16k(audio, sr, channel_axis=channel_axis), n_video_frames=n_frames)
        frames = pad_frames_to_even(x.reshape(-1, SAMPLES_PER_FRAME))
        n_video, n_even = x.shape[0] // SAMPLES_PER_FRAME, frames.shape[0]
        wave = frames.reshape(-1)
        if n_even <= 4:
            if self.reference_short_input_error:
                raise ValueError(f"{n_even} frames give fewer than 16 fbank frames; the reference "
                                 "fails with \"Kernel size can't be greater than actual input size\"")
            wave = torch.nn.functional.pad(wave, (0, 6 * SAMPLES_PER_FRAME - wave.shape[0]))
        out = nearest_resize_tokens(self.tokens(wave), n_even)
        return out if keep_even_padding else out[:n_video]
