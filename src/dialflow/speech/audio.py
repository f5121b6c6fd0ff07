"""Sample-rate and level helpers for the speech engines.

The telephone side of dialflow is 8 kHz int16; the synthesisers produce 16 kHz (flite
``kal16``/``awb``/``slt``/``rms``), 8 kHz (flite ``kal``) or 22.05 kHz (espeak-ng), and the
pocketsphinx en-US acoustic model wants 16 kHz. Two directions, two tools:

- :func:`to_8k` converts a whole rendered prompt once (``scipy.signal.resample_poly``,
  a Kaiser-windowed polyphase FIR, so nothing above 4 kHz aliases into the band);
- :class:`Upsampler2x` turns a live 8 kHz stream into 16 kHz batch by batch. It keeps
  filter history between calls, so batch boundaries leave no clicks, which a per-batch
  ``resample_poly`` would (it pads every call with zeros).
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "SAMPLE_RATE",
    "Int16Array",
    "Upsampler2x",
    "normalize_level",
    "to_8k",
]

SAMPLE_RATE: Final = 8000
Int16Array = npt.NDArray[np.int16]

_UP_TAPS: Final = 48
"""Low-pass length at 16 kHz: 24 taps per phase, 1.5 ms delay, > 60 dB stop band."""
_UP_CUTOFF_HZ: Final = 3800.0
_KAISER_BETA: Final = 6.0


def _design_upsampler() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Kaiser-windowed sinc low-pass at 16 kHz, split into its two polyphase branches."""
    n = np.arange(_UP_TAPS) - (_UP_TAPS - 1) / 2.0
    fc = _UP_CUTOFF_HZ / 16000.0
    h = 2.0 * fc * np.sinc(2.0 * fc * n) * np.kaiser(_UP_TAPS, _KAISER_BETA)
    h *= 2.0 / h.sum()  # gain 2: zero-stuffing halves the amplitude
    return h[0::2].copy(), h[1::2].copy()


_PHASE_EVEN, _PHASE_ODD = _design_upsampler()


class Upsampler2x:
    """Stateful 8 kHz → 16 kHz converter for a stream fed in arbitrary-size chunks.

    Polyphase form: output sample ``2n`` is the even-tap branch over the input, ``2n+1``
    the odd-tap branch, so no zeros are multiplied. ``process(x)`` returns exactly
    ``2 * len(x)`` samples; the stream as a whole is delayed by 1.5 ms.
    """

    __slots__ = ("_history",)

    def __init__(self) -> None:
        self._history = np.zeros(_PHASE_EVEN.size - 1, dtype=np.float64)

    def process(self, samples: npt.ArrayLike) -> Int16Array:
        """Upsample one chunk of int16 8 kHz samples to int16 16 kHz."""
        x = np.asarray(samples, dtype=np.float64).ravel()
        if x.size == 0:
            return np.zeros(0, dtype=np.int16)
        ext = np.concatenate((self._history, x))
        self._history = ext[-(_PHASE_EVEN.size - 1) :].copy()
        out = np.empty(2 * x.size, dtype=np.float64)
        out[0::2] = np.convolve(ext, _PHASE_EVEN, mode="valid")
        out[1::2] = np.convolve(ext, _PHASE_ODD, mode="valid")
        return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


def to_8k(samples: npt.ArrayLike, rate: int) -> Int16Array:
    """Resample a whole int16 signal from ``rate`` Hz to 8 kHz int16."""
    x = np.asarray(samples)
    if rate == SAMPLE_RATE:
        return x.astype(np.int16, copy=True)
    if rate <= 0:
        raise ValueError(f"bad sample rate {rate}")
    from scipy.signal import resample_poly  # ~0.2 s import, paid once on the first render

    g = math.gcd(SAMPLE_RATE, rate)
    y: npt.NDArray[np.float64] = resample_poly(x.astype(np.float64), SAMPLE_RATE // g, rate // g)
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


def normalize_level(
    samples: Int16Array, rms_dbfs: float = -20.0, peak_dbfs: float = -1.0
) -> Int16Array:
    """Scale speech to ``rms_dbfs`` over its active part, with peaks at most ``peak_dbfs``.

    Synthetic voices come out anywhere between -28 dBFS (flite ``kal16``) and -17 dBFS
    (``slt``) RMS; a call should not jump in loudness when the voice changes. The RMS is
    taken over samples above -50 dBFS so the pauses do not dilute it.
    """
    x = samples.astype(np.float64)
    if x.size == 0:
        return samples.astype(np.int16, copy=True)
    active = x[np.abs(x) > 32768.0 * 10 ** (-50 / 20)]
    if active.size == 0:
        return samples.astype(np.int16, copy=True)
    rms = float(np.sqrt(np.mean(active**2)))
    peak = float(np.max(np.abs(active)))
    gain = min(32768.0 * 10 ** (rms_dbfs / 20) / rms, 32767.0 * 10 ** (peak_dbfs / 20) / peak)
    return np.clip(np.rint(x * gain), -32768, 32767).astype(np.int16)
