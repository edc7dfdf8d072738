"""On a machine with a CUDA GPU: faster-whisper through the ASR service on the GPU."""

from __future__ import annotations

import jiwer
import pytest

from actors.asr import ASRService, TranscribeParams
from yivideo import media
from yivideo.nodes import NodeContext
from yivideo.settings import Settings
from yivideo.testmedia import normalise_for_wer


def _cuda_devices() -> int:
    import ctranslate2

    try:
        return ctranslate2.get_cuda_device_count()
    except Exception:
        return 0


pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(_cuda_devices() == 0, reason="no CUDA device for CTranslate2")]


def test_transcribes_on_cuda_in_float16(sample):
    service = ASRService(Settings())
    audio = media.decode_audio(sample.video)
    out = service.transcribe(NodeContext(), TranscribeParams(device="cuda"), audio)
    said = " ".join(cue.text for cue in sample.speech)
    heard = " ".join(s.text for s in out["transcript"].segments)
    assert jiwer.wer(normalise_for_wer(said), normalise_for_wer(heard)) < 0.25
    (loaded,) = service.health()["models"]
    assert loaded["device"] == "cuda" and loaded["compute_type"] == "float16"
