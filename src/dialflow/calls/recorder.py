"""Call recording to WAV (8 kHz, 16-bit): what the far end says, mixed with what we play.

Frames arrive on the media clock's task, so writing must be cheap: frames are kept in
memory (16 kB per second) and written once when the recording closes.
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 8000
MAX_SECONDS = 4 * 3600  # a hard cap: 4 h of 8 kHz audio is 230 MB in memory


class CallRecorder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._received: list[np.ndarray] = []
        self._sent: list[np.ndarray] = []
        self._subs: list[Any] = []
        self._closed = False

    def attach(self, leg: Any) -> None:
        self._subs.append(leg.on_frame(self._on_received))
        on_sent = getattr(leg, "on_sent_frame", None)
        if on_sent is not None:
            self._subs.append(on_sent(self._on_sent))

    def _on_received(self, frame: np.ndarray, _t: float) -> None:
        if len(self._received) < MAX_SECONDS * 50:
            self._received.append(frame)

    def _on_sent(self, frame: np.ndarray, _t: float) -> None:
        if len(self._sent) < MAX_SECONDS * 50:
            self._sent.append(frame)

    def close(self) -> Path:
        if self._closed:
            return self.path
        self._closed = True
        for sub in self._subs:
            cancel = getattr(sub, "cancel", None) or getattr(sub, "close", None)
            if cancel is not None:
                cancel()
        received = np.concatenate(self._received) if self._received else np.zeros(0, np.int16)
        if self._sent:
            sent = np.concatenate(self._sent)
            n = max(len(received), len(sent))
            mix = np.zeros(n, np.int32)
            mix[: len(received)] += received
            mix[: len(sent)] += sent
            audio = np.clip(mix, -32768, 32767).astype(np.int16)
        else:
            audio = received.astype(np.int16)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(self.path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(audio.astype("<i2").tobytes())
        return self.path
