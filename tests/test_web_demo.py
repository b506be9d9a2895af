"""The web demo (``keysync demo``) end to end: a real server, a real headless browser, real models.

The server runs in a subprocess with the default models of an empty weights root (the bundled demo
model for dubbing, tiny random-weight KeyFace models for animation) and a guard that refuses and
reports every connection to anything but this machine. Chromium (Debian's ``chromium`` +
``chromium-driver``) drives the page through selenium: the bundled demo example
(``examples/world``, a held-out synthetic face) is dubbed and the result downloaded from the URL
the page plays it from, and its mouth is checked to follow the new speech; a text file uploaded
as the video gives a message in the page.
Screenshots are left in pytest's tmp folder (and ``docs/web_demo.png`` is written when missing or
when ``KEYSYNC_UPDATE_SCREENSHOT=1``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from keysync.data.synthetic_world import read_mouth_opening
from keysync.media import probe_audio, probe_video, read_video
from keysync.web.dub_job import check_length
from keysync.web.errors import DemoInputError, error_markdown, friendly_paths
from keysync.web.media_prep import scaled_size

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
START_TIMEOUT = 240      # import, tiny weights written and loaded, Gradio up (2 busy cores)
JOB_TIMEOUT = 420        # one tiny-model dub of 3.5 s on 2 busy cores (~40 s when idle)
BLOCKED = "KEYSYNC-TEST-NETWORK-BLOCKED"

# Runs in the server process before keysync: any connection or name lookup that leaves this
# machine is refused and reported on stderr.
NETWORK_GUARD = f"""
import socket, sys
_LOCAL = {{"127.0.0.1", "::1", "localhost", "0.0.0.0", "::", None, ""}}
def _report(what):
    print("{BLOCKED}", what, file=sys.stderr, flush=True)
    raise OSError("network access refused in the web demo test: " + repr(what))
_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
def _check(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOCAL:
        _report(address)
def connect(self, address):
    _check(self, address)
    return _connect(self, address)
def connect_ex(self, address):
    _check(self, address)
    return _connect_ex(self, address)
def getaddrinfo(host, *args, **kwargs):
    if host not in _LOCAL and not str(host).startswith("127."):
        _report(host)
    return _getaddrinfo(host, *args, **kwargs)
socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
from keysync.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web_demo")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp / "server.log"
    env = {**os.environ, "GRADIO_TEMP_DIR": str(tmp / "gradio"), "PYTHONUNBUFFERED": "1"}
    args = ["demo", "--port", str(port), "--weights_root", str(tmp / "weights"), "--output_dir", str(tmp / "outputs"),
            "--max_seconds", "20", "--device", "cpu"]
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", NETWORK_GUARD, *args], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the demo server exited with {proc.returncode}:\n{_log_tail(log)}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the demo server did not answer within {START_TIMEOUT} s:\n{_log_tail(log)}")
            time.sleep(1)
        yield {"url": url, "tmp": tmp, "log": log, "outputs": tmp / "outputs"}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert BLOCKED not in log.read_text(errors="replace"), f"the demo tried to reach the network:\n{_log_tail(log)}"


class Browser:
    """Headless Chromium with the page's network requests recorded."""

    def __init__(self, downloads: Path):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        opts = webdriver.ChromeOptions()
        opts.binary_location = str(CHROMIUM)
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--window-size=1400,1500", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-extensions"):
            opts.add_argument(arg)
        opts.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
        opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        self.driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
        self.requests: list[str] = []

    def record_requests(self) -> list[str]:
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg["method"] == "Network.requestWillBeSent":
                self.requests.append(msg["params"]["request"]["url"])
        return self.requests

    def open(self, url: str):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.get(url)
        WebDriverWait(self.driver, 60).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#dub_video input[type=file]"))

    def upload(self, elem_id: str, path: Path):
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=file]").send_keys(str(path))

    def text(self, elem_id: str) -> str:
        from selenium.webdriver.common.by import By

        found = self.driver.find_elements(By.ID, elem_id)
        return found[0].text if found else ""

    def wait(self, condition, timeout: float, what: str, poll=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            if poll is not None:
                poll()
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    for exe in (CHROMIUM, CHROMEDRIVER):
        assert exe.exists(), f"{exe} missing: apt-get install chromium chromium-driver (scripts/install.sh does)"
    b = Browser(tmp_path_factory.mktemp("downloads"))
    yield b
    b.driver.quit()


def _assert_local(browser: Browser, url: str):
    remote = [u for u in browser.record_requests() if not u.startswith((url, "data:", "blob:"))]
    assert not remote, f"the page requested resources from elsewhere: {remote[:10]}"


def _video_src(browser: Browser) -> str | None:
    from selenium.webdriver.common.by import By

    videos = browser.driver.find_elements(By.CSS_SELECTOR, "#dub_output video")
    src = videos[0].get_attribute("src") if videos else None
    return src if src and "/file=" in src else None


def _save_for_docs(png: Path, dst: Path, width: int = 1000):
    import cv2

    image = cv2.imread(str(png))
    h, w = image.shape[:2]
    dst.parent.mkdir(exist_ok=True)
    cv2.imwrite(str(dst), cv2.resize(image, (width, round(h * width / w)), interpolation=cv2.INTER_AREA),
                [cv2.IMWRITE_PNG_COMPRESSION, 9])


def test_dub_the_bundled_example_in_the_browser(server, browser):
    from selenium.webdriver.common.by import By

    url, tmp = server["url"], server["tmp"]
    browser.open(url)
    info = browser.text("model_info")
    assert "Dubbing model (demo)" in info and str(server["outputs"]) in info, info
    browser.upload("dub_video", EXAMPLES / "world" / "face.mp4")
    browser.upload("dub_audio", EXAMPLES / "world" / "speech.wav")
    browser.wait(lambda: browser.driver.find_elements(By.CSS_SELECTOR, "#dub_video video")
                 and browser.driver.find_elements(By.CSS_SELECTOR, "#dub_audio audio, #dub_audio .waveform-container"),
                 60, "the uploads")
    started = time.monotonic()
    browser.driver.find_element(By.ID, "dub_run").click()
    seen: set[str] = set()

    def watch_progress():
        text = browser.text("dub_output")
        if "sampling" in text and not any("sampling" in t for t in seen):
            browser.driver.save_screenshot(str(tmp / "dub_progress.png"))
        seen.add(text)

    src = browser.wait(lambda: _video_src(browser), JOB_TIMEOUT, "the dubbed video", poll=watch_progress)
    job_seconds = time.monotonic() - started
    browser.wait(lambda: "Written:" in browser.text("dub_report"), 30, "the job report")
    browser.driver.save_screenshot(str(tmp / "dub.png"))
    shot = REPO / "docs" / "web_demo.png"
    if not shot.exists() or os.environ.get("KEYSYNC_UPDATE_SCREENSHOT") == "1":
        _save_for_docs(tmp / "dub.png", shot)

    progress = " ".join(seen)
    assert any(stage in progress for stage in ("landmarks", "sampling", "writing frames", "encoding")), \
        f"no stage progress was shown: {sorted(seen)[:5]}"
    download = tmp / "downloaded.mp4"
    with urllib.request.urlopen(src, timeout=60) as r:
        download.write_bytes(r.read())
    video, audio = probe_video(download), probe_audio(download)
    assert (video.num_frames, video.fps, video.width, video.height) == (100, 25.0, 192, 192), video
    assert abs(video.duration - 4.0) < 0.05 and abs(audio.duration - 4.0) < 0.05, (video.duration, audio.duration)
    written = list(server["outputs"].glob("dub_*_face*.mp4"))
    assert len(written) == 1 and probe_video(written[0]).num_frames == 100, written
    # the demo model on its example: the mouth read from the downloaded video follows the new speech
    frames, _ = read_video(download)
    truth = np.load(EXAMPLES / "world" / "speech_mouth.npz")
    read = read_mouth_opening(frames, np.load(EXAMPLES / "world" / "face_landmarks.npy"))
    assert np.corrcoef(read, truth["opening"])[0, 1] > 0.5 > np.corrcoef(read, truth["source_opening"])[0, 1]
    _assert_local(browser, url)
    print(f"dub job in the browser: {job_seconds:.1f} s")


def test_a_text_file_as_the_video_gives_a_message(server, browser):
    from selenium.webdriver.common.by import By

    url, tmp = server["url"], server["tmp"]
    browser.open(url)
    text = tmp / "notes.txt"
    text.write_text("these are meeting notes, not a video\n")
    browser.upload("dub_video", text)  # refused by the page itself (file type)
    browser.wait(lambda: "Invalid file type" in browser.driver.find_element(By.TAG_NAME, "body").text, 30,
                 "the page's file-type warning")
    disguised = tmp / "notes.mp4"  # a text file the page accepts: the server must refuse it
    shutil.copy(text, disguised)
    browser.upload("dub_video", disguised)
    browser.upload("dub_audio", EXAMPLES / "speech.wav")
    browser.wait(lambda: browser.driver.find_elements(By.CSS_SELECTOR, "#dub_video video"), 60, "the upload")
    browser.driver.find_element(By.ID, "dub_run").click()
    message = browser.wait(lambda: browser.text("dub_report"), 120, "the error message")
    browser.driver.save_screenshot(str(tmp / "bad_input.png"))
    assert message.startswith("Error:") and "video (notes.mp4)" in message, message
    assert "not a media file" in message, message
    page = browser.driver.find_element(By.TAG_NAME, "body").text
    assert "Traceback" not in page and str(tmp / "gradio") not in page, page[-2000:]  # no stack, no upload paths
    _assert_local(browser, url)


def _job_message(browser: Browser, url: str, video: Path, audio: Path, before_run=None) -> str:
    """Upload, optionally act on the page, press Dub and return the report's text."""
    from selenium.webdriver.common.by import By

    browser.open(url)
    browser.upload("dub_video", video)
    browser.upload("dub_audio", audio)
    browser.wait(lambda: browser.driver.find_elements(By.CSS_SELECTOR, "#dub_video video"), 60, "the upload")
    if before_run is not None:
        before_run()
    browser.driver.find_element(By.ID, "dub_run").click()
    return browser.wait(lambda: browser.text("dub_report"), 120, "the job's message")


def test_speech_over_the_limit_gives_a_message(server, browser):
    long = server["tmp"] / "long.wav"
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "21",
                    str(long)], check=True)
    message = _job_message(browser, server["url"], EXAMPLES / "face.mp4", long)
    assert message.startswith("Error:") and "21.0 s long" in message and "at most 20 s" in message, message


def test_occlusion_click_without_sam2_says_what_is_missing(server, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver = browser.driver

    def mark_occluder():
        driver.find_element(By.CSS_SELECTOR, "#dub_occlusion button.label-wrap").click()
        browser.wait(lambda: "--sam2_checkpoint" in browser.text("dub_no_sam2"), 30, "the SAM 2 note")
        driver.find_element(By.XPATH, "//button[normalize-space()='Show frame']").click()
        image = browser.wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#dub_occlusion_frame img"), 60,
                             "the frame to click on")[0]
        ActionChains(driver).move_to_element_with_offset(image, 0, image.size["height"] // 4).click().perform()
        browser.wait(lambda: "Occluder marked on frame 0" in driver.find_element(By.TAG_NAME, "body").text, 30,
                     "the marked point")

    message = _job_message(browser, server["url"], EXAMPLES / "face.mp4", EXAMPLES / "speech.wav", mark_occluder)
    driver.save_screenshot(str(server["tmp"] / "occlusion.png"))
    assert message.startswith("Error:") and "SAM 2" in message and "--sam2_checkpoint" in message, message


def test_input_checks_and_messages():
    check_length(20.0, 20)
    with pytest.raises(DemoInputError, match="at most 20 s"):
        check_length(20.5, 20)
    assert scaled_size(1920, 1080, 720) == (1280, 720)
    assert scaled_size(360, 270, 720) is None and scaled_size(360, 270, None) is None
    assert scaled_size(361, 271, 240) == (320, 240)
    message = friendly_paths("'/tmp/gradio/ab12/talk.mp4' is corrupt", {"video": "/tmp/gradio/ab12/talk.mp4"})
    assert message == "'video (talk.mp4)' is corrupt"
    assert error_markdown("a_b *c*") == r"**Error:** a\_b \*c\*"


def test_demo_command_defaults_are_local():
    from keysync.cli.main import build_parser

    args = build_parser().parse_args(["demo"])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7860, "off")
