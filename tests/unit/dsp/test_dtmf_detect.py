"""In-band DTMF detection (Goertzel) on synthetic and G.711-degraded signals."""

from __future__ import annotations

import numpy as np
import pytest

from dialflow.dsp.dtmf_detect import COLS, KEYS, ROWS, InbandDtmfDetector
from dialflow.media.sources import InbandDtmf
from dialflow.rtp import g711


def _detect(signal: np.ndarray) -> list[str]:
    det = InbandDtmfDetector()
    out = []
    for i in range(0, len(signal) - 159, 160):
        digit = det.feed(signal[i : i + 160])
        if digit is not None:
            out.append(digit)
    return out


def _render(digits: str) -> np.ndarray:
    src = InbandDtmf(digits, 100, gap_ms=60, pause_ms=500)
    frames = []
    while (frame := src.read(160)) is not None:
        frames.append(frame)
    return np.concatenate(frames)


def test_every_key_once() -> None:
    keys = "".join("".join(row) for row in KEYS)
    assert _detect(_render(keys)) == list(keys)


def test_survives_ulaw_round_trip_and_noise() -> None:
    signal = _render("8675309#").astype(np.float64)
    signal += np.random.default_rng(5).normal(0, 200, signal.size)
    clipped = np.clip(signal, -32768, 32767).astype(np.int16)
    coded = g711.ulaw_decode(g711.ulaw_encode(clipped))
    assert _detect(coded) == list("8675309#")


def test_a_held_key_is_one_digit() -> None:
    t = np.arange(8000) / 8000
    tone = 6000 * (np.sin(2 * np.pi * ROWS[1] * t) + np.sin(2 * np.pi * COLS[1] * t))
    assert _detect(tone.astype(np.int16)) == ["5"]


@pytest.mark.parametrize("kind", ["noise", "single_tone", "speechlike", "silence"])
def test_no_false_digits(kind: str) -> None:
    rng = np.random.default_rng(7)
    t = np.arange(8000 * 3) / 8000
    if kind == "noise":
        signal = rng.normal(0, 4000, t.size)
    elif kind == "single_tone":
        signal = 8000 * np.sin(2 * np.pi * 1000 * t)
    elif kind == "speechlike":
        env = np.clip(np.sin(2 * np.pi * 4 * t), 0, None)
        signal = (
            4000
            * env
            * sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420, 560), 1))
        )
    else:
        signal = np.zeros(t.size)
    assert _detect(signal.astype(np.int16)) == []


def test_twist_beyond_limit_is_refused() -> None:
    t = np.arange(1600) / 8000
    weak_col = 8000 * np.sin(2 * np.pi * ROWS[0] * t) + 500 * np.sin(2 * np.pi * COLS[0] * t)
    assert _detect(weak_col.astype(np.int16)) == []
