"""Call recording to WAV (8 kHz, 16-bit mono) of what the far end sends.

Frames arrive on the media clock's task, so recording must be cheap there: frames are
kept in memory (16 kB per second) and written once, off the event loop, at the end.
The leg exposes received audio only, so a recording holds the far end's side.
"""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 8000
MAX_SECONDS = 4 * 3600  # a hard cap: 4 h of 8 kHz audio is 230 MB in memory


def write_wav(path: Path, audio: np.ndarray) -> None:
    """Write 8 kHz int16 mono samples as a WAV file (blocking: call it in a thread)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(audio.astype("<i2").tobytes())


class CallRecorder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._frames: list[np.ndarray] = []
        self._sub: Any = None

    def attach(self, leg: Any) -> None:
        self._sub = leg.on_frame(self._on_frame)

    def _on_frame(self, frame: np.ndarray, _t: float) -> None:
        if len(self._frames) < MAX_SECONDS * 50:
            self._frames.append(frame)

    async def close(self) -> Path:
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        audio = np.concatenate(self._frames) if self._frames else np.zeros(0, np.int16)
        self._frames = []
        await asyncio.to_thread(write_wav, self.path, audio)
        return self.path
