"""Resampling and level helpers."""

from __future__ import annotations

import numpy as np

from dialflow.speech.audio import Upsampler2x, normalize_level, to_8k


def tone(hz: float, rate: int, seconds: float, amp: float = 8000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(x.size)))
    return float(np.argmax(spectrum) * rate / x.size)


def test_upsampler_is_the_same_in_any_chunking() -> None:
    x = (np.random.default_rng(3).standard_normal(4000) * 3000).astype(np.int16)
    whole = Upsampler2x().process(x)
    up = Upsampler2x()
    parts = [up.process(x[i : i + 333]) for i in range(0, 4000, 333)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert whole.size == 8000 and whole.dtype == np.int16


def test_upsampled_tone_keeps_its_frequency_and_level_without_an_image() -> None:
    y = Upsampler2x().process(tone(1000, 8000, 1.0))[200:]
    assert abs(peak_hz(y, 16000) - 1000) < 5
    rms = np.sqrt(np.mean(y.astype(np.float64) ** 2))
    assert abs(rms - 8000 / np.sqrt(2)) < 0.02 * 8000
    spectrum = np.abs(np.fft.rfft(y.astype(np.float64) * np.hanning(y.size)))
    freqs = np.fft.rfftfreq(y.size, 1 / 16000)
    image = spectrum[(freqs > 6900) & (freqs < 7100)].max()
    assert 20 * np.log10(image / spectrum.max()) < -50  # the 7 kHz mirror is filtered out


def test_to_8k_converts_16k_and_22050() -> None:
    y = to_8k(tone(440, 16000, 1.0), 16000)
    assert y.size == 8000 and abs(peak_hz(y, 8000) - 440) < 5
    z = to_8k(tone(440, 22050, 1.0), 22050)
    assert abs(z.size - 8000) <= 1 and abs(peak_hz(z, 8000) - 440) < 5
    same = tone(440, 8000, 0.1)
    np.testing.assert_array_equal(to_8k(same, 8000), same)


def test_normalize_level_sets_rms_and_limits_peaks() -> None:
    quiet = np.where(tone(500, 8000, 1.0) >= 0, 300, -300).astype(np.int16)  # square wave
    out = normalize_level(quiet, rms_dbfs=-20.0)
    rms_db = 10 * np.log10(np.mean(out.astype(np.float64) ** 2) / 32768**2)
    assert abs(rms_db + 20.0) < 0.2
    spiky = np.zeros(8000, dtype=np.int16)
    spiky[::400] = 1000
    limited = normalize_level(spiky, rms_dbfs=-3.0, peak_dbfs=-6.0)
    assert abs(int(np.abs(limited).max()) - round(32767 * 10 ** (-6 / 20))) <= 1
    assert normalize_level(np.zeros(100, dtype=np.int16)).max() == 0
