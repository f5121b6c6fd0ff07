"""AMD transcripts: the recognizer follows the far end, utterance after utterance."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest

from dialflow.amd.classifier import keyword_scores
from dialflow.calls.amd_words import AmdWords, AmdWordsPool
from dialflow.speech.asr import Recognizer, RecognizerConfig

from ..speech.conftest import line_audio, requires_flite, silence

pytestmark = requires_flite


@pytest.fixture
async def recognizer() -> AsyncIterator[Recognizer]:
    rec = Recognizer(RecognizerConfig(use_processes=False))
    yield rec
    await rec.aclose()


async def feed(words: AmdWords, audio: np.ndarray) -> None:
    for start in range(0, audio.size - 159, 160):
        words.feed(audio[start : start + 160])
        if start % 1600 == 0:
            await asyncio.sleep(0)  # let the decoding tasks run, as the media clock would


async def settle(texts: list[str], predicate: Callable[[str], bool], seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not (texts and predicate(texts[-1])):
        assert asyncio.get_running_loop().time() < deadline, texts
        await asyncio.sleep(0.02)


async def test_words_reach_the_detector_and_accumulate_over_utterances(
    recognizer: Recognizer,
) -> None:
    texts: list[str] = []
    words = AmdWords(recognizer, texts.append)
    first = await line_audio("please leave a message after the tone", tail_s=1.2)
    second = await line_audio("goodbye", lead_s=0.0, tail_s=1.2)
    await feed(words, first)
    await settle(texts, lambda t: "message" in t)
    assert keyword_scores(texts[-1])[0] >= 1.0, texts  # a machine phrase, as the model wants
    await feed(words, np.concatenate([second, silence(0.2)]))
    await settle(texts, lambda t: "goodbye" in t)
    assert texts[-1].index("message") < texts[-1].index("goodbye")  # in order, both kept
    assert words.text == texts[-1]
    words.close()
    words.feed(first[:160])  # ignored once closed
    assert words.text == texts[-1]


async def test_pool_caps_concurrent_transcripts(recognizer: Recognizer) -> None:
    pool = AmdWordsPool(lambda: recognizer, 1)
    first = pool.open(lambda _t: None)
    assert first is not None and pool.active == 1
    assert pool.open(lambda _t: None) is None  # over the cap: acoustic AMD only
    pool.release(first)
    second = pool.open(lambda _t: None)
    assert second is not None
    pool.release(second)
    assert pool.active == 0
    assert AmdWordsPool(lambda: recognizer, 0).open(lambda _t: None) is None
    assert AmdWordsPool(None, 4).open(lambda _t: None) is None


async def test_a_broken_recognizer_turns_transcripts_off() -> None:
    def broken() -> Recognizer:
        raise RuntimeError("no pocketsphinx")

    pool = AmdWordsPool(broken, 3)
    assert pool.open(lambda _t: None) is None
    assert pool.limit == 0
