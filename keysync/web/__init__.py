"""``keysync demo``: a local web page (Gradio) for dubbing (KeySync) and animation (KeyFace).

* :mod:`keysync.web.config` -- what ``keysync demo`` is started with;
* :mod:`keysync.web.offline` -- environment and theme that keep Gradio off the network
  (analytics off, system fonts, no share tunnel unless asked);
* :mod:`keysync.web.runtime` -- the models the page runs (loaded once) and what it says about them;
* :mod:`keysync.web.dub_job` / :mod:`keysync.web.animate_job` -- one job each, Gradio-free
  (checks, options, the pipeline call); :mod:`keysync.web.media_prep` -- frames for occlusion
  clicks, downscaling;
* :mod:`keysync.web.errors` -- exceptions → the one-line message the page shows;
* :mod:`keysync.web.progress` -- per-stage progress on the page;
* :mod:`keysync.web.dub_tab` / :mod:`keysync.web.animate_tab` -- the two tabs;
  :mod:`keysync.web.events` -- how their job buttons are wired (queue, errors);
* :mod:`keysync.web.app` -- the page, its queue (one job at a time on the device) and ``launch``.

Gradio is an optional dependency (``pip install -e .[web]``); nothing here imports it at
package import time.
"""

from keysync.web.config import DemoConfig

__all__ = ["DemoConfig"]
