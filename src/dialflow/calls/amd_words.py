"""Words for answering-machine detection: the recognizer listening while AMD decides.

The detector's model takes transcript keywords ("leave a message", "you've reached", "how
can I help") as well as acoustic features (:mod:`dialflow.amd.classifier`). On a live call
this module supplies them: it feeds the answered call's audio to a free-form recognizer
session and hands the detector everything heard so far each time the hypothesis changes.

Words arrive when they arrive: the recognizer decodes in 240 ms batches in a worker process
(~0.3 s behind the audio), so they only count when they come before the acoustic evidence
has decided; the detector never waits for them. A session ends at each pause
(:class:`~dialflow.speech.vad.EndpointConfig`); the next utterance gets a new session and
the text accumulates. Decoding costs about 0.27 of a core per talking call, which is why
the number of calls transcribed at once is capped by the operator
(``DIALFLOW_AMD_TRANSCRIPTS``, :class:`AmdWordsPool`); calls over the cap get acoustic AMD.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from ..speech.asr import AsrError, Recognizer, RecognizerSession

log = logging.getLogger(__name__)


class AmdWords:
    """One call's transcript for its detector. Feed frames; ``on_text`` gets the text so far."""

    def __init__(self, recognizer: Recognizer, on_text: Callable[[str], None]) -> None:
        self._rec = recognizer
        self._on_text = on_text
        # One session per utterance, in order; an ended one may still be decoding its final
        # text while the next one listens, so each has its own follower task.
        self._sessions: list[RecognizerSession] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def text(self) -> str:
        """Everything recognised so far: each utterance's latest hypothesis, in order."""
        texts = (s.partial.text for s in self._sessions if s.partial is not None)
        return " ".join(t for t in texts if t)

    def feed(self, frame: npt.NDArray[np.int16]) -> None:
        """One 20 ms frame of the far end's audio (cheap: VAD and buffering only)."""
        if self._closed:
            return
        if not self._sessions or self._sessions[-1].ended:
            if not self._next_session():
                return
        self._sessions[-1].feed(frame)

    def close(self) -> None:
        """Stop listening and free the recognizer's decoders."""
        if self._closed:
            return
        self._closed = True
        for session in self._sessions:
            session.close()
        for task in self._tasks:
            task.cancel()

    def _next_session(self) -> bool:
        try:
            session = self._rec.session()
        except AsrError:
            self._closed = True  # the recognizer is shutting down: acoustic AMD only
            return False
        self._sessions.append(session)
        task = asyncio.get_running_loop().create_task(self._follow(session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _follow(self, session: RecognizerSession) -> None:
        """Pass on every new hypothesis of one utterance (with the text before it)."""
        try:
            async for update in session.partials():
                if self._closed:
                    return
                if update.text:
                    self._on_text(self.text)
        except AsrError:
            if not self._closed:
                log.warning("AMD transcript: recognition failed; acoustic evidence only")
                self.close()


class AmdWordsPool:
    """Hands out :class:`AmdWords` for at most ``limit`` calls at once (0 turns them off)."""

    def __init__(self, recognizer: Callable[[], Recognizer] | None, limit: int) -> None:
        self._recognizer = recognizer
        self.limit = max(0, limit) if recognizer is not None else 0
        self.active = 0

    async def start(self) -> None:
        """Start the recognizer's workers now, so the first call's words come in time."""
        if self._recognizer is None or self.limit == 0:
            return
        try:
            await self._recognizer().start()
        except Exception:  # pocketsphinx missing or broken: AMD goes on without words
            log.exception("AMD transcript: the recognizer did not start; acoustic AMD only")
            self.limit = 0

    def open(self, on_text: Callable[[str], None]) -> AmdWords | None:
        """A transcript for one call, or None when off or when ``limit`` calls have one."""
        if self._recognizer is None or self.active >= self.limit:
            return None
        try:
            recognizer = self._recognizer()
        except Exception:  # pocketsphinx missing or broken: AMD goes on without words
            log.exception("AMD transcript: no recognizer")
            self.limit = 0
            return None
        self.active += 1
        return AmdWords(recognizer, on_text)

    def release(self, words: AmdWords) -> None:
        """Give back the slot of a call's transcript (closes it)."""
        words.close()
        self.active = max(0, self.active - 1)
