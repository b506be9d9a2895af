"""Keep the demo off the network: set before Gradio is imported, checked at launch.

Gradio reaches out to the internet in four places, all closed here: usage analytics and its
version check (``GRADIO_ANALYTICS_ENABLED=False`` and ``analytics_enabled=False``), theme fonts
(a theme whose fonts are CSS system-font names, so no stylesheet is requested at all, neither
from Google Fonts nor from Gradio's bundled copies), the share tunnel (off unless asked for;
it downloads a binary and registers with Gradio's servers) and server-side rendering (off;
it starts a Node server). ``huggingface_hub``, which Gradio imports, is told not to phone home.
"""

from __future__ import annotations

import os

#: environment set before ``import gradio`` (``setdefault``: a caller's choice wins, except analytics).
OFFLINE_ENV = {
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",
    "GRADIO_SSR_MODE": "False",
    "GRADIO_MCP_SERVER": "False",
}
#: CSS generic / system font families: nothing to download.
SYSTEM_FONTS = ("system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif")
SYSTEM_MONO_FONTS = ("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "DejaVu Sans Mono", "monospace")


def prepare_offline_env() -> None:
    """Set the environment that keeps Gradio quiet; call before the first ``import gradio``."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def import_gradio():
    """``gradio``, imported with the offline environment in place (a clear error if the ``web``
    extra is not installed)."""
    prepare_offline_env()
    try:
        import gradio
    except ImportError as err:
        raise ImportError("the web demo needs Gradio: pip install -e '.[web]' (or bash scripts/install.sh)") from err
    return gradio


def local_theme():
    """Gradio's default theme with system fonts only (its default asks for IBM Plex files)."""
    gr = import_gradio()
    return gr.themes.Default(font=list(SYSTEM_FONTS), font_mono=list(SYSTEM_MONO_FONTS))


def theme_stylesheets(theme) -> list[str]:
    """Stylesheet URLs a theme makes the page load (must be empty for an offline page)."""
    return list(getattr(theme, "_stylesheets", []))
