"""End-of-speech detection for the recognizer: when did the caller start and stop talking.

Frame decisions come from the WebRTC voice-activity detector that pocketsphinx 5 ships
(``pocketsphinx.Vad``: the same GMM as the ``webrtcvad`` wheel, 8 kHz 20 ms frames,
~1.3 µs a frame), so recognition needs no second VAD package. On top of the per-frame
decision, :class:`Endpointer` adds the hysteresis a dialogue needs:

- speech *starts* when ``start_ms`` of the last ``start_window_ms`` are voiced (a click
  or one noisy frame is not a caller talking);
- speech *ends* after ``end_silence_ms`` of consecutive unvoiced frames following
  speech (the gap between two sentences of one answer is shorter), or when the
  utterance reaches ``max_speech_ms`` (a TV left on must not hold a recognizer forever).

Sans-I/O: :meth:`Endpointer.update` takes one frame and returns the state; time is the
frame count.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["FRAME_MS", "FRAME_SAMPLES", "EndpointConfig", "EndpointState", "Endpointer"]

FRAME_MS: Final = 20
FRAME_SAMPLES: Final = 160


@dataclass(slots=True, frozen=True)
class EndpointConfig:
    """Timing of :class:`Endpointer` (all in milliseconds, multiples of 20)."""

    start_ms: int = 100
    """Voiced time within ``start_window_ms`` that counts as the start of speech."""
    start_window_ms: int = 200
    end_silence_ms: int = 800
    """Unvoiced time after speech that ends the utterance."""
    max_speech_ms: int = 30_000
    """An utterance is cut here whatever the VAD says."""
    vad_mode: int = 2
    """WebRTC aggressiveness 0–3: 2 keeps G.711 line noise out without clipping soft words."""


class EndpointState(enum.Enum):
    """Where the utterance is."""

    WAITING = "waiting"  # no speech yet
    SPEECH = "speech"  # speech started, not yet ended
    ENDED = "ended"  # silence after speech, or the length cap


class Endpointer:
    """Speech start/end from 20 ms 8 kHz frames. One per utterance; not thread-safe."""

    __slots__ = (
        "_cfg",
        "_end_frames",
        "_max_frames",
        "_recent",
        "_start_frames",
        "_vad",
        "end_frame",
        "frames",
        "silence_frames",
        "start_frame",
        "state",
    )

    def __init__(self, cfg: EndpointConfig | None = None) -> None:
        from pocketsphinx import Vad  # the wheel's bundled WebRTC VAD

        self._cfg = cfg or EndpointConfig()
        if not 0 <= self._cfg.vad_mode <= 3:
            raise ValueError(f"vad_mode must be 0..3, got {self._cfg.vad_mode}")
        self._vad = Vad(self._cfg.vad_mode, 8000, FRAME_MS / 1000.0)
        self._start_frames = max(1, self._cfg.start_ms // FRAME_MS)
        window = max(self._start_frames, self._cfg.start_window_ms // FRAME_MS)
        self._recent: list[bool] = [False] * window
        self._end_frames = max(1, self._cfg.end_silence_ms // FRAME_MS)
        self._max_frames = max(1, self._cfg.max_speech_ms // FRAME_MS)
        self.state = EndpointState.WAITING
        self.frames = 0
        """Frames seen so far."""
        self.start_frame = -1
        """Index of the first voiced frame of the utterance (-1 before speech)."""
        self.end_frame = -1
        """Index of the frame that ended the utterance (-1 before the end)."""
        self.silence_frames = 0
        """Consecutive unvoiced frames right now."""

    def is_speech(self, frame: npt.NDArray[np.int16]) -> bool:
        """The raw per-frame VAD decision (no hysteresis)."""
        if frame.size != FRAME_SAMPLES:
            raise ValueError(f"a VAD frame is {FRAME_SAMPLES} samples, got {frame.size}")
        return bool(self._vad.is_speech(np.ascontiguousarray(frame, dtype=np.int16).tobytes()))

    def update(self, frame: npt.NDArray[np.int16]) -> EndpointState:
        """Feed one 160-sample frame; returns the state after it."""
        if self.state is EndpointState.ENDED:
            self.frames += 1
            return self.state
        voiced = self.is_speech(frame)
        index = self.frames
        self.frames += 1
        self.silence_frames = 0 if voiced else self.silence_frames + 1
        if self.state is EndpointState.WAITING:
            recent = self._recent
            recent.pop(0)
            recent.append(voiced)
            if sum(recent) >= self._start_frames:
                self.state = EndpointState.SPEECH
                first = recent.index(True)
                self.start_frame = index - (len(recent) - 1 - first)
        elif self.silence_frames >= self._end_frames or (
            index - self.start_frame + 1 >= self._max_frames
        ):
            self.state = EndpointState.ENDED
            self.end_frame = index
        return self.state

    def __repr__(self) -> str:
        return (
            f"<Endpointer {self.state.value} frames={self.frames} start={self.start_frame} "
            f"end={self.end_frame}>"
        )
