"""Sampling pipelines: long-video planning, model stages and weights."""
