"""Tests of keysync.media video I/O and error handling, on tiny media generated with ffmpeg."""

from __future__ import annotations

import os
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from keysync.media import (CorruptMediaError, EmptyMediaError, FFmpegNotFoundError, MediaError,
                           MediaNotFoundError, MissingDependencyError, NoAudioStreamError,
                           NotAFileError, NoVideoStreamError, convert_fps, iter_video_frames,
                           probe_audio, probe_video, read_audio, read_video, write_video)
from keysync.media import _decoders

# ffmpeg, ffprobe and PyAV are installed by scripts/install.sh; without them these tests fail.
BACKENDS = ["pyav", "ffmpeg"]


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def dominant_freq(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)])


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    m = {k: str(d / k) for k in ("v25.mp4", "v30.mp4", "silent.mp4", "gop.mp4", "v25.mkv",
                                 "trunc.mp4", "trunc_faststart.mp4", "empty.mp4", "audio.m4a")}
    sine = "sine=frequency=440:sample_rate=44100:duration=2"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25:duration=2", "-f", "lavfi", "-i", sine,
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2", "-shortest", m["v25.mp4"])
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30:duration=2", "-f", "lavfi", "-i", sine,
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", m["v30.mp4"])
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25:duration=1", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", m["silent.mp4"])
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=32x32:rate=25:duration=4", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", "-g", "7", "-bf", "2", m["gop.mp4"])
    ffmpeg("-i", m["v25.mp4"], "-c", "copy", m["v25.mkv"])  # mkv: header has no frame count
    ffmpeg("-i", m["v25.mp4"], "-vn", "-c:a", "copy", m["audio.m4a"])
    ffmpeg("-i", m["v25.mp4"], "-c", "copy", "-movflags", "+faststart", d / "fs.mp4")
    for src, dst in ((m["v25.mp4"], "trunc.mp4"), (str(d / "fs.mp4"), "trunc_faststart.mp4")):
        data = open(src, "rb").read()
        with open(m[dst], "wb") as f:
            f.write(data[: len(data) // 2])
    open(m["empty.mp4"], "wb").close()
    m["dir"] = str(d)
    return m


# ----------------------------------------------------------------------------- probe / read
@pytest.mark.parametrize("backend", BACKENDS)
def test_probe_fps_counts(media, backend):
    i25 = probe_video(media["v25.mp4"], backend=backend)
    assert (i25.fps, i25.fps_fraction, i25.num_frames, i25.width, i25.height) == (25.0, Fraction(25), 50, 64, 64)
    assert i25.has_audio and i25.audio_channels == 2 and i25.audio_sample_rate == 44100
    assert i25.duration == pytest.approx(2.0, abs=0.05)
    i30 = probe_video(media["v30.mp4"], backend=backend)
    assert (i30.fps, i30.num_frames, i30.width, i30.height) == (30.0, 60, 64, 48)
    assert not probe_video(media["silent.mp4"], backend=backend).has_audio
    mkv = probe_video(media["v25.mkv"], backend=backend)
    assert mkv.num_frames == 50 and mkv.frames_counted


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_video_counts_and_slices(media, backend):
    for name, n, hw, fps in (("v25.mp4", 50, (64, 64), 25.0), ("v30.mp4", 60, (48, 64), 30.0)):
        frames, got_fps = read_video(media[name], backend=backend)
        assert frames.shape == (n, *hw, 3) and frames.dtype == np.uint8 and got_fps == fps
    full, _ = read_video(media["v25.mp4"], backend=backend)
    part, _ = read_video(media["v25.mp4"], start=17, num_frames=9, backend=backend)
    np.testing.assert_array_equal(part, full[17:26])
    tail, _ = read_video(media["v25.mp4"], start=45, num_frames=100, backend=backend)
    np.testing.assert_array_equal(tail, full[45:])
    assert read_video(media["v25.mp4"], start=80, backend=backend)[0].shape == (0, 64, 64, 3)
    assert read_video(media["v25.mp4"], num_frames=0, backend=backend)[0].shape == (0, 64, 64, 3)


def test_backends_agree_and_resize(media):
    a, _ = read_video(media["v30.mp4"], backend="pyav")
    b, _ = read_video(media["v30.mp4"], backend="ffmpeg")
    np.testing.assert_array_equal(a, b)  # same swscale RGB conversion at native size
    ra, _ = read_video(media["v30.mp4"], size=(32, 40), backend="pyav")
    rb, _ = read_video(media["v30.mp4"], size=(32, 40), backend="ffmpeg")
    assert ra.shape == rb.shape == (60, 32, 40, 3)
    sq, _ = read_video(media["v25.mp4"], size=16)
    assert sq.shape == (50, 16, 16, 3)


def test_seek_matches_sequential_decode(media, monkeypatch):
    full, _ = read_video(media["gop.mp4"], seek=False)
    assert full.shape[0] == 100
    for start in (1, 13, 50, 71, 99):
        got, _ = read_video(media["gop.mp4"], start=start, num_frames=6, seek=True)
        np.testing.assert_array_equal(got, full[start:start + 6])
    monkeypatch.setattr(_decoders, "AUTO_SEEK_MIN_FRAMES", 10)
    np.testing.assert_array_equal(read_video(media["gop.mp4"], start=60)[0], full[60:])


@pytest.mark.parametrize("backend", BACKENDS)
def test_iter_video_frames_chunks(media, backend):
    chunks = list(iter_video_frames(media["v25.mp4"], chunk=16, backend=backend))
    assert [c.shape[0] for c in chunks] == [16, 16, 16, 2]
    np.testing.assert_array_equal(np.concatenate(chunks), read_video(media["v25.mp4"], backend=backend)[0])
    it = iter_video_frames(media["v25.mp4"], chunk=4, backend=backend)
    assert next(it).shape == (4, 64, 64, 3)
    it.close()  # stopping early releases the decoder / kills ffmpeg


def test_convert_fps_30_to_25_keeps_audio(media, tmp_path):
    out = convert_fps(media["v30.mp4"], tmp_path / "sub" / "c25.mp4", fps=25)
    info = probe_video(out)
    assert info.fps == 25.0 and abs(info.num_frames - 50) <= 1 and info.has_audio
    assert read_video(out)[0].shape[0] == info.num_frames
    audio = read_audio(out)
    assert abs(len(audio) - 32000) <= 1024
    assert dominant_freq(audio, 16000) == pytest.approx(440, abs=3)
    same = convert_fps(media["silent.mp4"], tmp_path / "s25.mp4", fps=25)
    assert probe_video(same).num_frames == 25 and not probe_video(same).has_audio
    assert sorted(os.listdir(tmp_path)) == ["s25.mp4", "sub"]


# ----------------------------------------------------------------------------- errors
def test_missing_dir_and_empty_files(media, tmp_path):
    missing = str(tmp_path / "nope.mp4")
    for fn in (read_video, probe_video, read_audio):
        with pytest.raises(MediaNotFoundError, match="nope.mp4"):
            fn(missing)
        with pytest.raises(NotAFileError, match="directory"):
            fn(media["dir"])
        with pytest.raises(EmptyMediaError, match=r"empty\.mp4.*empty \(0 bytes\)"):
            fn(media["empty.mp4"])
    with pytest.raises(FileNotFoundError):
        read_video(missing)
    with pytest.raises(IsADirectoryError):
        read_audio(media["dir"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_mp4(media, backend):
    for name in ("trunc.mp4", "trunc_faststart.mp4"):
        with pytest.raises(CorruptMediaError, match=name.replace(".", r"\.")):
            read_video(media[name], backend=backend)
        with pytest.raises(CorruptMediaError, match=name.replace(".", r"\.")):
            read_audio(media[name])
    with pytest.raises(CorruptMediaError, match="trunc.mp4"):
        probe_video(media["trunc.mp4"], backend=backend)


def test_no_audio_and_no_video_streams(media, tmp_path):
    with pytest.raises(NoAudioStreamError, match=r"silent\.mp4.*no audio stream"):
        read_audio(media["silent.mp4"])
    with pytest.raises(NoAudioStreamError):
        probe_audio(media["silent.mp4"])
    with pytest.raises(NoVideoStreamError, match=r"audio\.m4a.*no video stream"):
        read_video(media["audio.m4a"])
    frames = np.zeros((3, 16, 16, 3), np.uint8)
    with pytest.raises(NoAudioStreamError):
        write_video(tmp_path / "x.mp4", frames, audio_path=media["silent.mp4"])
    assert os.listdir(tmp_path) == []


def test_ffmpeg_missing_from_path(media, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("KEYSYNC_FFMPEG", raising=False)
    monkeypatch.delenv("KEYSYNC_FFPROBE", raising=False)
    with pytest.raises(FFmpegNotFoundError, match=r"(?s)not found on PATH.*v25\.mp4.*apt-get install ffmpeg"):
        read_audio(media["v25.mp4"])
    with pytest.raises(FFmpegNotFoundError, match="install"):
        read_video(media["v25.mp4"], backend="ffmpeg")
    with pytest.raises(FFmpegNotFoundError):
        write_video(tmp_path / "o.mp4", np.zeros((2, 8, 8, 3), np.uint8))
    assert not (tmp_path / "o.mp4").exists()
    monkeypatch.setenv("KEYSYNC_FFMPEG", str(tmp_path / "no-ffmpeg"))
    with pytest.raises(FFmpegNotFoundError, match="KEYSYNC_FFMPEG"):
        convert_fps(media["v25.mp4"], tmp_path / "c.mp4")


def test_pyav_missing(media, monkeypatch):
    monkeypatch.setattr(_decoders, "import_av", lambda: None)
    with pytest.raises(MissingDependencyError, match="pip install av"):
        read_video(media["v25.mp4"], backend="pyav")
    assert read_video(media["v25.mp4"])[0].shape == (50, 64, 64, 3)  # auto falls back to ffmpeg
    assert isinstance(MissingDependencyError("x"), (MediaError, ImportError))


# ----------------------------------------------------------------------------- writing
def smooth_frames(n: int, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.arange(n, dtype=np.float32)[:, None, None]
    r = 128 + 60 * np.sin(xx / w * 2 * np.pi + t * 0.2)
    g = 128 + 60 * np.cos(yy / h * 2 * np.pi)
    b = np.broadcast_to(80 + yy + xx * 0 + t * 0, r.shape)
    return np.stack([r, np.broadcast_to(g, r.shape), b], -1).round().astype(np.uint8)


def test_write_video_round_trip(tmp_path):
    frames = smooth_frames(30, 64, 80)
    tt = np.arange(int(1.2 * 16000)) / 16000
    audio = (0.5 * np.sin(2 * np.pi * 440 * tt)).astype(np.float32)
    out = write_video(tmp_path / "rt.mp4", frames, fps=25, audio=audio, sample_rate=16000)
    info = probe_video(out)
    assert (info.num_frames, info.width, info.height, info.fps) == (30, 80, 64, 25.0)
    assert info.has_audio and info.audio_sample_rate == 16000
    back, fps = read_video(out)
    diff = np.abs(back.astype(np.int16) - frames)
    assert fps == 25.0 and diff.mean() < 2.5 and diff.max() < 16  # 4:2:0 chroma + h264 loss
    a = read_audio(out)
    assert abs(len(a) - len(audio)) <= 1024  # AAC pads to whole 1024-sample blocks
    assert dominant_freq(a, 16000) == pytest.approx(440, abs=3)
    assert os.listdir(tmp_path) == ["rt.mp4"]


def test_write_video_iterator_odd_dims_and_audio_path(media, tmp_path):
    frames = smooth_frames(12, 33, 45)
    out = write_video(tmp_path / "odd.mp4", (f for f in frames), fps="30000/1001",
                      audio_path=media["audio.m4a"], shortest=True)
    info = probe_video(out)
    assert (info.num_frames, info.width, info.height) == (12, 46, 34) and info.has_audio
    assert info.fps_fraction == Fraction(30000, 1001)
    back, _ = read_video(out)
    np.testing.assert_allclose(back[:, :33, :45], frames, atol=16)
    np.testing.assert_allclose(back[:, 33, :45], frames[:, 32], atol=16)  # padded row repeats the last one
    cropped = write_video(tmp_path / "crop.mkv", [frames[:5], frames[5:]], odd_dims="crop")
    i2 = probe_video(cropped)
    assert (i2.num_frames, i2.width, i2.height, i2.has_audio) == (12, 44, 32, False)


def test_write_video_is_atomic(tmp_path):
    frames = smooth_frames(10, 32, 32)

    def failing():
        for k, f in enumerate(frames):
            if k == 6:
                raise RuntimeError("generator failed mid-write")
            yield f

    dst = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="mid-write"):
        write_video(dst, failing(), fps=25)
    assert os.listdir(tmp_path) == []  # no destination, no temporary file

    write_video(dst, frames, fps=25)
    before = dst.read_bytes()
    with pytest.raises(RuntimeError, match="mid-write"):
        write_video(dst, failing(), fps=25, audio=np.zeros(16000, np.float32))
    bad = [frames[0], frames[1].astype(np.float32)]
    with pytest.raises(TypeError, match="uint8"):
        write_video(dst, iter(bad))
    with pytest.raises(ValueError, match="shape"):
        write_video(dst, [frames[0], frames[1, :16]])
    with pytest.raises(EmptyMediaError):
        write_video(dst, [])
    assert dst.read_bytes() == before and os.listdir(tmp_path) == ["out.mp4"]
    assert read_video(dst)[0].shape == (10, 32, 32, 3)
