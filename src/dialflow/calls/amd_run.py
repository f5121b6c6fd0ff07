"""Answering-machine detection on a live call: the detector fed from the media leg.

The detector (:mod:`dialflow.amd`) is sans-I/O; this module feeds it every received
20 ms frame from the moment of answer (so frame count × 20 ms is the time since
answer, the clock ``decisionMs`` and ``beepMs`` are measured on), turns its events into
the session's log and the Call object's ``amd`` field, and resolves ``decision`` for
a flow waiting in sync mode. With a words pool (:mod:`.amd_words`), the recognizer also
listens until the decision and the detector gets its transcript.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from ..amd import AmdConfig, AmdDecision, AmdDetector, BeepDetected
from .amd_words import AmdWords, AmdWordsPool
from .options import AmdOptions
from .session import CallSession

log = logging.getLogger(__name__)

# After the decision, how long a machine's greeting may run before we stop waiting for
# the beep (the detector has its own cap, ``beep_wait_ms``; this is the wall-clock guard).
BEEP_GUARD_SECONDS = 35.0


class CallAmd:
    def __init__(
        self,
        session: CallSession,
        options: AmdOptions,
        *,
        on_beep: Callable[[dict[str, Any]], object] | None = None,
        words: AmdWordsPool | None = None,
    ) -> None:
        self.session = session
        self.options = options
        config = dataclasses.replace(
            AmdConfig(), timeout_ms=options.timeout_ms, detect_beep=options.detect_beep
        )
        self._detector = AmdDetector(config)
        self._ms = 0
        self._sub: Any = None
        self._guard: asyncio.TimerHandle | None = None
        self._on_beep = on_beep
        self._pool = words
        self._words: AmdWords | None = None
        self.heard: str | None = None
        """What the recognizer heard before the decision; None when this call had no
        transcript (off, or over the cap)."""
        self.state: dict[str, Any] = {
            "result": None,
            "decisionMs": None,
            "beep": False if options.detect_beep else None,
            "beepMs": None,
            "reason": None,
            "confidence": None,
        }
        self.decision: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def start(self, leg: Any) -> None:
        if self._pool is not None:
            self._words = self._pool.open(self._on_words)
            if self._words is not None:
                self.heard = ""
        self._sub = leg.on_frame(self._on_frame)
        loop = asyncio.get_running_loop()
        # Frames stop on hold or a dead peer: decide at the timeout anyway.
        self._guard = loop.call_later(self.options.timeout_ms / 1000 + 0.5, self._timeout)

    def stop(self) -> None:
        """Stop listening; an undecided detector decides now with what it has."""
        if not self.decision.done():
            self._handle(self._detector.finish(self._ms))
        self._unsubscribe()

    def _unsubscribe(self) -> None:
        self._drop_words()
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        if self._guard is not None:
            self._guard.cancel()
            self._guard = None

    def _timeout(self) -> None:
        if not self.decision.done():
            self._handle(self._detector.finish(max(self._ms, self.options.timeout_ms)))
        if self.decision.done() and not self.options.detect_beep:
            self._unsubscribe()
        elif self.decision.done():
            loop = asyncio.get_running_loop()
            self._guard = loop.call_later(BEEP_GUARD_SECONDS, self.stop)

    def _drop_words(self) -> None:
        if self._words is not None and self._pool is not None:
            self._pool.release(self._words)
            self._words = None

    def _on_words(self, text: str) -> None:
        if self._words is not None and not self.decision.done():
            self.heard = text
            self._detector.add_transcript(text, self._ms)

    def _on_frame(self, frame: np.ndarray, _t: float) -> None:
        self._ms += 20
        if self._words is not None:
            try:
                self._words.feed(frame)
            except Exception:  # the words are an extra: AMD goes on with the sound alone
                log.exception("AMD transcript failed on %s", self.session.id)
                self._drop_words()
        try:
            events = self._detector.feed(frame, self._ms)
        except Exception:  # a detector bug must not take the call down
            log.exception("AMD failed on %s", self.session.id)
            self._unsubscribe()
            if not self.decision.done():
                self._decide(
                    {
                        "result": "unknown",
                        "decisionMs": self._ms,
                        "reason": "error",
                        "confidence": 0.0,
                    }
                )
            return
        if events:
            self._handle(events)
        if self._detector.done:
            self._unsubscribe()

    def _handle(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, AmdDecision) and not self.decision.done():
                self._decide(event.as_dict())
            elif isinstance(event, BeepDetected):
                self.state["beep"] = True
                self.state["beepMs"] = event.beep_ms
                self.session.record.amd = dict(self.state)
                self.session.record_event(
                    "amd.beep", beepMs=event.beep_ms, endMs=event.end_ms, freqHz=event.freq_hz
                )
                if self._on_beep is not None:
                    self._on_beep(dict(self.state))

    def _decide(self, fields: dict[str, Any]) -> None:
        self._drop_words()  # words only matter until the decision (the beep is a tone)
        self.state.update(fields)
        self.session.record.amd = dict(self.state)
        extra = {"heard": self.heard} if self.heard is not None else {}
        self.session.record_event("amd", **self.state, **extra)
        self.decision.set_result(dict(self.state))
