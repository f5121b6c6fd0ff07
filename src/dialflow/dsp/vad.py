"""Energy voice-activity detection with an adaptive noise floor.

Telephone audio arrives at any level (quiet speakers at -50 dBFS, loud ones at -15) over
any line noise (digital silence, white or brown noise, hum). A fixed threshold fails on
one or the other, so a frame is *active* when its in-band level (250–3500 Hz, see
:mod:`dialflow.dsp.spectrum`) is

- ``snr_db`` above the noise floor, tracked by minimum statistics over ``floor_window_ms``
  (the lowest level seen recently: stationary noise is absorbed within that window);
- no more than ``speech_range_db`` below the loudest speech heard so far (that peak
  decays by ``peak_decay_db_per_s``), so a TV or other talkers 10–20 dB under the person
  on the phone do not count as the person talking;
- above ``abs_min_db``.

Frames flagged as a steady tone by the caller are never speech: beeps, fax and SIT
tones are handled by :mod:`dialflow.dsp.tones`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FRAME_MS = 20


@dataclass(slots=True, frozen=True)
class VadConfig:
    """Settings of :class:`EnergyVad` (all levels in dB / dBFS)."""

    snr_db: float = 9.0
    """A frame must be this far above the noise floor to be active."""
    floor_window_ms: int = 1500
    """Minimum-statistics window for the noise floor."""
    speech_range_db: float = 15.0
    """A frame more than this below the loudest speech so far is background."""
    peak_decay_db_per_s: float = 1.5
    """How fast the loudest-speech reference decays (a speaker who gets quieter)."""
    abs_min_db: float = -62.0
    """Nothing quieter than this is speech (below G.711 idle noise)."""


class EnergyVad:
    """Per-frame speech/non-speech decision. Sans-I/O: call :meth:`update` per frame."""

    __slots__ = ("_cfg", "_decay", "_i", "_n", "_ring", "floor_db", "peak_db", "threshold_db")

    def __init__(self, cfg: VadConfig | None = None) -> None:
        self._cfg = cfg or VadConfig()
        size = max(1, self._cfg.floor_window_ms // FRAME_MS)
        self._ring: npt.NDArray[np.float64] = np.full(size, np.inf)
        self._i = 0
        self._n = 0
        self._decay = self._cfg.peak_decay_db_per_s * FRAME_MS / 1000.0
        self.floor_db = -100.0
        self.peak_db = -100.0
        self.threshold_db = self._cfg.abs_min_db

    def update(self, band_db: float, tonal: bool = False) -> bool:
        """Feed one frame's in-band level; return True when the frame is speech-like."""
        cfg = self._cfg
        ring = self._ring
        ring[self._i] = band_db
        self._i = (self._i + 1) % ring.size
        self._n += 1
        self.floor_db = float(ring.min())
        self.peak_db -= self._decay
        thr = max(self.floor_db + cfg.snr_db, self.peak_db - cfg.speech_range_db, cfg.abs_min_db)
        self.threshold_db = thr
        active = band_db >= thr and not tonal
        if active and band_db > self.peak_db:
            self.peak_db = band_db
        return active
