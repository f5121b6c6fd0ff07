"""The speech a flow uses: one TTS engine and one recognizer per process, shared by calls.

Both are created lazily (the recognizer starts worker processes that load pocketsphinx
models), so a server whose flows never listen never pays for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..speech import EndpointConfig, Recognizer, RecognizerConfig, Transcript, TtsEngine
from ..speech.asr import AsrError, RecognizerSession


class ListenSession:
    """One utterance being recognised, as the flow nodes use it."""

    def __init__(self, session: RecognizerSession) -> None:
        self._session = session

    def feed(self, frame: npt.NDArray[np.int16]) -> None:
        self._session.feed(frame)

    @property
    def speech_started(self) -> bool:
        return self._session.speech_started

    @property
    def ended(self) -> bool:
        return self._session.ended

    @property
    def partial(self) -> Transcript | None:
        """The latest hypothesis: ``text`` is what was heard, ``phrase`` the hint found in it."""
        return self._session.partial

    @property
    def partial_text(self) -> str:
        partial = self._session.partial
        return "" if partial is None else partial.text

    def partials(self) -> AsyncIterator[Transcript]:
        """Each new hypothesis as it is decoded, ending with the final one."""
        return self._session.partials()

    def finish(self) -> None:
        """No more audio is coming: decode what there is."""
        self._session.finish()

    async def wait_result(self, *, timeout: float, finish: bool = False) -> Transcript:
        """The final transcript; ``finish`` first declares the input over (no more audio)."""
        if finish:
            self._session.finish()
        try:
            result = await asyncio.wait_for(asyncio.shield(self._session.result()), timeout)
        except TimeoutError:
            self._session.finish()
            try:
                result = await asyncio.wait_for(self._session.result(), 5.0)
            except (TimeoutError, AsrError):
                return self._fallback()
        except AsrError:
            return self._fallback()
        return result

    def _fallback(self) -> Transcript:
        partial = self._session.partial
        if partial is None:
            return Transcript("", 0.0, True, None)
        return Transcript(partial.text, 0.0, True, partial.phrase)

    def close(self) -> None:
        self._session.close()


class SpeechServices:
    def __init__(
        self,
        *,
        cache_dir: Path | None = None,
        recognizer_config: RecognizerConfig | None = None,
    ) -> None:
        self._cache_dir = cache_dir
        self._tts: TtsEngine | None = None
        self._recognizer: Recognizer | None = None
        self._recognizer_config = recognizer_config or RecognizerConfig()

    @property
    def tts(self) -> TtsEngine:
        if self._tts is None:
            cache = str(self._cache_dir) if self._cache_dir is not None else None
            self._tts = TtsEngine(cache_dir=cache)
        return self._tts

    @property
    def recognizer(self) -> Recognizer:
        if self._recognizer is None:
            self._recognizer = Recognizer(self._recognizer_config)
        return self._recognizer

    async def synthesize(self, text: str, voice: str | None = None) -> npt.NDArray[np.int16]:
        return await self.tts.render(text, voice)

    def recognizer_session(
        self, hints: list[str], *, end_silence: float | None = None
    ) -> ListenSession:
        endpoint = None
        if end_silence is not None:
            ms = max(200, min(10_000, int(end_silence * 1000) // 20 * 20))
            endpoint = dataclasses.replace(EndpointConfig(), end_silence_ms=ms)
        return ListenSession(self.recognizer.session(hints, endpoint=endpoint))

    async def warm_up(self) -> None:
        """Start the recognizer's workers ahead of the first call that listens."""
        await self.recognizer.start()

    async def aclose(self) -> None:
        if self._recognizer is not None:
            with contextlib.suppress(Exception):
                await self._recognizer.aclose()
