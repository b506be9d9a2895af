"""Media I/O for keysync: decoding/encoding video and audio through FFmpeg.

* :mod:`keysync.media.video` -- :func:`probe_video`, :func:`read_video`,
  :func:`iter_video_frames` (chunked, constant memory), :class:`VideoFrames` (random access), :func:`write_video` (H.264 + AAC,
  atomic), :func:`convert_fps`.
* :mod:`keysync.media.audio` -- :func:`read_audio` (float32, 16 kHz mono by default),
  :func:`read_audio_native` (native rate, all channels), :func:`write_audio` (atomic WAV),
  :func:`audio_to_frames` ((F, 640) rows, one per 25 fps video frame).
* :mod:`keysync.media.errors` -- the :class:`MediaError` hierarchy.

System requirement: the ``ffmpeg`` and ``ffprobe`` executables (``apt-get install ffmpeg``).
Optional Python requirement: ``av`` (PyAV) for the default video decoding backend.
"""

from .audio import (FPS, SAMPLE_RATE, SAMPLES_PER_FRAME, AudioInfo, audio_to_frames, probe_audio,
                    read_audio, read_audio_native, write_audio)
from .errors import (CorruptMediaError, EmptyMediaError, FFmpegError, FFmpegNotFoundError, MediaError,
                     MediaNotFoundError, MediaWriteError, MissingDependencyError, NoAudioStreamError,
                     NotAFileError, NoVideoStreamError)
from ._ffmpeg import atomic_output
from .video import VideoFrames, VideoInfo, convert_fps, iter_video_frames, probe_video, read_video, write_video

__all__ = [
    "FPS", "SAMPLE_RATE", "SAMPLES_PER_FRAME",
    "AudioInfo", "probe_audio", "read_audio", "read_audio_native", "write_audio", "audio_to_frames",
    "VideoFrames", "VideoInfo", "probe_video", "read_video", "iter_video_frames", "write_video", "convert_fps",
    "MediaError", "MediaNotFoundError", "NotAFileError", "EmptyMediaError", "CorruptMediaError",
    "NoVideoStreamError", "NoAudioStreamError", "FFmpegNotFoundError", "FFmpegError",
    "MediaWriteError", "MissingDependencyError", "atomic_output",
]
