"""Run a long-video plan through the keyframe and interpolation models (SPEC §1.7-1.9).

:func:`generate_frames` is the execution half of the dubbing / animation loop: it takes a
:class:`~keysync.pipelines.plan_records.LongVideoPlan` (which frame is made from which
conditions) and per-frame conditioning streams on the 25 fps model timeline, and yields the
generated frames in output order, a few at a time, so a caller can paste and encode them while
the next ones are sampled. Held at once: one sampler call's latents and conditions, the chunk's
keyframe latents and one decode batch, whatever the clip's length.

Shapes: latents are **scaled** (× 0.18215) ``(N, 4, h, w)``; masks ``(N, 1, h, w)`` (1 =
regenerate); audio ``(N, 2, D)``; generated frames uint8 ``(H, W, 3)`` with H = 8h for the
published VAE.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from keysync.pipelines.plan_records import NUM_FRAMES, LongVideoPlan
from keysync.pipelines.stages import sample_interpolation, sample_keyframes


@dataclass
class ConditioningStreams:
    """Per-frame conditions on the model timeline (all indexed by model frame).

    ``latents``: (N, 4, h, w) scaled latents of the (cropped) source frames (the ``gt``);
    ``masks``: (N, 1, h, w); both None for KeyFace (no in-painting); ``keyframe_audio``:
    (N, 2, Dk) (HuBERT for KeySync, WavLM ⊕ BEATs for KeyFace); ``interpolation_audio``:
    (N, 2, Di) (WavLM; wav2vec2 ⊕ BEATs); ``reference``: (4, h, w) identity latent;
    ``keyframe_extra``: further per-frame keyframe conditions by conditioner key, (N, ...)
    each (KeyFace: ``valence``, ``arousal`` (N,) in [-1, 1]).
    """

    latents: torch.Tensor | None
    masks: torch.Tensor | None
    keyframe_audio: torch.Tensor
    interpolation_audio: torch.Tensor
    reference: torch.Tensor
    keyframe_extra: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self):
        n = {"keyframe_audio": len(self.keyframe_audio), "interpolation_audio": len(self.interpolation_audio)}
        n.update({k: len(getattr(self, k)) for k in ("latents", "masks") if getattr(self, k) is not None})
        n.update({k: len(v) for k, v in self.keyframe_extra.items()})
        if len(set(n.values())) != 1:
            raise ValueError(f"conditioning streams differ in length: {n}")
        if (self.latents is None) != (self.masks is None):
            raise ValueError("give both latents and masks (in-painting) or neither")
        if self.latents is not None and self.latents.shape[-2:] != self.masks.shape[-2:]:
            raise ValueError(f"masks {tuple(self.masks.shape)} do not match latents {tuple(self.latents.shape)}")

    def __len__(self) -> int:
        return len(self.keyframe_audio)

    @property
    def inpainting(self) -> bool:
        """Whether gt latents and masks are given (KeySync) or not (KeyFace)."""
        return self.latents is not None

    def prefetch(self, index) -> None:
        """Move the window of lazy streams (:class:`~keysync.pipelines.lazy_rows.LazyRows`) to model
        frames ``index`` (clamped as :meth:`rows`): rows outside it are dropped, missing ones made."""
        for stream in (self.latents, self.masks):
            if hasattr(stream, "prefetch"):
                stream.prefetch(torch.as_tensor(sorted(set(index)), dtype=torch.long).clamp_(0, len(stream) - 1))

    def rows(self, name: str, index) -> torch.Tensor:
        """Rows ``index`` of stream ``name`` (a field or a ``keyframe_extra`` key), clamped to the
        last frame (virtual tail frames)."""
        stream = self.keyframe_extra[name] if name in self.keyframe_extra else getattr(self, name)
        idx = torch.as_tensor(list(index), dtype=torch.long).clamp_(0, len(stream) - 1)
        return stream[idx]


@dataclass
class SamplingOptions:
    """``decode_batch``: frames per VAE call (each decoded on its own, T=1, as the reference's
    ``decoding_t=1``); ``interpolation_chunk``: frames per interpolation network call (28 = two
    segments, the reference); ``reference_uint8``: cast decoded frames to uint8 by truncation
    (the reference's ``.to(torch.uint8)``) instead of rounding; ``autocast_dtype``: run the
    models under autocast (the reference runs interpolation under fp16 autocast on GPUs);
    ``segments_per_call``: interpolation segments per sampler call (None: one network call's
    worth, ``interpolation_chunk // 14``); the frames do not depend on it, memory does."""

    decode_batch: int = 8
    interpolation_chunk: int | None = 28
    paste_keyframes: bool = True
    reference_uint8: bool = False
    autocast_dtype: torch.dtype | None = None
    progress: bool = True
    segments_per_call: int | None = None

    def __post_init__(self):
        if self.decode_batch < 1:
            raise ValueError(f"decode_batch must be ≥ 1, got {self.decode_batch}")
        if self.interpolation_chunk is not None and (self.interpolation_chunk < NUM_FRAMES
                                                     or self.interpolation_chunk % NUM_FRAMES):
            raise ValueError(f"interpolation_chunk must be a multiple of {NUM_FRAMES} frames, got "
                             f"{self.interpolation_chunk}")
        if self.segments_per_call is not None and self.segments_per_call < 1:
            raise ValueError(f"segments_per_call must be ≥ 1, got {self.segments_per_call}")


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None or dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def decode_frames(engine, latents: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """Scaled latents (N, 4, h, w) → float pixels (N, H, W, 3) in [0, 1] (``(x+1)/2`` clamped).

    Every frame is decoded on its own (temporal decoder with T = 1), ``batch`` frames per call:
    identical to the reference's one-frame-at-a-time decode, fewer calls.
    """
    from keysync.models.vae import VideoDecoder

    vae = engine.first_stage_model
    param = next(vae.parameters())
    outs = []
    for start in range(0, len(latents), max(1, batch)):
        z = latents[start:start + batch].to(device=param.device, dtype=param.dtype) / engine.scale_factor
        decoder = getattr(vae.decoder, "_orig_mod", vae.decoder)  # torch.compile'd: the module inside
        kwargs = {"timesteps": 1} if isinstance(decoder, VideoDecoder) else {}
        with torch.autocast(device_type=param.device.type, enabled=False):
            x = vae.decode(z, **kwargs)
        outs.append(((x.float() + 1) / 2).clamp_(0, 1).permute(0, 2, 3, 1).cpu())
    return torch.cat(outs)


def to_uint8(x: torch.Tensor, truncate: bool = False) -> torch.Tensor:
    """[0, 1] floats → uint8 (×255, rounded; ``truncate`` as the reference's cast)."""
    x = x * 255
    return (x if truncate else x.round()).to(torch.uint8)


def _on(device, t: torch.Tensor) -> torch.Tensor:
    return t.to(device)


def _noise(shape, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(like.device)


def _keyframe_last_use(plan: LongVideoPlan) -> dict[int, int]:
    """Keyframe uid → the last chunk whose segments read it."""
    last: dict[int, int] = {}
    for chunk in plan.chunks:
        for seg in chunk.segments:
            for kf in (seg.start, seg.end):
                if kf is not None:
                    last[kf.uid] = chunk.index
    return last


def _keyframe_rows(plan: LongVideoPlan, chunk) -> set[int]:
    """Model frames whose gt latents and masks ``chunk``'s keyframe slots read."""
    rows: set[int] = set()
    for b in chunk.batches:
        for slot in plan.batches[b]:
            rows.update(i for i in (slot.gt, slot.mask) if i is not None)
    return rows


@torch.no_grad()
def generate_frames(plan: LongVideoPlan, streams: ConditioningStreams, keyframe_engine, interpolation_engine,
                    generator: torch.Generator | None = None, options: SamplingOptions | None = None,
                    timer=None) -> Iterator[tuple[int, torch.Tensor]]:
    """Execute ``plan``: yields ``(output index, uint8 frame (H, W, 3))`` in order.

    Per chunk: its keyframe batches (one sampler call of 14 slots each), then its interpolation
    segments, ``segments_per_call`` per sampler call, sampled as the output reaches them and
    decoded ``decode_batch`` frames at a time; frames two segments share are averaged in pixel
    space. Segments are independent and the noise is drawn per call in segment order, so the
    frames do not depend on ``segments_per_call``. Held at once: the chunk's keyframe latents, one
    call's latents and conditions, one decode batch of pixels — nothing grows with the clip.
    Noise comes from ``generator`` (CPU) in call order, so a seed gives the same video on any
    device and in any process. ``timer(stage)``, a context-manager factory, times the
    "keyframes", "interpolation" and "decode" stages.
    """
    timer = timer or (lambda stage: nullcontext())
    opts = options or SamplingOptions()
    gen = generator or torch.Generator().manual_seed(0)
    device = next(keyframe_engine.model.parameters()).device
    h, w = streams.reference.shape[-2:]
    inpaint = streams.inpainting
    keyframes: dict[int, torch.Tensor] = {}
    last_use = _keyframe_last_use(plan)
    by_chunk: dict[int, list] = {}
    for frame in plan.frames:
        by_chunk.setdefault(frame.source.chunk, []).append(frame)
    per_call = _segments_per_call(opts)
    total_calls = len(plan.slots) // NUM_FRAMES + sum(max(1, -(-len(c.segments) // per_call)) for c in plan.chunks)
    bar = tqdm(total=total_calls, desc="sampling", unit="call", disable=not opts.progress, leave=False)

    def rows(name, index):
        return _on(device, streams.rows(name, index)) if inpaint or name not in ("latents", "masks") else None

    try:
        for chunk in plan.chunks:
            kf_rows = _keyframe_rows(plan, chunk)
            if inpaint:
                streams.prefetch(kf_rows)
            with _autocast(device, opts.autocast_dtype), timer("keyframes"):
                for b in chunk.batches:
                    slots = plan.batches[b]
                    extra = {k: rows(k, [s.audio for s in slots]) for k in streams.keyframe_extra}
                    lat = sample_keyframes(
                        keyframe_engine, _on(device, streams.reference),
                        rows("latents", [s.gt for s in slots]), rows("masks", [s.mask for s in slots]),
                        rows("keyframe_audio", [s.audio for s in slots]),
                        _noise((len(slots), 4, h, w), gen, streams.reference).to(device), extra=extra)
                    for s, z in zip(slots, lat.float()):
                        keyframes[s.uid] = z
                    bar.update(1)
            for uid in [u for u in keyframes if last_use.get(u, -1) < chunk.index]:
                del keyframes[uid]  # made in an earlier chunk or read by no segment: never read again
            if not chunk.segments:
                bar.update(1)
                continue
            groups = [chunk.segments[i:i + per_call] for i in range(0, len(chunk.segments), per_call)]

            def interpolate(group):
                if inpaint:
                    streams.prefetch(kf_rows | _segment_rows(group))
                with _autocast(device, opts.autocast_dtype), timer("interpolation"):
                    kf = torch.stack([torch.stack([keyframes[s.start.uid], keyframes[s.end.uid]]) for s in group])
                    gt = torch.stack([streams.rows("latents", s.gt) for s in group]).to(device) if inpaint else None
                    masks = torch.stack([streams.rows("masks", s.mask) for s in group]).to(device) if inpaint else None
                    audio = torch.stack([streams.rows("interpolation_audio", s.audio) for s in group])
                    out = sample_interpolation(
                        interpolation_engine, kf.to(device), gt, masks, audio.to(device),
                        _noise((len(group) * NUM_FRAMES, 4, h, w), gen, streams.reference).to(device),
                        chunk_size=opts.interpolation_chunk, paste_keyframes=opts.paste_keyframes).float()
                bar.update(1)
                return out

            yield from _emit_chunk(chunk, by_chunk.get(chunk.index, []), groups, interpolate,
                                   lambda z: decode_frames(interpolation_engine, z, opts.decode_batch), opts, timer)
    finally:
        bar.close()


def _segments_per_call(opts: SamplingOptions) -> int:
    if opts.segments_per_call is not None:
        return max(1, int(opts.segments_per_call))
    return max(1, (opts.interpolation_chunk or 2 * NUM_FRAMES) // NUM_FRAMES)


def _segment_rows(group) -> set[int]:
    rows: set[int] = set()
    for seg in group:
        rows.update(seg.gt or ())
        rows.update(seg.mask or ())
    return rows


def _emit_chunk(chunk, frames, groups, interpolate, decode, opts: SamplingOptions, timer):
    """Yield a chunk's output frames in order, sampling segment groups and decoding rows only as
    the frames need them; a decoded row is dropped after the last frame that reads it."""
    needed: set[tuple[int, int]] = set()
    last_read: dict[tuple[int, int], int] = {}
    for i, f in enumerate(frames):
        if f.avg_with is not None and f.avg_with.chunk != chunk.index:
            raise RuntimeError(f"output frame {f.index} averages rows of two chunks")
        for src in (f.source, f.avg_with):
            if src is not None:
                needed.add((src.seg, src.pos))
                last_read[(src.seg, src.pos)] = i
    latents: dict[tuple[int, int], torch.Tensor] = {}
    pixels: dict[tuple[int, int], torch.Tensor] = {}
    state = {"next": 0}

    def ensure(key):
        while key not in latents and key not in pixels:
            if state["next"] >= len(groups):
                raise RuntimeError(f"chunk {chunk.index}: no segment makes row {key}")
            group = groups[state["next"]]
            state["next"] += 1
            z = interpolate(group)
            for k, seg in enumerate(group):
                latents.update({(seg.seg, p): z[k, p] for p in range(NUM_FRAMES) if (seg.seg, p) in needed})
        if key in pixels:
            return
        batch = [k for k in sorted(latents) if k >= key][:max(1, opts.decode_batch)]
        with timer("decode"):
            pixels.update(zip(batch, decode(torch.stack([latents.pop(k) for k in batch]))))

    for i, f in enumerate(frames):
        keys = [(src.seg, src.pos) for src in (f.source, f.avg_with) if src is not None]
        for key in keys:
            ensure(key)
        x = pixels[keys[0]] if len(keys) == 1 else (pixels[keys[0]] + pixels[keys[1]]) / 2
        for key in keys:
            if last_read[key] == i:
                pixels.pop(key, None)
        yield f.index, to_uint8(x, opts.reference_uint8)
