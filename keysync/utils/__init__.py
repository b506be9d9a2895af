"""Small shared utilities (config instantiation, paths)."""
