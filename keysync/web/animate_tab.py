"""The Animate tab: a face image, speech and an emotion in, a talking-face video out (KeyFace)."""

# no `from __future__ import annotations`: Gradio reads the `gr.Request` annotation at run time
from keysync.web.animate_job import AnimateSettings
from keysync.web.dub_job import result_markdown
from keysync.web.events import job_error, wire_job
from keysync.web.offline import import_gradio
from keysync.web.progress import GradioReporter

FULL_LENGTH_INFO = "off: reference_compat (the original KeyFace loop: 45 s cap, its tail handling)"


def build_animate_tab(runtime, examples: list[list[str]]) -> None:
    """Add the tab's components and events to the enclosing ``gr.Blocks``."""
    gr = import_gradio()
    backend = runtime.animation
    if not backend.available:
        gr.Markdown(f"**Note:** KeyFace animation is {backend.status}.", elem_id="animate_unavailable")
    with gr.Row():
        with gr.Column():
            image = gr.Image(label="Face image", sources=["upload"], type="filepath", elem_id="animate_image")
            audio = gr.Audio(label="Speech", sources=["upload"], type="filepath", elem_id="animate_audio")
            emotion = gr.Dropdown(backend.emotion_states, value=["neutral"], multiselect=True, label="Emotion",
                                  info="one state, or several: interpolated over the clip")
            if examples and backend.available:
                gr.Examples(examples=examples, inputs=[image, audio, emotion], label="Example (click to load)")
            with gr.Accordion("Options", open=False):
                accentuate = gr.Checkbox(value=False, label="Accentuate the emotion (×1.5)")
                seed = gr.Number(value=23, precision=0, label="Seed")
                full = gr.Checkbox(value=True, label="Keep full length", info=FULL_LENGTH_INFO)
            run = gr.Button("Animate", variant="primary", elem_id="animate_run", interactive=backend.available)
        with gr.Column():
            output = gr.Video(label="Animated video", interactive=False, elem_id="animate_output",
                              buttons=["download"])
            report = gr.Markdown(elem_id="animate_report")

    def on_run(image_path, audio_path, emotions, accent, seed_v, full_v, request: gr.Request,
               progress=gr.Progress(track_tqdm=True)):
        if isinstance(emotions, str):
            emotions = [emotions]
        settings = AnimateSettings(emotions=list(emotions or []), accentuate=bool(accent),
                                   seed=int(seed_v if seed_v is not None else 23), full_length=bool(full_v))
        try:
            result = backend.run(image_path, audio_path, settings, runtime.config.output_dir,
                                 runtime.config.max_seconds, GradioReporter(progress))
        except Exception as err:  # noqa: BLE001 - every failure becomes a message in the page
            raise job_error(runtime, request, err, {"image": image_path, "audio": audio_path}) from None
        return str(result.output), result_markdown(result)

    wire_job(runtime, run, on_run, [image, audio, emotion, accentuate, seed, full], [output, report], report,
             api_name="animate")
