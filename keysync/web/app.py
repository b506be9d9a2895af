"""The demo page: a header saying what runs where, the Dub and Animate tabs, one job at a time.

    from keysync.web import DemoConfig
    from keysync.web.app import serve
    serve(DemoConfig(port=7860))            # blocks; http://127.0.0.1:7860

Jobs of both tabs share one queue slot (``concurrency_id="device"``, limit 1): a second job waits
for the first instead of running beside it on the same device. Small UI events (showing a frame,
occlusion clicks) do not wait for jobs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from keysync.web.config import DemoConfig
from keysync.web.offline import import_gradio, local_theme, theme_stylesheets
from keysync.web.runtime import DemoRuntime, load_runtime

log = logging.getLogger(__name__)
TITLE = "keysync demo"
#: the bundled example, next to the package in a source checkout.
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
MAX_QUEUE = 16
#: Gradio's copies of uploads and results: checked hourly, removed after a day (outputs stay in --output_dir).
CACHE_CLEANUP = (3600, 24 * 3600)
CSS = "#dub_report, #animate_report {font-size: 0.9em}"


def _dub_examples(runtime: DemoRuntime) -> list[list[str]]:
    """The bundled example: a synthetic face for the demo model (it knows only those), else a real one."""
    folder = EXAMPLES_DIR / "world" if runtime.dubbing.kind == "demo" else EXAMPLES_DIR
    video, audio = folder / "face.mp4", folder / "speech.wav"
    return [[str(video), str(audio)]] if video.is_file() and audio.is_file() else []


def _animate_examples(runtime: DemoRuntime) -> list[list]:
    """The example face as a still (the first frame of ``examples/face.mp4``), with the example speech."""
    video, audio = EXAMPLES_DIR / "face.mp4", EXAMPLES_DIR / "speech.wav"
    if not (video.is_file() and audio.is_file()):
        return []
    import cv2

    from keysync.web.media_prep import frame_image

    still = runtime.config.output_dir / ".examples" / "face.png"
    if not still.is_file():
        still.parent.mkdir(parents=True, exist_ok=True)
        frame, _ = frame_image(video, 0)
        cv2.imwrite(str(still), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return [[str(still), str(audio), ["happy"]]]


def build_app(runtime: DemoRuntime):
    """The ``gr.Blocks`` page for ``runtime`` (queued, not launched)."""
    gr = import_gradio()
    from keysync.web.animate_tab import build_animate_tab
    from keysync.web.dub_tab import build_dub_tab

    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=CACHE_CLEANUP) as demo:
        gr.Markdown("# keysync: lip sync (KeySync) and talking heads (KeyFace)")
        gr.Markdown(runtime.summary_markdown(), elem_id="model_info")
        with gr.Tabs():
            with gr.Tab("Dub", id="dub"):
                build_dub_tab(runtime, _dub_examples(runtime))
            with gr.Tab("Animate", id="animate"):
                build_animate_tab(runtime, _animate_examples(runtime))
    demo.queue(default_concurrency_limit=1, max_size=MAX_QUEUE)
    return demo


def launch(demo, config: DemoConfig, block: bool = True):
    """Serve ``demo`` as ``config`` says: local address, no share link unless asked, no analytics,
    no server-side rendering, files served only from the output folder and the example folder."""
    theme = local_theme()
    stylesheets = theme_stylesheets(theme)
    if stylesheets:  # a theme change that would fetch fonts must not go unnoticed
        raise RuntimeError(f"the demo theme would load remote stylesheets: {stylesheets}")
    if config.share:
        log.warning("--share on: Gradio downloads its tunnel client and registers with its share server")
    allowed = [str(config.output_dir)] + ([str(EXAMPLES_DIR)] if EXAMPLES_DIR.is_dir() else [])
    return demo.launch(server_name=config.host, server_port=int(config.port), share=bool(config.share),
                       inbrowser=False, prevent_thread_lock=not block, show_error=False, quiet=False,
                       allowed_paths=allowed, ssr_mode=False, mcp_server=False, pwa=False, theme=theme, css=CSS)


def _check_port(host: str, port: int) -> None:
    import socket

    if not port:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError as err:
            raise OSError(f"port {port} on {host} is not free ({err.strerror}); choose another with --port") from err


def serve(config: DemoConfig, block: bool = True):
    """Load the models, build the page and serve it (blocks until interrupted unless ``block`` is
    False, in which case the running ``gr.Blocks`` is returned)."""
    import_gradio()  # fail before loading models when the extra is missing or the port is taken
    _check_port(config.host, config.port)
    runtime = load_runtime(config)
    demo = build_app(runtime)
    log.info("serving on http://%s:%d; outputs in %s", config.host, config.port, config.output_dir)
    try:
        launch(demo, config, block=block)
    finally:
        if block:
            runtime.close()
    return demo
