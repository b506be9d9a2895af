"""Files shipped with keysync (the demo model)."""
