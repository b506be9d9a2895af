"""Speech feature encoders aligned to 25 fps video: waveform -> ``(F, 2, D)``.

* :class:`HubertEncoder` (KeySync keyframe audio; ``facebook/hubert-base-ls960``) and
  :class:`Wav2Vec2Encoder` (KeyFace interpolation audio; ``facebook/wav2vec2-base-960h``):
  z-normalised waveform, ``2F - 1`` tokens for ``640 F`` samples, one zero token
  appended (the second half of the last frame is exactly zero).
* :class:`WavLMEncoder` (KeySync interpolation / KeyFace keyframe audio; WavLM Base+):
  raw waveform (layer-normalised only for ``cfg.normalize`` checkpoints), frames padded
  to an even ``F'``, the ``2F' - 1`` tokens nearest-resized to ``2F'`` (token 0
  duplicated, every token 20 ms late; SPEC §11.25).

Modes (``mode=``):

``"aligned"`` (default)
    Long audio is encoded in chunks of ``chunk_size`` samples (default 320,000 = 20 s =
    500 frames, the reference's raw-pipeline size; chunk sizes follow the reference's
    ``calculate_splits``, so nothing is split below 40 s and shorter audio gives exactly
    the offline reference features). Chunk boundaries lie on video frames and every chunk
    gets the few extra samples its edge tokens need, so no token is lost or shifted at a
    boundary: the output has the same length and token alignment as an unchunked run.
    Memory is bounded by the chunk size; each chunk has its own attention context.
``"reference_offline"``
    ``scripts/util/get_audio_embeddings.py`` exactly: all loading quirks
    (:func:`keysync.audio.loading.reference_offline_waveform`), one model call unless
    the audio exceeds 2 x 16,000,000 samples (``calculate_splits`` with 16000*1000).
``"reference_rawpipe"``
    ``scripts/sampling/dubbing_pipeline_raw.py``: HuBERT pads first and normalises after,
    and splits at 320,000 samples with ``calculate_splits`` (chunks off the frame grid,
    about one token lost per boundary: 1025 frames -> 1024); WavLM splits the even-padded
    frames at 500 and resizes each chunk on its own (token 0 duplicated per chunk).

Outputs are float32 on the CPU. Models come from :mod:`keysync.audio.models` (local
paths only). Inputs are numpy arrays / tensors with a sample rate; decoding files is
``keysync.media``'s job.
"""

from __future__ import annotations

import logging
from typing import Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from .alignment import (
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    TOKEN_HOP,
    TOKEN_WINDOW,
    aligned_chunk_plan,
    calculate_splits,
    nearest_resize_tokens,
    pad_frames_to_even,
    pair_tokens_zero_pad,
)
from .loading import prepare_waveform, reference_offline_waveform, to_mono_16k

__all__ = [
    "SpeechEncoder",
    "HubertEncoder",
    "Wav2Vec2Encoder",
    "WavLMEncoder",
    "load_audio_encoder",
    "MODES",
]

log = logging.getLogger(__name__)

MODES = ("aligned", "reference_offline", "reference_rawpipe")
_DEFAULT_CHUNK = {"aligned": 16000 * 20, "reference_offline": 16000 * 1000, "reference_rawpipe": 16000 * 20}
ArrayLike = Union[np.ndarray, torch.Tensor]


class SpeechEncoder:
    """Common part: model calls, chunk bookkeeping, progress. Subclasses define
    :meth:`encode`. ``model`` is a transformers ``HubertModel`` / ``Wav2Vec2Model`` /
    ``WavLMModel`` (eval mode); it stays on the device / dtype it is on."""

    kind = "speech"

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        mode: str = "aligned",
        chunk_size: Optional[int] = None,
        show_progress: Optional[bool] = None,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.model = model.eval()
        self.mode = mode
        self.chunk_size = int(chunk_size if chunk_size is not None else _DEFAULT_CHUNK[mode])
        if self.chunk_size < SAMPLES_PER_FRAME:
            raise ValueError(f"chunk_size must be >= {SAMPLES_PER_FRAME} samples, got {chunk_size}")
        self.show_progress = show_progress

    @classmethod
    def from_path(cls, path, *, device="cpu", dtype=torch.float32, config=None, **kwargs):
        """Load the model from a local path (:mod:`keysync.audio.models`) and wrap it."""
        from . import models

        loader = {"hubert": models.load_hubert, "wav2vec2": models.load_wav2vec2,
                  "wavlm": models.load_wavlm}[cls.kind]
        return cls(loader(path, device=device, dtype=dtype, config=config), **kwargs)

    # -- model calls ---------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def feature_dim(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.inference_mode()
    def model_tokens(self, wave: torch.Tensor) -> torch.Tensor:
        """One model call on a 1-D waveform -> ``(T, D)`` last hidden state (float32, CPU)."""
        if wave.shape[-1] < TOKEN_WINDOW:
            raise ValueError(
                f"a model call needs at least {TOKEN_WINDOW} samples, got {wave.shape[-1]}"
            )
        x = wave.reshape(1, -1).to(device=self.device, dtype=self.dtype)
        out = self.model(input_values=x).last_hidden_state[0]
        return out.to(device="cpu", dtype=torch.float32)

    def _progress(self, items: Sequence, desc: str):
        log.debug("%s (%s): %d model call(s)", desc, self.mode, len(items))
        show = self.show_progress if self.show_progress is not None else len(items) > 1
        return tqdm(items, desc=desc, unit="chunk", disable=not show, leave=False)

    def _to_16k(self, audio: ArrayLike, sr: int, channel_axis: int) -> torch.Tensor:
        return to_mono_16k(audio, sr, channel_axis=channel_axis)

    def __call__(self, audio: ArrayLike, sr: int = SAMPLE_RATE, n_frames: Optional[int] = None,
                 **kwargs) -> torch.Tensor:
        return self.encode(audio, sr, n_frames, **kwargs)

    def encode(self, audio, sr=SAMPLE_RATE, n_frames=None, **kwargs) -> torch.Tensor:
        raise NotImplementedError

    def iter_encode(self, audio, sr=SAMPLE_RATE, n_frames=None, **kwargs) -> Iterator[torch.Tensor]:
        """The features of :meth:`encode` as consecutive frame blocks ``(k, 2, D)`` (their
        concatenation *is* ``encode``'s output): one block per model chunk in ``"aligned"``
        mode, so a caller can store long tracks block by block; one block otherwise."""
        yield self.encode(audio, sr, n_frames, **kwargs)


class HubertEncoder(SpeechEncoder):
    """HuBERT features ``(F, 2, D)`` (KeySync ``*_hubert_emb``).

    ``F = n_frames`` when given (audio trimmed / zero-padded to the video), otherwise
    ``ceil(N / 640)``. See the module docstring for ``mode`` and ``chunk_size``.
    """

    kind = "hubert"
    normalize = True

    def encode(
        self,
        audio: ArrayLike,
        sr: int = SAMPLE_RATE,
        n_frames: Optional[int] = None,
        *,
        channel_axis: int = 0,
        reference_rounding: bool = False,
    ) -> torch.Tensor:
        """``audio`` ``(N,)`` or ``(C, N)`` (``channel_axis``) at ``sr`` -> ``(F, 2, D)``.

        ``reference_rounding`` uses the reference's ``int(n/25*16000)`` video length
        (implied by ``mode="reference_offline"``).
        """
        x = self._waveform(audio, sr, n_frames, channel_axis, reference_rounding)
        if self.mode == "aligned":
            return torch.cat(list(self._aligned_blocks(x)))
        sizes = calculate_splits(x.shape[-1], self.chunk_size)
        chunks = torch.split(x, sizes)
        tokens = torch.cat([self.model_tokens(c) for c in self._progress(chunks, self.kind)])
        return pair_tokens_zero_pad(tokens)

    def iter_encode(self, audio, sr=SAMPLE_RATE, n_frames=None, *, channel_axis: int = 0,
                    reference_rounding: bool = False) -> Iterator[torch.Tensor]:
        if self.mode != "aligned":
            yield self.encode(audio, sr, n_frames, channel_axis=channel_axis, reference_rounding=reference_rounding)
            return
        yield from self._aligned_blocks(self._waveform(audio, sr, n_frames, channel_axis, reference_rounding))

    def _waveform(self, audio, sr, n_frames, channel_axis, reference_rounding) -> torch.Tensor:
        if self.mode == "reference_offline":
            return reference_offline_waveform(
                audio, sr, n_video_frames=n_frames, normalize=self.normalize, channel_axis=channel_axis
            )
        return prepare_waveform(
            self._to_16k(audio, sr, channel_axis),
            n_video_frames=n_frames,
            normalize=self.normalize,
            normalize_after_padding=self.mode == "reference_rawpipe",
            reference_rounding=reference_rounding,
        )

    def _aligned_blocks(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        """Per chunk [a, b): its 2(b − a) tokens paired into (b − a, 2, D); the last chunk has one
        token fewer and gets the zero token (``pair_tokens_zero_pad`` of the whole sequence)."""
        n_frames = x.shape[-1] // SAMPLES_PER_FRAME
        for t in self._aligned_token_chunks(x, n_frames):
            yield pair_tokens_zero_pad(t)

    def _aligned_token_chunks(self, x: torch.Tensor, n_frames: int) -> Iterator[torch.Tensor]:
        plan = aligned_chunk_plan(
            n_frames, max(self.chunk_size // SAMPLES_PER_FRAME, 1),
            lead_in=0, lookahead=TOKEN_WINDOW - TOKEN_HOP,
        )
        for a, b, s0, s1 in self._progress(plan, self.kind):
            t = self.model_tokens(x[s0:s1])
            expected = 2 * (b - a) - (1 if b == n_frames else 0)
            if t.shape[0] != expected:
                raise AssertionError(f"chunk [{a}, {b}) gave {t.shape[0]} tokens, expected {expected}")
            yield t


class Wav2Vec2Encoder(HubertEncoder):
    """wav2vec2 features ``(F, 2, D)`` (KeyFace ``*_wav2vec2_emb``): the reference runs
    ``Wav2Vec2ForCTC(...).wav2vec2`` with HuBERT's preprocessing and alignment."""

    kind = "wav2vec2"


class WavLMEncoder(SpeechEncoder):
    """WavLM features ``(F, 2, D)`` (KeySync ``*_wavlm_emb``, KeyFace keyframe audio).

    The frame count is padded to even (one zero frame) before encoding, as in the
    reference; by default the extra frame is dropped again so the output has exactly
    ``F`` frames. ``keep_even_padding=True`` returns the reference's ``F'`` frames.
    ``normalize_waveform`` (None: the checkpoint's ``cfg.normalize``, False for Base+)
    applies the wrapper's ``F.layer_norm(x, x.shape)`` to each model input.
    """

    kind = "wavlm"

    def __init__(self, model, *, normalize_waveform: Optional[bool] = None, **kwargs):
        super().__init__(model, **kwargs)
        if normalize_waveform is None:
            normalize_waveform = bool(getattr(model.config, "normalize_waveform", False))
        self.normalize_waveform = normalize_waveform

    def model_tokens(self, wave: torch.Tensor) -> torch.Tensor:
        if self.normalize_waveform:
            wave = torch.nn.functional.layer_norm(wave, wave.shape)
        return super().model_tokens(wave)

    def encode(
        self,
        audio: ArrayLike,
        sr: int = SAMPLE_RATE,
        n_frames: Optional[int] = None,
        *,
        channel_axis: int = 0,
        reference_rounding: bool = False,
        keep_even_padding: bool = False,
    ) -> torch.Tensor:
        """``audio`` ``(N,)`` or ``(C, N)`` at ``sr`` -> ``(F, 2, D)`` (``F'`` with
        ``keep_even_padding``)."""
        frames, n_video = self._frames(audio, sr, n_frames, channel_axis, reference_rounding)
        if self.mode == "reference_offline":
            out = self._resized(frames, [frames.shape[0]])
        elif self.mode == "reference_rawpipe":
            out = self._resized(frames, calculate_splits(frames.shape[0], self.chunk_size // SAMPLES_PER_FRAME))
        else:
            out = torch.cat(list(self._aligned_blocks(frames)))
        return out if keep_even_padding else out[:n_video]

    def iter_encode(self, audio, sr=SAMPLE_RATE, n_frames=None, *, channel_axis: int = 0,
                    reference_rounding: bool = False, keep_even_padding: bool = False) -> Iterator[torch.Tensor]:
        if self.mode != "aligned":
            yield self.encode(audio, sr, n_frames, channel_axis=channel_axis, reference_rounding=reference_rounding,
                              keep_even_padding=keep_even_padding)
            return
        frames, n_video = self._frames(audio, sr, n_frames, channel_axis, reference_rounding)
        limit = frames.shape[0] if keep_even_padding else n_video
        done = 0
        for block in self._aligned_blocks(frames):
            block = block[:max(limit - done, 0)]
            done += block.shape[0]
            if block.shape[0]:
                yield block

    def _frames(self, audio, sr, n_frames, channel_axis, reference_rounding) -> tuple[torch.Tensor, int]:
        """(F', 640) waveform rows padded to an even count, and the unpadded count F."""
        if self.mode == "reference_offline":
            x = reference_offline_waveform(
                audio, sr, n_video_frames=n_frames, normalize=False, channel_axis=channel_axis
            )
        else:
            x = prepare_waveform(
                self._to_16k(audio, sr, channel_axis),
                n_video_frames=n_frames,
                reference_rounding=reference_rounding,
            )
        frames = x.reshape(-1, SAMPLES_PER_FRAME)
        return pad_frames_to_even(frames), frames.shape[0]

    def _resized(self, frames: torch.Tensor, sizes: List[int]) -> torch.Tensor:
        """Reference wrapper per chunk of frames: model, then nearest resize to 2 x size."""
        outs = []
        for chunk in self._progress(torch.split(frames, sizes), self.kind):
            outs.append(nearest_resize_tokens(self.model_tokens(chunk.reshape(-1)), chunk.shape[0]))
        return torch.cat(outs)

    def _aligned_blocks(self, frames: torch.Tensor) -> Iterator[torch.Tensor]:
        """Per chunk [a, b) of the (even) frames: its 2(b − a) tokens as (b − a, 2, D)."""
        n = frames.shape[0]
        x = frames.reshape(-1)
        plan = aligned_chunk_plan(
            n, max(self.chunk_size // SAMPLES_PER_FRAME, 1), lead_in=TOKEN_HOP, lookahead=0
        )
        for a, b, s0, s1 in self._progress(plan, self.kind):
            t = self.model_tokens(x[s0:s1])
            if a == 0:
                # unchunked nearest resize of 2b-1 tokens to 2b: slot j <- token max(j-1, 0)
                t = torch.cat([t[:1], t])
            if t.shape[0] != 2 * (b - a):
                raise AssertionError(f"chunk [{a}, {b}) gave {t.shape[0]} tokens, expected {2 * (b - a)}")
            yield t.reshape(b - a, 2, t.shape[-1])


_ENCODERS = {"hubert": HubertEncoder, "wav2vec2": Wav2Vec2Encoder, "wavlm": WavLMEncoder}


def load_audio_encoder(kind: str, path, **kwargs) -> SpeechEncoder:
    """``kind`` in {"hubert", "wav2vec2", "wavlm", "beats", "logmel"}; ``path`` a local model
    directory or file (WavLM also Microsoft's ``WavLM-Base+.pt``, BEATs its original
    ``{"cfg", "model"}`` checkpoint); ``kwargs`` go to ``from_path`` (``device``, ``dtype``,
    ``config``) and the encoder (``mode``, ``chunk_size``, ...). ``logmel`` needs no weights
    (``path`` may be None)."""
    if kind == "beats":
        from .beats import BEATsEncoder

        return BEATsEncoder.from_path(path, **kwargs)
    if kind == "logmel":
        from .logmel import LogMelEncoder

        return LogMelEncoder.from_path(path, **{k: v for k, v in kwargs.items() if k == "n_mels"})
    if kind not in _ENCODERS:
        raise ValueError(
            f"unknown audio encoder {kind!r}; expected one of {sorted(_ENCODERS) + ['beats', 'logmel']}"
        )
    return _ENCODERS[kind].from_path(path, **kwargs)
