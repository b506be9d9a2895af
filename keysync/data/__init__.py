"""Data: artefact paths, precompute, datasets and the data module."""
