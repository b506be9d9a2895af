"""Command-line entry points (`keysync ...`)."""
