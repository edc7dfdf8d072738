"""ffmpeg access on generated media with known content."""

from __future__ import annotations

import numpy as np
import pytest

from yivideo import media
from yivideo.errors import MediaError, NoAudioStream


def test_probe_reports_streams(sample):
    info = media.probe(sample.video)
    assert info["duration"] == pytest.approx(sample.duration, abs=0.2)
    assert info["video"] == {"codec": "h264", "width": 1280, "height": 720, "fps": 25.0}
    assert info["audio"]["channels"] >= 1


def test_probe_runs_ffprobe_once_per_file_version(sample, mute_video, tmp_path, monkeypatch):
    import shutil

    import ffmpeg

    calls = []
    real = ffmpeg.probe
    monkeypatch.setattr(ffmpeg, "probe", lambda path, **kw: calls.append(path) or real(path, **kw))
    path = tmp_path / "clip.mp4"
    shutil.copy(sample.video, path)
    first = media.probe(path)
    first["video"]["width"] = 1  # a caller's change does not reach the remembered facts
    assert media.probe(path)["video"]["width"] == 1280 and len(calls) == 1
    shutil.copy(mute_video.video, path)  # another file at the same path: probed again
    assert media.probe(path)["audio"] is None and len(calls) == 2


def test_decode_audio_is_16k_mono_float_and_loud_where_speech_is(sample):
    audio = media.decode_audio(sample.video)
    assert audio.sample_rate == 16000 and audio.samples.dtype == np.float32
    assert audio.duration == pytest.approx(sample.duration, abs=0.2)
    cue = sample.speech[0]
    inside = audio.samples[int(cue.start * 16000): int(cue.end * 16000)]
    before = audio.samples[: int(cue.start * 16000) - 1600]
    assert np.sqrt(np.mean(inside**2)) > 10 * np.sqrt(np.mean(before**2)) + 1e-4


def test_split_at_silence_cuts_only_in_gaps(sample):
    audio = media.decode_audio(sample.video)
    spans = media.split_at_silence(audio, max_chunk_s=5.0, min_silence_s=0.3)
    assert spans[0].start == 0 and spans[-1].end == pytest.approx(audio.duration)
    assert all(a.end == b.start for a, b in zip(spans, spans[1:], strict=False))
    for cut in (s.end for s in spans[:-1]):
        assert not any(c.start < cut < c.end for c in sample.speech), cut
    assert len(spans) >= 2


def test_split_fixed_windows(sample):
    audio = media.decode_audio(sample.video)
    spans = media.split_fixed(audio, 2.0)
    assert [s.end - s.start for s in spans[:-1]] == [2.0] * (len(spans) - 1)
    assert spans[-1].end == pytest.approx(audio.duration)


def test_frames_and_keyframes(sample):
    frames = media.extract_frames(sample.video, fps=2, width=320)
    assert frames.images.shape[1:] == (180, 320, 3)
    assert len(frames) == pytest.approx(sample.duration * 2, abs=2)
    keys = media.keyframes(sample.video, width=160)
    assert len(keys) >= 1 and keys.timestamps[0] == pytest.approx(0, abs=0.05)
    assert np.all(np.diff(keys.timestamps) > 0)


def test_wav_encoding_round_trips(sample, tmp_path):
    audio = media.decode_audio(sample.video)
    path = tmp_path / "a.wav"
    path.write_bytes(media.encode_wav(audio))
    again = media.decode_audio(path)
    assert again.duration == pytest.approx(audio.duration, abs=0.01)


def test_clear_errors(tmp_path, corrupt_file, mute_video):
    with pytest.raises(MediaError, match="file not found"):
        media.probe(tmp_path / "missing.mp4")
    with pytest.raises(MediaError, match="not a readable media file"):
        media.probe(corrupt_file)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match="empty file"):
        media.probe(tmp_path / "empty.mp4")
    with pytest.raises(NoAudioStream, match="no audio stream"):
        media.decode_audio(mute_video.video)


def test_resample_keeps_frequency_and_length_ratio():
    t = np.arange(48000 * 2) / 48000
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    out = media.resample(tone, 48000, 16000)
    assert out.dtype == np.float32 and len(out) == len(tone) // 3
    spectrum = np.abs(np.fft.rfft(out))
    peak_hz = np.argmax(spectrum) * 16000 / len(out)
    assert peak_hz == pytest.approx(440, abs=1)
    # 48k -> 16k keeps every third sample exactly
    np.testing.assert_allclose(out, tone[::3], atol=1e-6)
    # a single sample cannot be interpolated: it is repeated
    assert media.resample(np.array([0.5]), 16000, 48000).tolist() == [0.5, 0.5, 0.5]


def _cached(cache, name: str, size: int, age_s: float):
    import os
    import time

    path = cache / (name * 64) / f"{name}.mp4"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\0" * size)
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_node_media_cache_evicts_least_recently_used_never_held_or_fresh(tmp_path):
    from yivideo.media.handle import EVICT_MIN_IDLE_S, evict, hold, resolve

    cache = tmp_path / "media"
    oldest = _cached(cache, "a", 400, 3 * EVICT_MIN_IDLE_S)
    held = _cached(cache, "b", 400, 2.5 * EVICT_MIN_IDLE_S)
    older = _cached(cache, "c", 400, 2 * EVICT_MIN_IDLE_S)
    used = _cached(cache, "d", 400, 1.5 * EVICT_MIN_IDLE_S)
    fresh = _cached(cache, "e", 400, 0)
    (cache / "f" / ".x.part").parent.mkdir()
    (cache / "f" / ".x.part").write_bytes(b"\0" * 5000)  # being written: not counted
    assert evict(cache, 0) == []  # no cap
    assert evict(cache, 2000) == []  # 2000 bytes of files: under the cap
    # a use renews a file (resolve of a cached file: no Ray call)
    assert resolve(f"yivideo-media:{'d' * 64}/d.mp4", tmp_path, "ns") == used
    with hold([str(held)]):  # a running stage holds it: skipped, whatever its age
        assert evict(cache, 900) == [oldest, older]
    assert sorted(p.name for p in cache.rglob("*.mp4")) == ["b.mp4", "d.mp4", "e.mp4"]
    assert not oldest.parent.exists()  # its content's folder went with it
    assert evict(cache, 100) == [held]  # released: now it goes; the rest were used lately
    assert used.exists() and fresh.exists()


def test_a_materialised_handle_evicts_the_cache_down_to_its_cap(ray_cluster, sample, tmp_path):
    import dataclasses
    import os
    from pathlib import Path

    from yivideo.media.handle import EVICT_MIN_IDLE_S, MediaHandle

    cache, video = tmp_path / "media", Path(sample.video)
    first = _cached(cache, "a", video.stat().st_size, 2 * EVICT_MIN_IDLE_S)
    handle = dataclasses.replace(MediaHandle.from_file(video), origin=None)
    path = handle.local_path(cache, max_bytes=int(1.5 * video.stat().st_size))
    assert path.read_bytes() == video.read_bytes()
    assert not first.exists() and os.listdir(cache) == [handle.sha256]
