"""keysync: audio-driven lip synchronisation (KeySync) and facial animation (KeyFace)."""

__version__ = "0.1.0"
