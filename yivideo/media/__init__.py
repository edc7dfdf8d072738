"""Media access: file checks, ffprobe facts, audio, and video frames (ffmpeg and PyAV).

Plain functions, no Ray. Decoder failures become :class:`MediaError` with the reason the
decoder gave, so a stage fails with a message a person can act on.
"""

from yivideo.media.audio import (
    SAMPLE_RATE,
    decode_audio,
    encode_wav,
    resample,
    split_at_silence,
    split_fixed,
)
from yivideo.media.probe import check_file, probe
from yivideo.media.video import (
    Band,
    extract_frames,
    iter_band_frames,
    key_frame_times,
    keyframes,
    open_video,
    sample_frames,
    video_info,
)

__all__ = [
    "SAMPLE_RATE",
    "Band",
    "check_file",
    "decode_audio",
    "encode_wav",
    "extract_frames",
    "iter_band_frames",
    "key_frame_times",
    "keyframes",
    "open_video",
    "probe",
    "resample",
    "sample_frames",
    "split_at_silence",
    "split_fixed",
    "video_info",
]
