"""Guiders: stack the conditioning passes into ONE batch, then combine the outputs.

Every guider has ``n_passes`` and
* ``prepare_inputs(x, s, c, uc) -> (x_b, s_b, c_b)``: x and σ repeated ``n_passes`` times
  along dim 0, and each stacked cond key concatenated pass by pass (per-clip tensors
  keep their per-clip batch, e.g. crossattn (n_passes·B, T, D));
* ``__call__(x_out, sigma) -> x``: combine the denoiser output (n_passes·N, ...) to (N, ...).

The caller sizes per-call kwargs such as ``image_only_indicator`` to n_passes·B rows.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from einops import rearrange

from .denoiser import split_batch_halves

# keys the reference concatenates across passes (VanillaCFG's list)
STACK_KEYS = ("vector", "crossattn", "concat", "audio_emb", "image_embeds", "landmarks",
              "masks", "gt", "valence", "arousal")


def _cat(values: Sequence):
    if isinstance(values[0], (list, tuple)):
        return [torch.cat([v[i] for v in values], 0) for i in range(len(values[0]))]
    return torch.cat(list(values), 0)


class Guider:
    """Base class; `stack_keys` lists the cond keys that are stacked across passes."""

    n_passes = 1
    stack_keys: Sequence[str] = STACK_KEYS

    def pass_conds(self, c: Dict, uc: Dict) -> List[Dict]:
        """The cond dict of each pass, in batch order."""
        return [c]

    def prepare_inputs(self, x: torch.Tensor, s: torch.Tensor, c: Dict, uc: Optional[Dict] = None):
        uc = c if uc is None else uc
        passes = self.pass_conds(c, uc)
        c_out = {}
        for k in c:
            if k in self.stack_keys or k == "reference":
                c_out[k] = _cat([p.get(k, c[k]) for p in passes]) if len(passes) > 1 else c[k]
            else:
                c_out[k] = c[k]
        n = self.n_passes
        return torch.cat([x] * n), torch.cat([s] * n), c_out

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class IdentityGuider(Guider):
    """No guidance: one pass with c."""

    def __init__(self, *args, **kwargs):
        pass

    def prepare_inputs(self, x, s, c, uc=None):
        return x, s, dict(c)

    def __call__(self, x, sigma):
        return x


def _with(uc: Dict, base: Dict, keys: Sequence[str]) -> Dict:
    out = dict(base)
    for k in keys:
        if k in uc:
            out[k] = uc[k]
    return out


class VanillaCFG(Guider):
    """Classifier-free guidance: batch [uc, c]; x = x_u + scale·(x_c − x_u).

    `low_sigma` / `high_sigma` are accepted for config compatibility and unused, as in
    the reference.
    """

    n_passes = 2

    def __init__(self, scale: float, low_sigma: float = 0.0, high_sigma: float = float("inf")):
        self.scale = scale
        self.low_sigma = low_sigma
        self.high_sigma = high_sigma

    def set_scale(self, scale: float) -> None:
        self.scale = scale

    def pass_conds(self, c, uc):
        return [_with(uc, c, self.stack_keys), c]

    def __call__(self, x, sigma):
        x_u, x_c = x.chunk(2)
        return x_u + self.scale * (x_c - x_u)


class KarrasGuider(VanillaCFG):
    """Autoguidance (KeyFace interpolation): batch [c, c]; the denoiser sends the first
    half through the weak ("bad") network and the second through the good one
    (see `autoguidance_denoiser` / `KarrasTemporalMultiDiffusion`);
    x = x_bad + scale·(x_good − x_bad)."""

    def pass_conds(self, c, uc):
        return [c, c]


def autoguidance_denoiser(denoiser, network, bad_network, **network_kwargs):
    """Closure ``(x, σ, cond) -> D`` for `KarrasGuider`: the first half of the stacked batch
    goes through `bad_network`, the second through `network`, both with the same
    `denoiser(network, x, σ, cond, **kwargs)`; batched kwargs (image_only_indicator) are
    halved and `n_skips` (passes) is halved."""
    kw = dict(network_kwargs)
    if "n_skips" in kw:
        kw["n_skips"] = max(1, kw["n_skips"] // 2)

    def fn(x, sigma, cond):
        (x1, s1, c1, k1), (x2, s2, c2, k2) = split_batch_halves(x, sigma, cond, kw)
        return torch.cat([denoiser(bad_network, x1, s1, c1, **k1), denoiser(network, x2, s2, c2, **k2)], 0)

    return fn


class MomentumBuffer:
    """Running average r ← v + momentum·r (APG)."""

    def __init__(self, momentum: float):
        self.momentum = momentum
        self.running_average = 0

    def update(self, value: torch.Tensor) -> None:
        self.running_average = value + self.momentum * self.running_average


def project(v0: torch.Tensor, v1: torch.Tensor):
    """Split v0 into parts parallel / orthogonal to v1 over the last 3 dims (float64)."""
    dtype = v0.dtype
    v0, v1 = v0.double(), F.normalize(v1.double(), dim=[-1, -2, -3])
    par = (v0 * v1).sum(dim=[-1, -2, -3], keepdim=True) * v1
    return par.to(dtype), (v0 - par).to(dtype)


def _apg_update(diff, pred, buffer, norm_threshold, eta):
    if buffer is not None:
        buffer.update(diff)
        diff = buffer.running_average
    if norm_threshold > 0:
        norm = diff.norm(p=2, dim=[-1, -2, -3], keepdim=True)
        diff = diff * torch.minimum(torch.ones_like(diff), norm_threshold / norm)
    par, orth = project(diff, pred)
    return orth + eta * par


class AudioRefMultiCondGuider(Guider):
    """KeySync/KeyFace keyframe guidance with three passes [base, ref, full]:
    base = c with crossattn (audio) and concat (reference) from uc; ref = c with
    crossattn from uc; full = c. Result: e_uc + r·(e_ref − e_uc) + a·(e_full − e_ref).

    `use_normalized` switches to the reference's APG variant (off in all configs).
    The reference code's default ref_ratio is 3.0; every config sets 2.0.
    """

    n_passes = 3

    def __init__(self, audio_ratio: float = 5.0, ref_ratio: float = 2.0, use_normalized: bool = False,
                 momentum: float = -0.75, eta: float = 0.0, norm_threshold: float = 2.5):
        self.audio_ratio = audio_ratio
        self.ref_ratio = ref_ratio
        self.use_normalized = use_normalized
        self.eta = eta
        self.norm_threshold = norm_threshold
        self.momentum_buffer_audio = MomentumBuffer(momentum)
        self.momentum_buffer_ref = MomentumBuffer(momentum)

    def set_scale(self, scale: Sequence[float]) -> None:
        """scale = [audio_ratio, ref_ratio] (the `--scale` option)."""
        self.audio_ratio = float(scale[0])
        self.ref_ratio = float(scale[1])

    def pass_conds(self, c, uc):
        return [_with(uc, c, ("crossattn", "concat")), _with(uc, c, ("crossattn",)), c]

    def __call__(self, x, sigma):
        e_uc, e_ref, e_full = x.chunk(3)
        if not self.use_normalized:
            return self.audio_ratio * (e_full - e_ref) + self.ref_ratio * (e_ref - e_uc) + e_uc
        g_audio = (self.audio_ratio - 1) * _apg_update(e_full - e_uc, e_full, self.momentum_buffer_audio,
                                                       self.norm_threshold, self.eta)
        g_ref = (self.ref_ratio - 1) * _apg_update(e_ref - e_uc, e_ref, self.momentum_buffer_ref,
                                                   self.norm_threshold, self.eta)
        return e_uc + g_audio + g_ref


class LinearPredictionGuider(Guider):
    """CFG with a per-frame scale ramped linearly from `min_scale` (frame 0) to `max_scale`
    (last frame); batch [uc, c]. Output layout (B·T, ...) with T = `num_frames`.
    `only_first`: max_scale everywhere but min_scale on frame 0."""

    n_passes = 2
    stack_keys = ("vector", "crossattn", "concat", "audio_emb", "masks", "gt")

    def __init__(self, max_scale: float, num_frames: int, min_scale: float = 1.0,
                 additional_cond_keys: Optional[Union[List[str], str]] = None, only_first: bool = False):
        self.max_scale = max_scale
        self.num_frames = num_frames
        self.only_first = only_first
        extra = [additional_cond_keys] if isinstance(additional_cond_keys, str) else list(additional_cond_keys or [])
        self.stack_keys = tuple(self.stack_keys) + tuple(extra)
        self.set_scale(min_scale)

    def set_scale(self, scale: float) -> None:
        """Sets `min_scale` (as the reference does) and rebuilds the ramp."""
        self.min_scale = scale
        ramp = torch.linspace(scale, self.max_scale, self.num_frames).unsqueeze(0)
        if self.only_first:
            ramp = torch.full_like(ramp, self.max_scale)
            ramp[:, 0] = scale
        self.scale = ramp

    def pass_conds(self, c, uc):
        return [_with(uc, c, self.stack_keys), c]

    def __call__(self, x, sigma):
        x_u, x_c = (rearrange(v, "(b t) ... -> b t ...", t=self.num_frames) for v in x.chunk(2))
        scale = self.scale.to(x_u.device, x_u.dtype).reshape(1, self.num_frames, *([1] * (x_u.ndim - 2)))
        return rearrange(x_u + scale * (x_c - x_u), "b t ... -> (b t) ...")


__all__ = ["AudioRefMultiCondGuider", "Guider", "IdentityGuider", "KarrasGuider", "LinearPredictionGuider",
           "MomentumBuffer", "STACK_KEYS", "VanillaCFG", "autoguidance_denoiser", "project"]
