"""Shared helpers: our own prompts, rendered by flite and sent through a G.711 line."""

from __future__ import annotations

import shutil

import numpy as np
import numpy.typing as npt
import pytest

from dialflow.rtp.g711 import ulaw_decode, ulaw_encode
from dialflow.speech.tts import TtsEngine

Int16Array = npt.NDArray[np.int16]

requires_flite = pytest.mark.skipif(
    shutil.which("flite") is None, reason="flite not installed (apt-get install flite)"
)
requires_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)"
)

_LINE_CACHE: dict[tuple[str, float, float], Int16Array] = {}


def silence(seconds: float) -> Int16Array:
    return np.zeros(int(seconds * 8000), dtype=np.int16)


async def line_audio(text: str, lead_s: float = 0.3, tail_s: float = 1.2) -> Int16Array:
    """``text`` in the default voice, padded with silence, through a µ-law round trip."""
    key = (text, lead_s, tail_s)
    if key not in _LINE_CACHE:
        speech = await TtsEngine(cache_bytes=0).render(text)
        audio = np.concatenate([silence(lead_s), speech, silence(tail_s)])
        _LINE_CACHE[key] = ulaw_decode(ulaw_encode(audio))
    return _LINE_CACHE[key]


def band_share(x: Int16Array, lo: float = 300.0, hi: float = 3400.0) -> float:
    """Share of the signal's energy between ``lo`` and ``hi`` Hz (8 kHz audio)."""
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / 8000)
    return float(spectrum[(freqs >= lo) & (freqs <= hi)].sum() / spectrum.sum())
