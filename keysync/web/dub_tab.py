"""The Dub tab: a video and new speech in, the dubbed video out (KeySync).

Options: seed, the two models' audio/reference guidance scales, full length (off:
``reference_compat``), output size, and occlusion handling: show a frame, click on the occluder
(each click adds an (x, y) point on that frame), and SAM 2 keeps it out of the regenerated region.
"""

# no `from __future__ import annotations`: Gradio reads the `gr.SelectData` annotation at run time
import logging

import numpy as np

from keysync.web.dub_job import DubSettings, guidance_scales, result_markdown, run_dub
from keysync.web.errors import user_message
from keysync.web.events import job_error, wire_job
from keysync.web.media_prep import OUTPUT_SIZES, draw_points, frame_image
from keysync.web.offline import import_gradio
from keysync.web.progress import GradioReporter

log = logging.getLogger(__name__)
FULL_LENGTH_INFO = ("on: the input's size and frame rate, the whole speech; off: reference_compat "
                    "(512² squashed frames at 25 fps, the original's 14+13k length cap, tail dropped)")


def _points_text(points, frame) -> str:
    if not points:
        return "No occluder marked: the whole lower face is regenerated."
    where = ", ".join(f"({x:.0f}, {y:.0f})" for x, y in points)
    return f"Occluder marked on frame {frame} at {where}."


def _guidance_sliders(gr, label: str, scales):
    audio, ref = scales if scales is not None else (5.0, 2.0)
    visible = scales is not None
    with gr.Row(visible=visible):
        a = gr.Slider(0.0, 10.0, value=audio, step=0.1, label=f"{label}: audio guidance")
        r = gr.Slider(0.0, 10.0, value=ref, step=0.1, label=f"{label}: reference guidance")
    return a, r


def build_dub_tab(runtime, examples: list[list[str]]) -> None:
    """Add the tab's components and events to the enclosing ``gr.Blocks``."""
    gr = import_gradio()
    models = runtime.dubbing.models
    with gr.Row():
        with gr.Column():
            video = gr.Video(label="Video (with a face)", sources=["upload"], elem_id="dub_video")
            audio = gr.Audio(label="New speech", sources=["upload"], type="filepath", elem_id="dub_audio")
            if examples:
                gr.Examples(examples=examples, inputs=[video, audio], label="Example (click to load)")
            with gr.Accordion("Options", open=False):
                seed = gr.Number(value=runtime.dubbing.options.seed, precision=0, label="Seed")
                k_audio, k_ref = _guidance_sliders(gr, "Keyframes", guidance_scales(models.keyframe))
                i_audio, i_ref = _guidance_sliders(gr, "Interpolation", guidance_scales(models.interpolation))
                full = gr.Checkbox(value=True, label="Keep full length", info=FULL_LENGTH_INFO)
                size = gr.Dropdown(list(OUTPUT_SIZES), value="as the input", label="Output resolution",
                                   info="height of the output (never upscaled; full mode only)")
            with gr.Accordion("Occlusion (hand, microphone in front of the mouth)", open=False,
                              elem_id="dub_occlusion"):
                if runtime.occluder is None:
                    gr.Markdown(f"**Note:** {runtime.no_sam2_message}", elem_id="dub_no_sam2")
                with gr.Row():
                    occ_frame = gr.Number(value=0, precision=0, minimum=0, label="Frame")
                    show = gr.Button("Show frame", size="sm")
                    clear = gr.Button("Clear points", size="sm")
                occ_image = gr.Image(label="Click on the occluder", interactive=False, type="numpy",
                                     elem_id="dub_occlusion_frame")
                points_md = gr.Markdown(_points_text([], 0))
            run = gr.Button("Dub", variant="primary", elem_id="dub_run")
        with gr.Column():
            output = gr.Video(label="Dubbed video", interactive=False, elem_id="dub_output", buttons=["download"])
            report = gr.Markdown(elem_id="dub_report")

    frame_state = gr.State(None)
    points_state = gr.State([])
    prompt_frame = gr.State(0)

    def on_show(path, index):
        if not path:
            raise gr.Error("upload a video first", duration=8, print_exception=False)
        try:
            frame, index = frame_image(path, int(index or 0))
        except Exception as err:  # noqa: BLE001 - shown in the page
            raise gr.Error(user_message(err, {"video": path}), duration=None, print_exception=False) from None
        return frame, frame, [], index, index, _points_text([], index)

    def on_select(frame, points, index, evt: gr.SelectData):
        if frame is None:
            return gr.skip(), points, gr.skip()
        x, y = (float(v) for v in evt.index[:2])
        points = list(points or []) + [(x, y)]
        return draw_points(frame, points), points, _points_text(points, index)

    def on_clear(frame, index):
        return (frame if isinstance(frame, np.ndarray) else None), [], _points_text([], index)

    def on_new_video():
        return None, None, [], 0, _points_text([], 0)

    def on_run(video_path, audio_path, seed_v, ka, kr, ia, ir, full_v, size_v, points, index,
               request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        settings = DubSettings(
            seed=int(seed_v if seed_v is not None else 23), keyframe_guidance=(ka, kr),
            interpolation_guidance=(ia, ir), full_length=bool(full_v), output_height=OUTPUT_SIZES.get(size_v),
            occlusion_points=[tuple(p) for p in (points or [])], occlusion_frame=int(index or 0))
        try:
            result = run_dub(runtime, video_path, audio_path, settings, GradioReporter(progress))
        except Exception as err:  # noqa: BLE001 - every failure becomes a message in the page
            raise job_error(runtime, request, err, {"video": video_path, "audio": audio_path}) from None
        return str(result.output), result_markdown(result)

    light = {"concurrency_limit": None, "show_progress": "minimal", "api_visibility": "undocumented"}
    show.click(on_show, [video, occ_frame], [occ_image, frame_state, points_state, prompt_frame, occ_frame,
                                            points_md], **light)
    occ_image.select(on_select, [frame_state, points_state, prompt_frame], [occ_image, points_state, points_md],
                     **light)
    clear.click(on_clear, [frame_state, prompt_frame], [occ_image, points_state, points_md], **light)
    video.change(on_new_video, None, [occ_image, frame_state, points_state, prompt_frame, points_md], **light)
    wire_job(runtime, run, on_run, [video, audio, seed, k_audio, k_ref, i_audio, i_ref, full, size, points_state,
                                    prompt_frame], [output, report], report, api_name="dub")
