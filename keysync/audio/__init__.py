"""Audio front end: loading rules, resampling, speech encoders, frame alignment.

Waveforms are 16 kHz mono float32; features are ``(F, 2, D)`` for ``F`` video frames
at 25 fps (2 tokens of 20 ms per frame). transformers is imported lazily (only when a
model is loaded), so the loading / alignment functions work without it.
"""

from .alignment import (
    FPS,
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    aligned_chunk_plan,
    calculate_splits,
    nearest_resize_tokens,
    num_tokens,
    pad_frames_to_even,
    pair_tokens_zero_pad,
)
from .encoders import HubertEncoder, SpeechEncoder, Wav2Vec2Encoder, WavLMEncoder, load_audio_encoder
from .loading import (
    ReferenceSkippedFileError,
    prepare_waveform,
    raw_audio_frames,
    reference_offline_waveform,
    to_mono_16k,
    trim_or_pad,
    video_num_samples,
    zscore_normalize,
)
from .models import load_hubert, load_wav2vec2, load_wavlm
from .resample import resample

__all__ = [
    "FPS",
    "SAMPLE_RATE",
    "SAMPLES_PER_FRAME",
    "aligned_chunk_plan",
    "calculate_splits",
    "nearest_resize_tokens",
    "num_tokens",
    "pad_frames_to_even",
    "pair_tokens_zero_pad",
    "HubertEncoder",
    "SpeechEncoder",
    "Wav2Vec2Encoder",
    "WavLMEncoder",
    "load_audio_encoder",
    "ReferenceSkippedFileError",
    "prepare_waveform",
    "raw_audio_frames",
    "reference_offline_waveform",
    "to_mono_16k",
    "trim_or_pad",
    "video_num_samples",
    "zscore_normalize",
    "load_hubert",
    "load_wav2vec2",
    "load_wavlm",
    "resample",
]
