"""Tests of keysync.media audio decoding/writing on tiny files made with ffmpeg, sox and espeak-ng."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from keysync.media import (SAMPLES_PER_FRAME, CorruptMediaError, EmptyMediaError, audio_to_frames,
                           probe_audio, read_audio, read_audio_native, write_audio)

# ffmpeg, sox and espeak-ng are installed by scripts/install.sh; without them these tests fail.
SPF = SAMPLES_PER_FRAME  # 640 samples = one 25 fps video frame at 16 kHz


def ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *map(str, args)], check=True)


def peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio")
    f = {k: d / k for k in ("stereo44k.mp3", "tone48k.m4a", "tone.flac", "tone.wav", "av.mp4",
                            "lr.wav", "trunc.wav", "empty.wav")}
    sine = "sine=frequency=440:sample_rate=44100:duration=2"
    ffmpeg("-f", "lavfi", "-i", sine, "-af", "pan=stereo|c0=c0|c1=c0", "-c:a", "libmp3lame", "-b:a", "128k", f["stereo44k.mp3"])
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1.5", "-c:a", "aac", f["tone48k.m4a"])
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=660:sample_rate=22050:duration=1", f["tone.flac"])
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=32x32:rate=25:duration=1.2",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=1.2",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", f["av.mp4"])
    # left 440 Hz, right 1000 Hz, 44.1 kHz 16-bit
    subprocess.run(["sox", "-n", "-r", "44100", "-b", "16", "-c", "2", str(f["lr.wav"]),
                    "synth", "1", "sine", "440", "sine", "1000", "gain", "-6"], check=True)
    subprocess.run(["sox", "-n", "-r", "16000", "-b", "16", "-c", "1", str(f["tone.wav"]),
                    "synth", "1.5", "sine", "300", "gain", "-3"], check=True)
    data = f["tone.wav"].read_bytes()
    f["trunc.wav"].write_bytes(data[: len(data) // 3])
    f["empty.wav"].write_bytes(b"")
    f["speech.wav"] = d / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(f["speech.wav"]), "hello, this is a lip sync test"], check=True)
    return f


def test_stereo_mp3_to_16k_mono(files):
    x = read_audio(files["stereo44k.mp3"])
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - 32000) <= SPF
    assert peak_hz(x, 16000) == pytest.approx(440, abs=2)
    assert 0.1 < np.abs(x).max() < 0.15  # lavfi sine amplitude is 1/8
    native, sr = read_audio_native(files["stereo44k.mp3"])
    assert sr == 44100 and native.shape[0] == 2 and abs(native.shape[1] - 88200) <= 1764
    np.testing.assert_array_equal(read_audio(files["stereo44k.mp3"], sample_rate=None), native.mean(0))
    info = probe_audio(files["stereo44k.mp3"])
    assert (info.sample_rate, info.channels, info.codec) == (44100, 2, "mp3")


@pytest.mark.parametrize("name,seconds,hz", [("tone48k.m4a", 1.5, 440), ("tone.flac", 1.0, 660),
                                             ("tone.wav", 1.5, 300), ("av.mp4", 1.2, 440)])
def test_formats_and_video_track(files, name, seconds, hz):
    x = read_audio(files[name])
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - seconds * 16000) <= SPF
    assert peak_hz(x, 16000) == pytest.approx(hz, abs=2)


def test_channels_native_and_mean(files):
    lr, sr = read_audio_native(files["lr.wav"])
    assert sr == 44100 and lr.shape == (2, 44100) and lr.dtype == np.float32
    assert peak_hz(lr[0], sr) == pytest.approx(440, abs=2) and peak_hz(lr[1], sr) == pytest.approx(1000, abs=2)
    np.testing.assert_array_equal(lr * 32768, np.round(lr * 32768))  # int16 / 32768 exactly
    mono_native = read_audio(files["lr.wav"], sample_rate=None)
    np.testing.assert_array_equal(mono_native, (lr[0] + lr[1]) / 2)
    both = read_audio(files["lr.wav"], mono=False)
    assert both.shape == (2, 16000)
    np.testing.assert_allclose(read_audio(files["lr.wav"]), both.mean(0), atol=1e-6)
    assert peak_hz(both[1], 16000) == pytest.approx(1000, abs=2)


def test_offset_and_duration(files):
    full = read_audio(files["tone.wav"])
    part = read_audio(files["tone.wav"], offset=0.5, duration=0.25)
    assert len(part) == 4000
    np.testing.assert_allclose(part, full[8000:12000], atol=1e-6)
    assert read_audio(files["tone.wav"], offset=5.0).shape == (0,)


def test_espeak_speech(files):
    native, sr = read_audio_native(files["speech.wav"], mono=True)
    x = read_audio(files["speech.wav"])
    assert sr == 22050 and native.ndim == 1
    assert abs(len(x) - len(native) * 16000 / sr) <= 2
    assert len(x) > 16000 and np.sqrt(np.mean(x ** 2)) > 0.01
    frames = audio_to_frames(x)
    assert frames.shape == (-(-len(x) // 640), 640)


def test_broken_audio_files(files):
    with pytest.raises(CorruptMediaError, match=r"trunc\.wav.*truncated"):
        read_audio(files["trunc.wav"])
    with pytest.raises(EmptyMediaError, match=r"empty\.wav"):
        read_audio_native(files["empty.wav"])
    junk = files["tone.wav"].parent / "junk.mp3"
    junk.write_bytes(os.urandom(64))
    with pytest.raises(CorruptMediaError, match=r"junk\.mp3"):
        read_audio(junk)


def test_write_audio_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    grid = (rng.integers(-32768, 32768, size=(2, 3000)) / 32768).astype(np.float32)
    out = write_audio(tmp_path / "sub" / "s.wav", grid, 44100)
    back, sr = read_audio_native(out)
    assert sr == 44100
    np.testing.assert_array_equal(back, grid)  # PCM16 is exact on the int16/32768 grid
    x = rng.uniform(-1.5, 1.5, 5000).astype(np.float32)
    write_audio(tmp_path / "f.wav", x, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(read_audio(tmp_path / "f.wav"), x)  # float WAV is lossless
    write_audio(tmp_path / "c.wav", x, 16000)
    clipped = read_audio(tmp_path / "c.wav")
    assert clipped.max() <= 32767 / 32768 and clipped.min() >= -1.0
    np.testing.assert_allclose(clipped, np.clip(x, -1, 32767 / 32768), atol=1 / 32768)
    ints = (grid * 32768).astype(np.int16)
    write_audio(tmp_path / "i.wav", ints, 8000)
    np.testing.assert_array_equal(read_audio_native(tmp_path / "i.wav")[0], grid)
    with pytest.raises(ValueError, match="channels"):
        write_audio(tmp_path / "bad.wav", grid.T, 16000)
    assert sorted(os.listdir(tmp_path)) == ["c.wav", "f.wav", "i.wav", "sub"]


def test_audio_to_frames():
    x = np.arange(1300, dtype=np.float32)
    fr = audio_to_frames(x)
    assert fr.shape == (3, 640) and fr[1, 0] == 640 and fr[2, 19] == 1299 and fr[2, 20:].sum() == 0
    assert audio_to_frames(np.zeros(1280, np.float32)).shape == (2, 640)


REFERENCE_LOADING = Path(__file__).parent / "data" / "reference" / "audio_loading.safetensors"


def test_matches_reference_loading(tmp_path):
    """int16 WAVs decode to exactly what torchaudio.load gave the original code (int16/32768),
    and the no-resampling mono mix equals the reference channel mean."""
    from safetensors.numpy import load_file

    ref = load_file(str(REFERENCE_LOADING))
    write_audio(tmp_path / "s44.wav", ref["in_stereo44k_int16"], 44100)
    native, sr = read_audio_native(tmp_path / "s44.wav")
    assert sr == 44100
    np.testing.assert_array_equal(native, ref["in_stereo44k"])
    write_audio(tmp_path / "s16.wav", ref["in_stereo16k"], 16000)
    np.testing.assert_array_equal(read_audio(tmp_path / "s16.wav"), ref["stereo16k_loaded"][0])
    write_audio(tmp_path / "m16.wav", ref["in_mono16k_201f_int16"], 16000)
    np.testing.assert_array_equal(read_audio(tmp_path / "m16.wav"),
                                  ref["in_mono16k_201f_int16"].astype(np.float32) / 32768)
