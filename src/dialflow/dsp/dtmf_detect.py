"""In-band DTMF detection by Goertzel (ITU-T Q.23/Q.24), the fallback when a peer sends
digits as audio instead of RFC 4733 events.

Sans-I/O: feed 20 ms frames of 8 kHz int16 audio, get digits. A digit is reported once,
when its tone pair has been present for ``min_frames`` consecutive frames (40 ms by
default, Q.24's minimum), and re-armed only after a frame without it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

ROWS = (697.0, 770.0, 852.0, 941.0)
COLS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")
RATE = 8000


@dataclass(slots=True)
class DtmfDetectorConfig:
    min_frames: int = 2  # consecutive 20 ms frames: 40 ms of tone
    min_level_dbfs: float = -36.0  # each of the two tones, RMS, relative to full scale
    max_twist_db: float = 8.0  # |row - column| level difference allowed (Q.24: 4–8 dB)
    min_tone_share: float = 0.6  # the pair's share of the frame's total energy


class InbandDtmfDetector:
    def __init__(self, config: DtmfDetectorConfig | None = None, frame_len: int = 160) -> None:
        self.config = config or DtmfDetectorConfig()
        n = np.arange(frame_len)
        freqs = np.array(ROWS + COLS)
        # One matrix product evaluates all eight Goertzel bins (the DFT at exact
        # frequencies, not bin centres), cheaper in numpy than eight recursions.
        self._cos = np.cos(2 * np.pi * np.outer(freqs, n) / RATE)
        self._sin = np.sin(2 * np.pi * np.outer(freqs, n) / RATE)
        self._window = np.hanning(frame_len)
        self._candidate: str | None = None
        self._count = 0
        self._reported = False
        self._frame_len = frame_len

    def feed(self, frame: npt.NDArray[np.int16]) -> str | None:
        """The digit that just became certain in this frame, if any."""
        digit = self._classify(frame)
        if digit is None:
            self._candidate, self._count, self._reported = None, 0, False
            return None
        if digit != self._candidate:
            self._candidate, self._count, self._reported = digit, 1, False
        else:
            self._count += 1
        if not self._reported and self._count >= self.config.min_frames:
            self._reported = True
            return digit
        return None

    def _classify(self, frame: npt.NDArray[np.int16]) -> str | None:
        if len(frame) != self._frame_len:
            return None
        x = frame.astype(np.float64) / 32768.0
        total = float(np.dot(x, x))
        if total <= 1e-9:
            return None
        xw = x * self._window
        re = self._cos @ xw
        im = self._sin @ xw
        # Power of a windowed sinusoid of amplitude A: (A·N·mean(w)/2)²; back to RMS.
        gain = self._frame_len * float(self._window.mean()) / 2
        amp = np.sqrt(re * re + im * im) / gain
        rms_db = 20 * np.log10(np.maximum(amp / np.sqrt(2), 1e-12))
        row = int(np.argmax(rms_db[:4]))
        col = int(np.argmax(rms_db[4:]))
        row_db, col_db = float(rms_db[row]), float(rms_db[4 + col])
        cfg = self.config
        if row_db < cfg.min_level_dbfs or col_db < cfg.min_level_dbfs:
            return None
        if abs(row_db - col_db) > cfg.max_twist_db:
            return None
        pair_power = (10 ** (row_db / 10) + 10 ** (col_db / 10)) * self._frame_len
        if pair_power / total < cfg.min_tone_share:
            return None
        return KEYS[row][col]
