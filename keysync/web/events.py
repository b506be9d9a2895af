"""How a job button is wired: clear the report, run the job in the device queue (one job at a
time, shared by both tabs), and write a failure's message into the page.

A failing job raises ``gr.Error`` with the message (Gradio's pop-up) and also posts it on the
runtime's :class:`~keysync.web.errors.ErrorBoard`; a ``failure`` follow-up event writes it into the
tab's report area, which stays visible (the pop-up does not render in every state of the page).
"""

# no `from __future__ import annotations`: Gradio reads the `gr.Request` annotation at run time
from keysync.web.errors import error_markdown, user_message
from keysync.web.offline import import_gradio

#: the queue slot every model job shares.
DEVICE_QUEUE = "device"


def job_error(runtime, request, err: BaseException, uploads: dict):
    """The ``gr.Error`` to raise for ``err`` (message posted for the session's report area)."""
    gr = import_gradio()
    message = user_message(err, uploads)
    runtime.errors.post(getattr(request, "session_hash", None), message)
    return gr.Error(message, duration=None, print_exception=False)


def wire_job(runtime, button, fn, inputs, outputs, report, api_name: str) -> None:
    """``button`` → clear ``report`` → ``fn(*inputs)`` into ``outputs`` (queued on the device) →
    on failure, the error message into ``report``. The job is the page's API endpoint ``api_name``."""
    gr = import_gradio()

    def clear():
        return ""

    def show_error(request: gr.Request):
        return error_markdown(runtime.errors.take(getattr(request, "session_hash", None)))

    light = {"concurrency_limit": None, "show_progress": "hidden", "api_visibility": "undocumented"}
    job = button.click(clear, None, report, **light).then(fn, inputs, outputs, concurrency_limit=1,
                                                          concurrency_id=DEVICE_QUEUE, api_name=api_name)
    job.failure(show_error, None, report, **light)
