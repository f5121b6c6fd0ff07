"""Per-frame spectral analysis shared by the VAD, the tone detectors and the AMD features.

One :class:`SpectrumAnalyzer` per call turns each 20 ms frame (160 int16 samples at
8 kHz) into a :class:`FrameSpectrum`: band level, dominant peak frequency and how much of
the band's energy sits in that peak ("purity": about 1.0 for a steady tone, 0.05–0.4
for speech, music chords or noise). It looks at the last 40 ms (two frames, Hann window,
512-point FFT, 15.6 Hz bins) so a tone's frequency is known to a few hertz while the
time resolution stays one frame. Work per frame: one real FFT and a few reductions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160
FRAME_MS = 20
NFFT = 512
WINDOW = 2 * FRAME_SAMPLES
BAND_LOW_HZ = 250.0
"""Lower edge of the analysis band: below it sit mains hum and brown noise."""
BAND_HIGH_HZ = 3500.0
"""Upper edge: the telephone channel (G.711 after a 300–3400 Hz line)."""
PEAK_HALF_WIDTH_BINS = 3
"""Bins either side of a peak that count as the tone (Hann main lobe, ±47 Hz)."""
SILENCE_DB = -100.0
"""Level reported for digital silence (log of zero)."""

FloatArray = npt.NDArray[np.float64]


@dataclass(slots=True)
class FrameSpectrum:
    """What one frame looks like. Levels are dBFS (full-scale sine = -3 dBFS)."""

    level_db: float
    """Mean power of the 20 ms frame over the whole spectrum."""
    band_db: float
    """Mean power in 250–3500 Hz over the last 40 ms (what the VAD looks at)."""
    low_db: float
    """Mean power below 250 Hz over the last 40 ms (hum, brown noise, rumble)."""
    peak_hz: float
    """Frequency of the strongest component in the band (parabolic interpolation)."""
    purity: float
    """Share of band energy within ±47 Hz of the peak: tone ≈ 1, speech/noise ≪ 1."""
    flatness: float
    """Spectral flatness in the band (geometric/arithmetic mean): white noise ≈ 0.5+."""
    centroid_hz: float
    """Spectral centroid in the band."""


def _db(power: float) -> float:
    return 10.0 * float(np.log10(power)) if power > 1e-10 else SILENCE_DB


class SpectrumAnalyzer:
    """Turns consecutive 160-sample int16 frames into :class:`FrameSpectrum` values.

    Keeps the previous frame (40 ms analysis window) and a scratch buffer; allocates
    nothing large per frame. ``samples`` holds the current frame as floats in [-1, 1)
    after :meth:`analyze`, for detectors (Goertzel) that want the raw frame.
    """

    __slots__ = (
        "_band",
        "_buf",
        "_freqs",
        "_lo",
        "_low",
        "_win",
        "samples",
    )

    def __init__(self) -> None:
        n = np.arange(WINDOW, dtype=np.float64)
        self._win: FloatArray = np.asarray(
            0.5 - 0.5 * np.cos(2.0 * np.pi * (n + 0.5) / WINDOW), dtype=np.float64
        )
        self._buf: FloatArray = np.zeros(WINDOW, dtype=np.float64)
        self._freqs: FloatArray = np.asarray(np.fft.rfftfreq(NFFT, 1.0 / SAMPLE_RATE), np.float64)
        self._lo = int(np.searchsorted(self._freqs, BAND_LOW_HZ))
        hi = int(np.searchsorted(self._freqs, BAND_HIGH_HZ))
        self._band = slice(self._lo, hi)
        self._low = slice(1, self._lo)
        self.samples: FloatArray = self._buf[FRAME_SAMPLES:]

    def reset(self) -> None:
        """Forget the previous frame (start of a new stream)."""
        self._buf[:] = 0.0

    def analyze(self, frame: npt.NDArray[np.int16]) -> FrameSpectrum:
        """Analyse the next 20 ms frame (160 int16 samples)."""
        buf = self._buf
        buf[:FRAME_SAMPLES] = buf[FRAME_SAMPLES:]
        np.multiply(frame, 1.0 / 32768.0, out=buf[FRAME_SAMPLES:])
        cur = buf[FRAME_SAMPLES:]
        # Full-scale sine (amplitude 1) has mean power 0.5 = -3 dBFS.
        level = float(np.dot(cur, cur)) / FRAME_SAMPLES
        spec = np.fft.rfft(buf * self._win, NFFT)
        p = spec.real * spec.real + spec.imag * spec.imag
        band = p[self._band]
        band_sum = float(band.sum())
        # Parseval for a one-sided spectrum of a Hann-windowed block (mean w² = 3/8):
        # mean power per sample of the band-limited signal.
        scale = 2.0 / (NFFT * WINDOW * 0.375)
        band_db = _db(band_sum * scale)
        low_db = _db(float(p[self._low].sum()) * scale)
        if band_sum <= 1e-12:
            return FrameSpectrum(_db(level), band_db, low_db, 0.0, 0.0, 0.0, 0.0)
        k = int(band.argmax())
        lo = max(k - PEAK_HALF_WIDTH_BINS, 0)
        purity = float(band[lo : k + PEAK_HALF_WIDTH_BINS + 1].sum()) / band_sum
        kk = k + self._lo
        # Parabolic interpolation on log power: a few Hz accuracy for a Hann window.
        a, b, c = np.log(p[kk - 1 : kk + 2] + 1e-20)
        denom = a - 2.0 * b + c
        delta = 0.5 * (a - c) / denom if denom < 0.0 else 0.0
        peak_hz = float(self._freqs[kk]) + float(delta) * SAMPLE_RATE / NFFT
        logmean = float(np.mean(np.log(band + 1e-20)))
        flatness = float(np.exp(logmean)) / (band_sum / band.size)
        centroid = float(np.dot(band, self._freqs[self._band])) / band_sum
        return FrameSpectrum(_db(level), band_db, low_db, peak_hz, purity, flatness, centroid)
