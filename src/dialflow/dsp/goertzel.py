"""Goertzel-style detection of known tones in 20 ms frames.

The Goertzel algorithm evaluates one DFT bin with a two-tap recursion. For a handful of
fixed frequencies on a 160-sample frame it is cheaper in Python to evaluate all bins at
once as a small matrix product (the same DFT bins, numerically identical to running the
recursion), so :class:`GoertzelBank` precomputes the windowed cosine and sine rows.

The output is a *tone ratio* per frequency: the bin's power normalised by the frame's
energy so that a pure sinusoid at the bin centre gives 1.0 and white noise gives about
``3 / N`` (Hann window). It does not depend on the signal level, which is what tone
detectors on telephone lines need (levels vary by 30 dB between calls).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160

FloatArray = npt.NDArray[np.float64]


class GoertzelBank:
    """Tone ratios at fixed frequencies for fixed-length frames.

    ``ratios(frame)`` returns one value per frequency in ``freqs_hz``: about 1.0 when the
    frame holds a pure tone at that frequency, near 0 for speech, noise or silence. A Hann
    window keeps leakage from loud out-of-band components (speech formants, other tones)
    below -31 dB, at the price of a main lobe of ±2 bins (±100 Hz at 160 samples).
    """

    __slots__ = ("_basis", "_norm", "freqs_hz", "n")

    def __init__(
        self, freqs_hz: Sequence[float], n: int = FRAME_SAMPLES, rate: int = SAMPLE_RATE
    ) -> None:
        self.freqs_hz = tuple(float(f) for f in freqs_hz)
        self.n = n
        t = np.arange(n, dtype=np.float64)
        window = 0.5 - 0.5 * np.cos(2.0 * np.pi * (t + 0.5) / n)
        omega = 2.0 * np.pi * np.asarray(self.freqs_hz, dtype=np.float64)[:, None] / rate
        # Rows: windowed cos for every frequency, then windowed sin for every frequency.
        self._basis: FloatArray = np.vstack(
            [np.cos(omega * t) * window, np.sin(omega * t) * window]
        )
        # A tone A·cos(ωn) gives |X| = A·Σw/2 and Σx² = A²·n/2, hence this normaliser.
        self._norm = float((window.sum() / 2.0) ** 2 * 2.0 / n)

    def powers(self, frame: FloatArray) -> FloatArray:
        """Squared magnitude of each windowed DFT bin for ``frame`` (float samples)."""
        k = len(self.freqs_hz)
        y = self._basis @ frame
        return np.asarray(y[:k] * y[:k] + y[k:] * y[k:], dtype=np.float64)

    def ratios(self, frame: FloatArray, energy: float | None = None) -> FloatArray:
        """Tone ratio per frequency (about 1.0 for a pure tone, 0 for silence).

        ``energy`` is ``Σ frame²`` when the caller already has it.
        """
        e = float(np.dot(frame, frame)) if energy is None else energy
        if e <= 1e-9:
            return np.zeros(len(self.freqs_hz), dtype=np.float64)
        return self.powers(frame) / (e * self._norm)


def goertzel_power(samples: Sequence[float] | FloatArray, freq_hz: float, rate: int) -> float:
    """Power of one DFT bin by the classic Goertzel recursion (reference implementation).

    Kept for tests and documentation: :class:`GoertzelBank` must agree with it (apart
    from the window, which this one does not apply).
    """
    coeff = 2.0 * np.cos(2.0 * np.pi * freq_hz / rate)
    s1 = 0.0
    s2 = 0.0
    for x in samples:
        s0 = float(x) + coeff * s1 - s2
        s2 = s1
        s1 = s0
    return float(s1 * s1 + s2 * s2 - coeff * s1 * s2)
