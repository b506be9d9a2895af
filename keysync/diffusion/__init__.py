"""Diffusion core: scalings, denoisers, schedules, samplers, guidance and losses."""

from .denoiser import (Denoiser, DenoiserDub, DenoiserTemporalMultiDiffusion, KarrasTemporalMultiDiffusion,
                       TemporalMultiDiffusionDenoiser, chunk_network)
from .guidance import (AudioRefMultiCondGuider, IdentityGuider, KarrasGuider, LinearPredictionGuider,
                       VanillaCFG, autoguidance_denoiser)
from .losses import EDMSampling, EDMWeighting, EpsWeighting, StandardDiffusionLoss, UnitWeighting, VWeighting
from .samplers import EulerEDMSampler
from .scaling import EDMScaling, EpsScaling, VScaling, VScalingWithEDMcNoise
from .schedules import AYSDiscretization, EDMDiscretization

__all__ = [
    "AYSDiscretization", "AudioRefMultiCondGuider", "Denoiser", "DenoiserDub", "DenoiserTemporalMultiDiffusion",
    "EDMDiscretization", "EDMSampling", "EDMScaling", "EDMWeighting", "EpsScaling", "EpsWeighting",
    "EulerEDMSampler", "IdentityGuider", "KarrasGuider", "KarrasTemporalMultiDiffusion", "LinearPredictionGuider",
    "StandardDiffusionLoss", "TemporalMultiDiffusionDenoiser", "UnitWeighting", "VScaling",
    "VScalingWithEDMcNoise", "VWeighting", "VanillaCFG", "autoguidance_denoiser", "chunk_network",
]
