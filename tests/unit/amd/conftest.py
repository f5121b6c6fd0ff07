"""Shared helpers for the AMD tests: synthetic signals and the WAV fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

RATE = 8000
FIXTURES = Path(__file__).parent / "fixtures"


def tone(freq: float, ms: float, amp: float = 8000.0) -> np.ndarray:
    n = int(RATE * ms / 1000)
    return amp * np.sin(2 * np.pi * freq * np.arange(n) / RATE)


def quiet(ms: float, seed: int = 0, level: float = 20.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, level, int(RATE * ms / 1000))


def babble(ms: float, seed: int = 1, amp: float = 3000.0) -> np.ndarray:
    """Speech-like sound: noise with 4 Hz syllable modulation and short word gaps."""
    n = int(RATE * ms / 1000)
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    env = np.clip(np.sin(2 * np.pi * 4.0 * t), 0.0, None) ** 0.5
    voiced = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((150, 300, 450, 600, 750), 1))
    return amp * env * (0.5 * voiced + rng.normal(0, 0.5, n))


def frames(x: np.ndarray) -> Iterator[tuple[np.ndarray, int]]:
    a = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    for i in range(len(a) // 160):
        yield a[i * 160 : (i + 1) * 160], (i + 1) * 20
