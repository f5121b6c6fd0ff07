"""Resampler: keeps in-band tones, removes what would alias."""

from __future__ import annotations

import numpy as np
import pytest

from dialflow.dsp.resample import resample


def peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spec.argmax()])


def test_downsample_keeps_tone_and_suppresses_alias() -> None:
    t = np.arange(16000) / 16000
    y = resample(np.sin(2 * np.pi * 1000 * t) + np.sin(2 * np.pi * 5500 * t), 16000, 8000)
    assert len(y) == 8000
    assert peak_hz(y[500:7500], 8000) == pytest.approx(1000, abs=2)
    spec = np.abs(np.fft.rfft(y[500:7500] * np.hanning(7000)))
    f = np.fft.rfftfreq(7000, 1 / 8000)
    alias = spec[(f > 2400) & (f < 2600)].max()  # 5500 Hz would fold to 2500 Hz
    assert alias < spec.max() * 1e-3


def test_upsample_is_accurate_and_identity_copies() -> None:
    t = np.arange(8000) / 8000
    x = np.sin(2 * np.pi * 440 * t)
    y = resample(x, 8000, 44100)
    ref = np.sin(2 * np.pi * 440 * np.arange(len(y)) / 44100)
    assert np.abs(y[2000:-2000] - ref[2000:-2000]).max() < 1e-3
    z = resample(x, 8000, 8000)
    assert z is not x and np.array_equal(z, x)
