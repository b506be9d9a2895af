"""Per-stage progress on the page: a :class:`~keysync.web.dub_job.Reporter` over ``gr.Progress``.

The event handlers take ``gr.Progress(track_tqdm=True)``: Gradio then shows the pipeline's own
tqdm bars (landmarks per frame, sampler calls, and the denoising steps of each call once
:func:`show_sampler_steps` has switched the samplers' step bars on). This reporter adds the stages
that have no bar (input checks, audio features and encoding) and the output frames as they are
written.
"""

from __future__ import annotations

from keysync.web.dub_job import Reporter


class GradioReporter(Reporter):
    def __init__(self, progress):
        self.progress = progress
        self._last = -1

    def stage(self, text: str) -> None:
        self.progress(None, desc=text)

    def frames(self, done: int, total: int) -> None:
        step = max(1, total // 50)  # ~50 updates per job, not one per frame
        if done == total or done - self._last >= step:
            self._last = done
            self.progress((done, total), desc="writing frames", unit="frames")


def show_sampler_steps(*engines) -> None:
    """Switch on the per-step tqdm bar of each diffusion engine's sampler (``sampler.verbose``)."""
    for engine in engines:
        sampler = getattr(engine, "sampler", None)
        if sampler is not None and hasattr(sampler, "verbose"):
            sampler.verbose = True
