"""A synthetic talking-face world where the right mouth for any audio is known.

Faces are drawn from a 68-point iBUG layout (so landmarks come from the generator, exact) with
varied identities (face shape, skin tone, eyes, hair, background), small smooth head motion, and
a mouth whose **opening** and **width** are functions of the speech at that frame:

* opening = the frame's RMS level mapped from [``silence_db``, ``silence_db`` + ``range_db``] to
  [0, 1], lightly smoothed; frames quieter than ``silence_db`` have a closed mouth (0);
* width = 0.8 + 0.4 · (normalised spectral centroid): brighter sounds spread the lips.

Frames are 25 fps, one per 640 samples of 16 kHz audio (the models' timeline). Everything is
numpy/cv2, deterministic for a seed. :func:`read_mouth_opening` measures the opening back from
pixels (dark mouth interior inside the landmark mouth box), for evaluating generated videos.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from keysync.data.synthetic import face_landmarks

SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = 640
MOUTH_INTERIOR = (25, 10, 15)  # RGB of the open mouth's inside: darker than any skin tone
FULL_OPENING = 0.12 / 0.43  # interior height at opening 1, in face heights (nose bridge to chin)


@dataclass(frozen=True)
class Identity:
    """Appearance of one synthetic person (colours RGB 0-255, sizes relative to the frame)."""

    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    iris: tuple[int, int, int]
    lips: tuple[int, int, int]
    background: tuple[int, int, int]
    face_width: float  # horizontal scale of the face template (0.9-1.1)
    face_height: float
    hair_volume: float  # 0 (short) to 1 (big)

    @classmethod
    def random(cls, rng: np.random.Generator) -> "Identity":
        tone = rng.uniform(0.25, 1.0)
        skin = tuple(int(v) for v in np.array([230, 190, 160]) * tone + np.array([20, 15, 10]))
        hair = tuple(int(v) for v in rng.integers(10, 200, 3))
        return cls(skin=skin, hair=hair, iris=tuple(int(v) for v in rng.integers(30, 160, 3)),
                   lips=tuple(int(v) for v in np.clip(np.array(skin) * [0.8, 0.5, 0.5] + [30, 0, 0], 40, 255)),
                   background=tuple(int(v) for v in rng.integers(40, 230, 3)),
                   face_width=float(rng.uniform(0.9, 1.1)), face_height=float(rng.uniform(0.92, 1.08)),
                   hair_volume=float(rng.uniform(0, 1)))


def mouth_parameters(audio: np.ndarray, silence_db: float = -45.0, range_db: float = 30.0,
                     smooth: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """16 kHz mono float audio → per-frame (opening, width), each (F,), F = ceil(samples / 640)."""
    audio = np.asarray(audio, dtype=np.float64)
    n = max(1, int(np.ceil(len(audio) / SAMPLES_PER_FRAME)))
    frames = np.zeros(n * SAMPLES_PER_FRAME)
    frames[: len(audio)] = audio
    frames = frames.reshape(n, SAMPLES_PER_FRAME)
    rms_db = 20 * np.log10(np.sqrt((frames**2).mean(1)) + 1e-8)
    opening = np.clip((rms_db - silence_db) / range_db, 0.0, 1.0)
    if smooth > 1:
        opening = np.convolve(np.pad(opening, smooth // 2, mode="edge"), np.ones(smooth) / smooth, "valid")
    opening[rms_db < silence_db] = 0.0
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(SAMPLES_PER_FRAME), axis=1))
    freqs = np.fft.rfftfreq(SAMPLES_PER_FRAME, 1 / SAMPLE_RATE)
    centroid = (spectrum * freqs).sum(1) / (spectrum.sum(1) + 1e-8)
    width = 0.8 + 0.4 * np.clip((centroid - 500.0) / 2500.0, 0.0, 1.0)
    width[opening == 0] = 1.0
    return opening.astype(np.float32), width.astype(np.float32)


def world_landmarks(identity: Identity, size: int, opening: float, width: float,
                    shift: tuple[float, float] = (0.0, 0.0), scale: float = 1.0) -> np.ndarray:
    """(68, 2) landmarks (x, y pixels) of ``identity`` in a ``size``² frame."""
    pts = face_landmarks(size, size, mouth_open=2.0 * opening)
    centre = np.array([size / 2, size / 2])
    mouth_centre = pts[48:68].mean(0)
    pts[48:68] = mouth_centre + (pts[48:68] - mouth_centre) * np.array([width, 1.0])
    pts = centre + (pts - centre) * np.array([identity.face_width, identity.face_height]) * scale
    return (pts + np.asarray(shift)).astype(np.float32)


def render_frame(identity: Identity, landmarks: np.ndarray, size: int) -> np.ndarray:
    """Draw one (size, size, 3) uint8 RGB frame from ``landmarks`` (anti-aliased, sub-pixel)."""
    img = np.empty((size, size, 3), np.uint8)
    ramp = np.linspace(0.85, 1.1, size)[:, None, None]
    img[:] = np.clip(np.array(identity.background)[None, None] * ramp, 0, 255).astype(np.uint8)
    s = 16  # cv2 sub-pixel shift
    pt = lambda p: (int(round(p[0] * s)), int(round(p[1] * s)))  # noqa: E731
    jaw = landmarks[0:17]
    top = landmarks[17:27, 1].min()
    cx = float(jaw[:, 0].mean())
    half_w = float(jaw[:, 0].max() - jaw[:, 0].min()) / 2
    hair_h = half_w * (0.9 + 0.5 * identity.hair_volume)
    cv2.ellipse(img, pt((cx, top)), (int(half_w * 1.15 * s), int(hair_h * s)), 0, 0, 360, identity.hair, -1,
                cv2.LINE_AA, 4)
    forehead = [(cx + half_w * np.cos(a), top - 0.2 * half_w + 0.6 * half_w * -np.sin(a))
                for a in np.linspace(0, np.pi, 12)]
    face = np.array(list(jaw) + forehead, np.float64)
    cv2.fillPoly(img, [np.round(face * s).astype(np.int32)], identity.skin, cv2.LINE_AA, 4)
    for brow in (landmarks[17:22], landmarks[22:27]):
        cv2.polylines(img, [np.round(brow * s).astype(np.int32)], False, identity.hair, max(1, size // 64),
                      cv2.LINE_AA, 4)
    for eye in (landmarks[36:42], landmarks[42:48]):
        cv2.fillPoly(img, [np.round(eye * s).astype(np.int32)], (245, 245, 245), cv2.LINE_AA, 4)
        c = eye.mean(0)
        cv2.circle(img, pt(c), int(max(1.0, (eye[:, 1].max() - eye[:, 1].min()) * 0.45) * s), identity.iris, -1,
                   cv2.LINE_AA, 4)
    cv2.polylines(img, [np.round(landmarks[27:31] * s).astype(np.int32)], False,
                  tuple(int(v * 0.8) for v in identity.skin), max(1, size // 96), cv2.LINE_AA, 4)
    cv2.fillPoly(img, [np.round(landmarks[48:60] * s).astype(np.int32)], identity.lips, cv2.LINE_AA, 4)
    inner = landmarks[60:68]
    if inner[:, 1].max() - inner[:, 1].min() > 0.5:
        cv2.fillPoly(img, [np.round(inner * s).astype(np.int32)], MOUTH_INTERIOR, cv2.LINE_AA, 4)
    return img


@dataclass
class WorldClip:
    """One clip: frames (F, H, W, 3) uint8 at 25 fps, landmarks (F, 68, 2), audio (F·640,) 16 kHz,
    and the ground-truth mouth ``opening`` / ``width`` (F,)."""

    frames: np.ndarray
    landmarks: np.ndarray
    audio: np.ndarray
    opening: np.ndarray
    width: np.ndarray
    identity: Identity

    def metadata(self) -> dict:
        return {"identity": asdict(self.identity), "fps": 25, "sample_rate": SAMPLE_RATE}


def make_clip(identity: Identity, audio: np.ndarray, size: int = 128, seed: int = 0,
              motion: float = 0.03) -> WorldClip:
    """Render ``identity`` speaking ``audio`` (16 kHz mono) with smooth head motion of about
    ``motion`` · size pixels."""
    rng = np.random.default_rng(seed)
    opening, width = mouth_parameters(audio)
    n = len(opening)
    t = np.arange(n) / 25.0
    f = rng.uniform(0.1, 0.4, 3)
    ph = rng.uniform(0, 2 * np.pi, 3)
    shifts = motion * size * np.stack([np.sin(2 * np.pi * f[0] * t + ph[0]), np.sin(2 * np.pi * f[1] * t + ph[1])], 1)
    scales = 1.0 + 0.5 * motion * np.sin(2 * np.pi * f[2] * t + ph[2])
    lms = np.stack([world_landmarks(identity, size, opening[i], width[i], tuple(shifts[i]), scales[i])
                    for i in range(n)])
    frames = np.stack([render_frame(identity, lms[i], size) for i in range(n)])
    padded = np.zeros(n * SAMPLES_PER_FRAME, np.float32)
    padded[: len(audio)] = audio[: n * SAMPLES_PER_FRAME]
    return WorldClip(frames, lms, padded, opening, width, identity)


def read_mouth_opening(frames: np.ndarray, landmarks: np.ndarray, threshold: int = 60) -> np.ndarray:
    """Mouth opening read from pixels: the dark interior's height inside the mouth box, relative
    to the face height, over the opening a fully open mouth (1.0) has in the generator.

    ``frames`` (F, H, W, 3) uint8, ``landmarks`` (F, 68, 2) of the faces shown (e.g. the source's,
    when the head pose is the source's). Returns (F,) float32, ~0 closed, ~1 fully open.
    """
    out = np.zeros(len(frames), np.float32)
    for i, (frame, lm) in enumerate(zip(frames, landmarks)):
        mouth = lm[48:68]
        x0, x1 = int(np.floor(mouth[:, 0].min())), int(np.ceil(mouth[:, 0].max()))
        face_h = float(lm[8, 1] - lm[27, 1])
        pad = 0.15 * face_h
        y0, y1 = int(np.floor(mouth[:, 1].min() - pad)), int(np.ceil(mouth[:, 1].max() + pad))
        h, w = frame.shape[:2]
        box = frame[max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)].astype(np.int32)
        if box.size == 0:
            continue
        dark = box.max(-1) < threshold
        rows = dark.any(1).sum()
        out[i] = rows / (FULL_OPENING * face_h)
    return np.clip(out, 0, 2).astype(np.float32)


VOICES = ("en", "en+f3", "en+m3", "en-us", "en+f4", "en-us+m2")
WORDS = ("hello", "world", "talking", "faces", "open", "mouth", "quietly", "speaking", "seven", "apple", "river",
         "orange", "window", "music", "yes", "no", "maybe", "tomorrow", "evening", "lip", "sync", "audio")


def speech(rng: np.random.Generator, seconds: float, voice: str | None = None) -> np.ndarray:
    """espeak-ng speech of random words with silent pauses (0.4-1.2 s, and 0.2-0.5 s before the
    first word), 16 kHz mono, exactly ``seconds`` long."""
    import subprocess
    import tempfile

    from keysync.media import read_audio

    voice = voice or str(rng.choice(VOICES))
    lead = np.zeros(int(rng.uniform(0.2, 0.5) * SAMPLE_RATE), np.float32)  # every clip starts silent
    parts, total = [lead], len(lead)
    target = int(seconds * SAMPLE_RATE)
    with tempfile.TemporaryDirectory() as tmp:
        while total < target:
            text = " ".join(rng.choice(WORDS, size=int(rng.integers(2, 6))))
            wav = f"{tmp}/s.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(int(rng.integers(130, 190))), "-w", wav, text],
                           check=True, capture_output=True)
            chunk = read_audio(wav)
            pause = np.zeros(int(rng.uniform(0.4, 1.2) * SAMPLE_RATE), np.float32)
            parts += [chunk, pause]
            total += len(chunk) + len(pause)
    return np.concatenate(parts)[:target].astype(np.float32)


def crop_clip(clip: WorldClip, crop_size: int, crop_scale: float = 2.2) -> tuple[np.ndarray, np.ndarray]:
    """The face crops the dubbing pipeline would take of ``clip`` (same boxes: landmarks →
    :func:`keysync.face.crop.plan_crops`), ``(F, crop_size, crop_size, 3)``, and the landmarks in
    crop pixels ``(F, 68, 2)``."""
    from keysync.face.crop import plan_crops

    size = clip.frames.shape[1:3]
    plan = plan_crops(clip.landmarks, size, out_size=crop_size, scale=crop_scale)
    return plan.crop(clip.frames), plan.to_crop(clip.landmarks).astype(np.float32)


def write_world(root, n_clips: int = 8, seconds: float = 4.0, size: int = 128, seed: int = 0,
                names: list[str] | None = None, crop_size: int | None = None, crop_scale: float = 2.2) -> list:
    """Write ``n_clips`` clips under ``root`` in the dataset layout: ``video_crop/<id>.mp4`` (with
    sound), ``audio/<id>.wav``, ``landmarks_crop/<id>.npy`` (F, 68, 2) and ``mouth/<id>.npz``
    (opening, width). Clip ``i`` has its own identity and voice. With ``crop_size``, the videos
    are the ``crop_size``² face crops of :func:`crop_clip` (what dubbing feeds the models) and the
    landmarks are in crop pixels. Returns the video paths."""
    from pathlib import Path

    from keysync.data.paths import ArtefactLayout
    from keysync.media import write_audio, write_video

    layout = ArtefactLayout(Path(root))
    rng = np.random.default_rng(seed)
    videos = []
    for i in range(n_clips):
        name = names[i] if names else f"id{i:03d}"
        rel = Path(name)
        identity = Identity.random(rng)
        clip = make_clip(identity, speech(rng, seconds, VOICES[i % len(VOICES)]), size, seed=int(rng.integers(1 << 30)))
        for path in (layout.video(rel), layout.audio(rel), layout.landmarks(rel), layout.root / "mouth" / f"{name}.npz"):
            path.parent.mkdir(parents=True, exist_ok=True)
        frames, landmarks = crop_clip(clip, crop_size, crop_scale) if crop_size else (clip.frames, clip.landmarks)
        write_video(layout.video(rel), frames, fps=25, audio=clip.audio, crf=12)
        write_audio(layout.audio(rel), clip.audio)
        np.save(layout.landmarks(rel), landmarks)
        np.savez(layout.root / "mouth" / f"{name}.npz", opening=clip.opening, width=clip.width)
        videos.append(layout.video(rel))
    return videos


def write_dubbing_example(folder, size: int = 192, seconds: float = 4.0, seed: int = 4242) -> dict:
    """A held-out dubbing example in ``folder``: ``face.mp4`` (a new identity speaking its own
    sentence, with sound), ``face_landmarks.npy`` (its exact landmarks, (F, 68, 2) pixels),
    ``speech.wav`` (a different sentence in another voice, the audio to dub with) and
    ``speech_mouth.npz`` (the opening / width that speech calls for). Returns the paths."""
    from pathlib import Path

    from keysync.media import write_audio, write_video

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    source = make_clip(Identity.random(rng), speech(rng, seconds, "en-us+m2"), size, seed=int(rng.integers(1 << 30)))
    driving = speech(rng, seconds, "en+f4")
    opening, width = mouth_parameters(driving)
    paths = {"video": folder / "face.mp4", "landmarks": folder / "face_landmarks.npy",
             "audio": folder / "speech.wav", "mouth": folder / "speech_mouth.npz"}
    write_video(paths["video"], source.frames, fps=25, audio=source.audio, crf=14)
    np.save(paths["landmarks"], source.landmarks)
    write_audio(paths["audio"], driving)
    np.savez(paths["mouth"], opening=opening, width=width, source_opening=source.opening)
    return paths
