"""Goertzel bank: agrees with the recursion, normalised ratios, frequency selectivity."""

from __future__ import annotations

import numpy as np
import pytest

from dialflow.dsp.goertzel import GoertzelBank, goertzel_power


def sine(freq: float, n: int = 160, amp: float = 0.5, rate: int = 8000) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(n) / rate + 0.3)


def test_bank_matches_goertzel_recursion_with_flat_window() -> None:
    x = np.random.default_rng(1).normal(0, 0.1, 160)
    bank = GoertzelBank([1100.0, 2100.0])
    bank._basis[:] = np.vstack(  # same bins without the window, to compare with the recursion
        [np.cos(2 * np.pi * f * np.arange(160) / 8000) for f in bank.freqs_hz]
        + [np.sin(2 * np.pi * f * np.arange(160) / 8000) for f in bank.freqs_hz]
    )
    ref = [goertzel_power(x, f, 8000) for f in (1100.0, 2100.0)]
    assert bank.powers(x) == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("freq", [1100.0, 2100.0, 913.8])
def test_pure_tone_ratio_is_one(freq: float) -> None:
    bank = GoertzelBank([freq])
    r = bank.ratios(sine(freq))[0]
    assert 0.9 < r < 1.1


def test_ratio_is_level_independent_and_rejects_other_tones() -> None:
    bank = GoertzelBank([1100.0])
    assert bank.ratios(sine(1100.0, amp=0.01))[0] == pytest.approx(
        bank.ratios(sine(1100.0))[0], rel=1e-6
    )
    assert bank.ratios(sine(1250.0))[0] < 0.1  # 150 Hz off: outside the main lobe
    assert bank.ratios(np.random.default_rng(0).normal(0, 0.2, 160))[0] < 0.2
    assert bank.ratios(np.zeros(160))[0] == 0.0
