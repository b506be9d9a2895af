"""Diffusion core: scalings, denoisers, schedules, samplers, guidance and losses."""
