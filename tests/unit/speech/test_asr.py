"""Recognizer on our own flite prompts through G.711: constrained, free-form, sessions, errors.

Decoding runs in a worker thread here (``use_processes=False``) to save the process start;
one test covers the worker-process path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from dialflow.speech.asr import (
    AsrError,
    Recognizer,
    RecognizerConfig,
    RecognizerSession,
    SessionState,
    Transcript,
)
from dialflow.speech.matching import normalize_words

from .conftest import Int16Array, line_audio, requires_flite, silence

pytestmark = requires_flite

MENU = ["Press 1 for sales", "press two for support", "say yes or no", "goodbye"]


@pytest.fixture
async def recognizer() -> AsyncIterator[Recognizer]:
    rec = Recognizer(RecognizerConfig(use_processes=False))
    yield rec
    await rec.aclose()


def feed_all(session: RecognizerSession, audio: Int16Array) -> int:
    """Feed 20 ms frames until the session ends; returns the frames fed."""
    n = 0
    for start in range(0, audio.size, 160):
        if session.ended:
            break
        session.feed(audio[start : start + 160])
        n += 1
    return n


async def test_constrained_returns_the_phrase_as_given(recognizer: Recognizer) -> None:
    session = recognizer.session(hints=MENU)
    feed_all(session, await line_audio("press one for sales"))
    assert session.ended
    result = await session.result()
    assert result == Transcript("Press 1 for sales", result.confidence, True, "Press 1 for sales")
    assert result.confidence > 0.6
    assert session.state is SessionState.DONE


async def test_free_form_finds_most_words(recognizer: Recognizer) -> None:
    result = await recognizer.recognize(await line_audio("press one for sales"))
    words = set(normalize_words(result.text))
    assert len(words & {"press", "one", "for", "sales"}) >= 3, result
    assert result.is_final and result.phrase is None
    assert 0.0 < result.confidence <= 1.0


async def test_out_of_grammar_speech_is_not_forced_onto_a_phrase(recognizer: Recognizer) -> None:
    result = await recognizer.recognize(
        await line_audio("i would like to speak to a human"), hints=MENU
    )
    assert result.phrase is None
    assert "human" in result.text  # the free-form text stands


async def test_end_of_speech_fires_after_the_silence(recognizer: Recognizer) -> None:
    speech = await line_audio("thank you for calling", lead_s=0.5, tail_s=0.0)
    session = recognizer.session(endpoint=None)
    for start in range(0, speech.size, 160):
        session.feed(speech[start : start + 160])
    assert session.speech_started and not session.ended
    quiet = silence(2.0)
    frames = 0
    while not session.ended:
        session.feed(quiet[frames * 160 : (frames + 1) * 160])
        frames += 1
    # 800 ms of silence ends it: 40 frames, give or take the tail of the last word.
    assert 36 <= frames <= 44, frames
    result = await session.result()
    assert {"thank", "calling"} <= set(result.text.split()), result


async def test_silence_only_gives_an_empty_result_without_decoding(
    recognizer: Recognizer,
) -> None:
    session = recognizer.session(hints=MENU)
    session.feed(silence(3.0))
    assert not session.speech_started and not session.ended
    session.finish()
    assert session.ended
    assert await session.result() == Transcript("", 0.0, True, None)
    assert recognizer._lanes[0].executor is None  # no worker was ever needed


async def test_unknown_words_and_junk_hints_do_not_crash(recognizer: Recognizer) -> None:
    hints = ["zxqwv blorptangle", "", "!!!", "press one for sales", "Acme Dialflow", "42"]
    session = recognizer.session(hints=hints)
    feed_all(session, await line_audio("press one for sales"))
    result = await session.result()
    assert result.phrase == "press one for sales"
    only_unknown = await recognizer.recognize(
        await line_audio("press one for sales"), hints=["qqxzv zzptl"]
    )
    assert only_unknown.phrase is None and only_unknown.is_final


async def test_partials_grow_and_match_before_the_final(recognizer: Recognizer) -> None:
    audio = await line_audio("please leave a message after the tone")
    session = recognizer.session(hints=["message after the tone"])
    seen: list[Transcript] = []

    async def consume() -> None:
        async for t in session.partials():
            seen.append(t)

    consumer = asyncio.ensure_future(consume())
    for start in range(0, audio.size, 160):
        if session.ended:
            break
        session.feed(audio[start : start + 160])
        if start % 1600 == 0:
            await asyncio.sleep(0.01)  # let the driver pick up batches as they fill
    await asyncio.wait_for(consumer, 10)
    assert seen[-1].is_final and all(not t.is_final for t in seen[:-1])
    assert len(seen) >= 3  # several partials, then the final
    first_match = next(t for t in seen if t.phrase == "message after the tone")
    assert not first_match.is_final  # ``expect`` could pass before the end of speech
    assert session.partial is seen[-1]


async def test_close_fails_waiters_and_frees_the_decoder(recognizer: Recognizer) -> None:
    session = recognizer.session(hints=MENU)
    audio = await line_audio("press two for support")
    session.feed(audio[: audio.size // 2])
    assert session.speech_started
    waiter = asyncio.ensure_future(session.result())
    await asyncio.sleep(0.05)
    session.close()
    with pytest.raises(AsrError, match="closed"):
        await waiter
    assert session.state is SessionState.CLOSED
    for _ in range(5):  # let the cancelled driver run its cleanup
        await asyncio.sleep(0)
    assert recognizer._lanes[0].active == 0  # the decoder slot came back
    result = await asyncio.wait_for(recognizer.recognize(audio, hints=MENU), 10)
    assert result.phrase == "press two for support"


async def test_worker_process_path() -> None:
    async with Recognizer(RecognizerConfig(workers=1)) as rec:
        session = rec.session(hints=MENU)
        feed_all(session, await line_audio("say yes or no"))
        result = await asyncio.wait_for(session.result(), 20)
        assert result.phrase == "say yes or no"
    with pytest.raises(AsrError):
        rec.session()


async def test_feed_accepts_any_chunk_size_from_a_reused_buffer(
    recognizer: Recognizer,
) -> None:
    audio = await line_audio("goodbye")
    session = recognizer.session(hints=MENU)
    rng = np.random.default_rng(1)
    buf = np.empty(700, dtype=np.int16)  # the caller overwrites it every time
    pos = 0
    while pos < audio.size and not session.ended:
        # Whole frames (the media clock's case: no carry-over copy) and odd sizes.
        n = 160 if pos < 8000 else int(rng.integers(1, 700))
        n = min(n, audio.size - pos)
        buf[:n] = audio[pos : pos + n]
        session.feed(buf[:n])
        buf[:] = 12345
        pos += n
    result = await session.result()
    assert result.phrase == "goodbye"
