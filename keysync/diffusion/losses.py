"""Training σ sampling, loss weightings and the diffusion loss (KeySync / KeyFace).

Latents are in the scaled space (VAE latent × 0.18215); a training batch of B clips of
T frames is (B, C, T, h, w), flattened to (B·T, C, h, w) with frame index fastest.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from einops import rearrange

from .util import append_dims, build

# ----------------------------------------------------------------------------- σ sampling


class EDMSampling:
    """ln σ ~ N(p_mean, p_std²): σ = exp(p_mean + p_std·rand), one σ per sample (clip)."""

    def __init__(self, p_mean: float = 1.0, p_std: float = 1.2):
        self.p_mean = p_mean
        self.p_std = p_std

    def __call__(self, n_samples: int, rand: Optional[torch.Tensor] = None,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        if rand is None:
            rand = torch.randn((n_samples,), generator=generator)
        return (self.p_mean + self.p_std * rand).exp()


# ----------------------------------------------------------------------------- weightings


class UnitWeighting:
    """w(σ) = 1."""

    def __call__(self, sigma: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(sigma)


class EDMWeighting:
    """w(σ) = (σ² + σ_d²) / (σ·σ_d)²."""

    def __init__(self, sigma_data: float = 0.5):
        self.sigma_data = sigma_data

    def __call__(self, sigma: torch.Tensor) -> torch.Tensor:
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2


class VWeighting(EDMWeighting):
    """v-prediction weighting w(σ) = (σ² + 1)/σ² (EDM with σ_d = 1)."""

    def __init__(self):
        super().__init__(sigma_data=1.0)


class EpsWeighting:
    """w(σ) = σ⁻²."""

    def __call__(self, sigma: torch.Tensor) -> torch.Tensor:
        return sigma**-2.0


# ----------------------------------------------------------------------------- loss

DecodeFn = Callable[[torch.Tensor], torch.Tensor]


def load_lpips(model_path: str) -> nn.Module:
    """LPIPS(net="vgg") with every weight (VGG trunk + linear heads) read from a local file.

    The file is a state dict of ``lpips.LPIPS(net="vgg")`` (``.pt``/``.pth`` or
    ``.safetensors``), e.g. saved once with ``torch.save(lpips.LPIPS(net="vgg").state_dict(), path)``.
    Needs the optional ``lpips`` package (and torchvision); nothing is downloaded.
    """
    if not os.path.isfile(model_path):
        raise FileNotFoundError(f"LPIPS weights not found at {model_path!r}")
    try:
        import lpips  # optional dependency
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the 'lpips' pixel loss needs the optional packages lpips and torchvision") from e
    net = lpips.LPIPS(net="vgg", pretrained=False, pnet_rand=True, verbose=False)
    if model_path.endswith(".safetensors"):
        from safetensors.torch import load_file
        state = load_file(model_path)
    else:
        state = torch.load(model_path, map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    net.eval().requires_grad_(False)
    return net


class StandardDiffusionLoss(nn.Module):
    """Denoising loss with per-clip σ, λ row weighting and pixel-space losses.

    Per frame: L_t = mean_{c,h,w}(w(σ)·λ·(D − x₀)²) ("l1": |D − x₀|), λ = `lambda_lower`
    on latent rows ≥ h/2 and `lambda_upper` above. If `weight_pixel` > 0, the same
    `n_frames_pixel` random frames of every clip are decoded (latent / `scale_factor`,
    one frame per `decode_fn` call, clipped to [-1, 1], gradients flow) and compared to
    ``batch["original_frames"]`` (B, 3, T, H, W) in [-1, 1]; each pixel term
    weight_pixel·mean(w·err) is added to every frame's loss.

    `sigma_sampler` / `loss_weighting` may be objects or reference config dicts
    (`*_config` aliases). LPIPS ("lpips" in `what_pixel_losses`) needs `lpips_model_path`
    (see `load_lpips`) or a callable `lpips_fn(dec, orig) -> (M,)`.
    """

    def __init__(self, sigma_sampler: Any = None, loss_weighting: Any = None, loss_type: str = "l2",
                 offset_noise_level: float = 0.0, batch2model_keys: Optional[Union[str, List[str]]] = None,
                 lambda_lower: float = 1.0, lambda_upper: float = 1.0, weight_pixel: float = 0.0,
                 n_frames_pixel: int = 1, what_pixel_losses: Optional[Sequence[str]] = None,
                 scale_factor: float = 0.18215, lpips_model_path: Optional[str] = None,
                 lpips_fn: Optional[Callable] = None, sigma_sampler_config: Any = None,
                 loss_weighting_config: Any = None, fix_image_leak: bool = False, add_lpips: bool = False,
                 disable_first_stage_autocast: bool = True):
        super().__init__()
        if loss_type not in ("l2", "l1"):
            raise ValueError(f"loss_type must be 'l2' or 'l1', got {loss_type!r}")
        if fix_image_leak or add_lpips:
            raise NotImplementedError("fix_image_leak / add_lpips are not used by KeySync or KeyFace")
        what = list(what_pixel_losses or [])
        unknown = set(what) - {"l2", "l1", "lpips"}
        if unknown:
            raise NotImplementedError(f"pixel losses {sorted(unknown)} are not implemented")
        if "lpips" in what and lpips_fn is None:
            if lpips_model_path is None:
                raise ValueError("the 'lpips' pixel loss needs lpips_model_path (or lpips_fn)")
            if not os.path.isfile(lpips_model_path):
                raise FileNotFoundError(f"LPIPS weights not found at {lpips_model_path!r}")
        ss = sigma_sampler if sigma_sampler is not None else sigma_sampler_config
        lw = loss_weighting if loss_weighting is not None else loss_weighting_config
        self.sigma_sampler = build(ss) if ss is not None else EDMSampling()
        self.loss_weighting = build(lw) if lw is not None else VWeighting()
        self.loss_type = loss_type
        self.offset_noise_level = offset_noise_level
        keys = [batch2model_keys] if isinstance(batch2model_keys, str) else list(batch2model_keys or [])
        self.batch2model_keys = keys
        self.lambda_lower = lambda_lower
        self.lambda_upper = lambda_upper
        self.weight_pixel = weight_pixel
        self.n_frames_pixel = n_frames_pixel
        self.what_pixel_losses = what
        self.scale_factor = scale_factor
        self.lpips_model_path = lpips_model_path
        if isinstance(lpips_fn, nn.Module):  # a frozen metric network, never trained with the model
            lpips_fn.eval().requires_grad_(False)
        object.__setattr__(self, "_lpips", lpips_fn)  # plain attribute (even for a Module): kept out of state_dict

    # -------------------------------------------------------------------------- helpers
    def lpips(self, dec: torch.Tensor, orig: torch.Tensor) -> torch.Tensor:
        if self._lpips is None:
            object.__setattr__(self, "_lpips", load_lpips(self.lpips_model_path))
        if isinstance(self._lpips, nn.Module):
            self._lpips.to(dec.device)
        return self._lpips(dec, orig).reshape(-1)

    def decode(self, z: torch.Tensor, decode_fn: DecodeFn) -> torch.Tensor:
        """z (M, 4, h, w) scaled latents → pixels (M, 3, H, W) in [-1, 1], one frame per call.
        `decode_fn` receives raw VAE latents (1, 4, h, w) (already divided by scale_factor)."""
        z = (1.0 / self.scale_factor) * z
        out = torch.cat([decode_fn(z[i:i + 1]) for i in range(z.shape[0])], dim=0)
        return out.clip(-1, 1)

    def sample_noise(self, input: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        noise = torch.randn(input.shape, generator=generator, dtype=input.dtype, device=input.device)
        if self.offset_noise_level > 0.0:  # per sample and channel, shared over frames and pixels
            shape = input.shape[:2] + (1,) * (input.ndim - 2)
            noise = noise + self.offset_noise_level * torch.randn(shape, generator=generator, dtype=input.dtype,
                                                                  device=input.device)
        return noise

    # -------------------------------------------------------------------------- main
    def forward(self, network, denoiser, cond: Dict, input: torch.Tensor, batch: Dict,
                decode_fn: Optional[DecodeFn] = None, *, noise: Optional[torch.Tensor] = None,
                sigma_rand: Optional[torch.Tensor] = None, sigmas: Optional[torch.Tensor] = None,
                pixel_frames: Optional[torch.Tensor] = None,
                generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, Dict]:
        """input: clean latents x₀ (B, C, T, h, w) (or (N, C, h, w): N one-frame clips).

        Calls ``denoiser(network, x₀ + σ·ε, σ (B,), cond, **batch2model kwargs)`` and
        returns (per-frame loss (B·T,), logged parts). `noise`, `sigma_rand` (or `sigmas`)
        and `pixel_frames` override the random draws.
        """
        extra = {k: batch[k] for k in self.batch2model_keys if k in batch}
        if sigmas is None:
            sigmas = (self.sigma_sampler(input.shape[0], rand=sigma_rand) if generator is None
                      else self.sigma_sampler(input.shape[0], rand=sigma_rand, generator=generator))
        sigmas = sigmas.to(input)
        if noise is None:
            noise = self.sample_noise(input, generator)
        noised_input = input + noise * append_dims(sigmas, input.ndim)
        model_output = denoiser(network, noised_input, sigmas, cond, **extra)
        w = self.loss_weighting(sigmas)
        return self.get_loss(model_output, input, w, batch.get("original_frames"), decode_fn,
                             pixel_frames=pixel_frames, generator=generator)

    def get_loss(self, model_output: torch.Tensor, target: torch.Tensor, w: torch.Tensor,
                 original_frames: Optional[torch.Tensor] = None, decode_fn: Optional[DecodeFn] = None,
                 pixel_frames: Optional[torch.Tensor] = None,
                 generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, Dict]:
        """model_output (B·T, C, h, w) = D; target x₀ (B, C, T, h, w) or (B·T, ...); w (B,) per clip."""
        n_clips = w.reshape(-1).shape[0]
        if target.ndim == 5:
            target = rearrange(target, "b c t h w -> (b t) c h w")
        if model_output.ndim == 5:
            model_output = rearrange(model_output, "b c t h w -> (b t) c h w")
        T = target.shape[0] // n_clips
        w_frame = append_dims(w.reshape(-1).repeat_interleave(T), target.ndim)  # (B·T, 1, 1, 1)
        h = model_output.shape[2]
        lam = torch.ones(h, dtype=w.dtype, device=w.device)
        lam[h // 2:] *= self.lambda_lower
        lam[: h // 2] *= self.lambda_upper
        w_map = w_frame * lam.reshape(1, 1, h, 1) if (self.lambda_lower != 1.0 or self.lambda_upper != 1.0) \
            else w_frame
        err = (model_output - target) ** 2 if self.loss_type == "l2" else (model_output - target).abs()
        loss = torch.mean((w_map * err).reshape(target.shape[0], -1), 1)
        loss_dict: Dict[str, torch.Tensor] = {self.loss_type: loss.clone()}

        if self.weight_pixel > 0.0 and self.what_pixel_losses:
            if original_frames is None or decode_fn is None:
                raise ValueError("pixel losses need batch['original_frames'] and a decode_fn")
            if pixel_frames is None:
                pixel_frames = torch.randperm(T, generator=generator)[: self.n_frames_pixel]
            sel = torch.as_tensor(pixel_frames, dtype=torch.long).reshape(-1)
            out_sel = rearrange(rearrange(model_output, "(b t) ... -> b t ...", t=T)[:, sel], "b t ... -> (b t) ...")
            orig_sel = rearrange(original_frames[:, :, sel], "b c t h w -> (b t) c h w")
            w_sel = w_frame.reshape(n_clips, T, 1, 1, 1)[:, sel].reshape(-1, 1, 1, 1)
            decoded = self.decode(out_sel, decode_fn)
            m = decoded.shape[0]
            for name in self.what_pixel_losses:
                if name == "l2":
                    term = torch.mean((w_sel * (decoded - orig_sel) ** 2).reshape(m, -1), 1).mean()
                elif name == "l1":
                    term = torch.mean((w_sel * (decoded - orig_sel).abs()).reshape(m, -1), 1).mean()
                else:  # lpips, weighted per decoded frame by its clip's w
                    term = (self.lpips(decoded, orig_sel) * w_sel.reshape(-1)).mean()
                loss_dict[f"pixel_{name}"] = self.weight_pixel * term
                loss = loss + self.weight_pixel * term
        loss_dict["loss"] = loss
        return loss, loss_dict


__all__ = ["EDMSampling", "EDMWeighting", "EpsWeighting", "StandardDiffusionLoss", "UnitWeighting",
           "VWeighting", "load_lpips"]
