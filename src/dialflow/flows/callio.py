"""What a running flow hears and says on its call: digits, frames, prompts, barge-in.

One :class:`CallIO` per flow run subscribes to the media leg once and fans out:
DTMF (RFC 4733, SIP INFO, and in-band Goertzel detection when no telephone-event
was negotiated) goes into a digit buffer that survives across nodes (digits pressed
during a prompt are kept for the next ``gather``, API.md); received frames go to
whichever node is listening (recognizer, recorder, beep detector).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from ..dsp.dtmf_detect import InbandDtmfDetector
from ..media.sources import AudioSource, PlaybackState

FrameListener = Callable[[npt.NDArray[np.int16], float], None]

# Speech barge-in: this many consecutive frames above the level count as talking.
BARGE_IN_FRAMES = 8  # 160 ms
BARGE_IN_DBFS = -30.0
_BARGE_IN_RMS = 32768 * 10 ** (BARGE_IN_DBFS / 20)


def frame_rms(frame: npt.NDArray[np.int16]) -> float:
    """RMS level of a frame in sample units.

    One dot product instead of square + mean + sqrt (~1 µs instead of ~8 µs per frame;
    this runs for every received frame of every call, docs/performance.md).
    """
    if not len(frame):
        return 0.0
    samples = frame.astype(np.float64)
    return math.sqrt(float(samples.dot(samples)) / len(samples))


class CallIO:
    def __init__(self, leg: Any, *, inband_dtmf: bool) -> None:
        self.leg = leg
        self._digits: deque[str] = deque()
        self._digit_event = asyncio.Event()
        self._listeners: list[FrameListener] = []
        self._inband = InbandDtmfDetector() if inband_dtmf else None
        self._loud_frames = 0
        self.speaking = False  # the far end is talking now (energy VAD, for barge-in)
        self._speech_event = asyncio.Event()
        self.digit_log: list[str] = []
        self.on_digit: Callable[[str, str], object] | None = None  # (digit, source)
        # A MediaLeg hands out each frame's level, computed for a whole batch of calls
        # by the media clock; other frame sources are measured here.
        self._leg_level = hasattr(leg, "frame_rms")
        self._subs = [
            leg.on_dtmf(lambda d: self._digit(d.digit, "rfc4733")),
            leg.on_frame(self._frame),
        ]

    def close(self) -> None:
        for sub in self._subs:
            sub.close()
        self._subs.clear()
        self._listeners.clear()

    # -- digits

    def _digit(self, digit: str, source: str) -> None:
        self._digits.append(digit)
        self.digit_log.append(digit)
        self._digit_event.set()
        if self.on_digit is not None:
            self.on_digit(digit, source)

    def has_digits(self) -> bool:
        return bool(self._digits)

    def pop_digit(self) -> str | None:
        if not self._digits:
            self._digit_event.clear()
            return None
        return self._digits.popleft()

    async def next_digit(self, timeout: float) -> str | None:
        """The next digit (buffered first), or None after ``timeout`` seconds."""
        digit = self.pop_digit()
        if digit is not None:
            return digit
        self._digit_event.clear()
        try:
            await asyncio.wait_for(self._digit_event.wait(), timeout)
        except TimeoutError:
            return None
        return self.pop_digit()

    def clear_digits(self) -> None:
        self._digits.clear()
        self._digit_event.clear()

    # -- frames

    def _frame(self, frame: npt.NDArray[np.int16], t: float) -> None:
        if self._inband is not None:
            digit = self._inband.feed(frame)
            if digit is not None:
                self._digit(digit, "inband")
        level = self.leg.frame_rms if self._leg_level else frame_rms(frame)
        loud = level > _BARGE_IN_RMS
        self._loud_frames = self._loud_frames + 1 if loud else 0
        speaking = self._loud_frames >= BARGE_IN_FRAMES
        if speaking and not self.speaking:
            self._speech_event.set()
        self.speaking = speaking
        for listener in list(self._listeners):
            listener(frame, t)

    def listen(self, listener: FrameListener) -> Callable[[], None]:
        """Receive every frame until the returned function is called."""
        self._listeners.append(listener)

        def stop() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return stop

    # -- prompts

    async def play(self, source: AudioSource, *, barge_in: bool) -> str:
        """Play ``source``; "finished", or "barged" when DTMF or speech interrupted it."""
        playback = self.leg.play(source)
        if not barge_in:
            await playback.done()
            return "finished"
        if self._digits:
            playback.stop()
            return "barged"
        self._speech_event.clear()
        done = asyncio.ensure_future(playback.done())
        digit = asyncio.ensure_future(self._digit_event.wait())
        speech = asyncio.ensure_future(self._speech_event.wait())
        try:
            await asyncio.wait({done, digit, speech}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            digit.cancel()
            speech.cancel()
        if done.done() and done.result() is PlaybackState.FINISHED:
            return "finished"
        playback.stop()
        await asyncio.shield(done)
        return "barged"
