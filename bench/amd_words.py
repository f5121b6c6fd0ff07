#!/usr/bin/env python3
"""AMD with and without the recognizer's words, on our own flite voice, in real time.

Each phrase is rendered by the default TTS voice, sent through a G.711 round trip with
light line noise, and fed frame by frame at the pace of a call (20 ms per frame) to an
:class:`~dialflow.amd.detector.AmdDetector`, once on its own and once with
:class:`~dialflow.calls.amd_words.AmdWords` feeding a warm recognizer (worker process, as
in the server). Prints one line per phrase and a summary line:

    amd_words: phrases=6 same_result=… faster=… slower=… median_gain_ms=…

    .venv/bin/python bench/amd_words.py [--noise 20] [--phrase "Leave a message."]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from dialflow.amd.detector import AmdDecision, AmdDetector
from dialflow.calls.amd_words import AmdWords
from dialflow.rtp.g711 import ulaw_decode, ulaw_encode
from dialflow.speech.asr import Recognizer, RecognizerConfig
from dialflow.speech.tts import TtsEngine

PHRASES = [
    ("machine", "Leave a message."),
    ("machine", "Please leave a message for Alex after the tone. I am away until Monday."),
    ("machine", "Hi, you have reached the voicemail of Alex Parker. Please leave a message."),
    ("human", "Yeah, hello?"),
    ("human", "Hello?"),
    ("human", "Good morning, Harbor Dental, this is Sam speaking, how can I help you?"),
]


async def run(audio: np.ndarray, rec: Recognizer | None) -> tuple[AmdDecision | None, str]:
    det = AmdDetector()
    now = 0
    heard = ""

    def on_text(text: str) -> None:
        nonlocal heard
        heard = text
        det.add_transcript(text, now)

    words = AmdWords(rec, on_text) if rec is not None else None
    t0 = time.monotonic()
    for i in range(audio.size // 160):
        now = (i + 1) * 20
        frame = audio[i * 160 : (i + 1) * 160]
        if words is not None:
            words.feed(frame)
        det.feed(frame, now)
        if det.decision is not None:
            break
        await asyncio.sleep(max(0.0, t0 + now / 1000 - time.monotonic()))
    if det.decision is None:
        det.finish(now)
    if words is not None:
        words.close()
    return det.decision, heard


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--noise", type=float, default=20.0, help="line noise, int16 RMS")
    ap.add_argument("--phrase", action="append", help="a phrase instead of the built-in set")
    a = ap.parse_args(argv)
    phrases = [("?", p) for p in a.phrase] if a.phrase else PHRASES
    tts = TtsEngine(cache_bytes=0)
    rng = np.random.default_rng(7)
    rec = Recognizer(RecognizerConfig())
    await rec.start()
    gains: list[int] = []
    same = faster = slower = 0
    try:
        for label, text in phrases:
            speech = await tts.render(text)
            x = np.concatenate([np.zeros(2400), speech.astype(np.float64), np.zeros(32000)])
            x = x + rng.normal(0, a.noise, x.size)
            audio = ulaw_decode(ulaw_encode(np.clip(x, -32768, 32767).astype(np.int16)))
            alone, _ = await run(audio, None)
            helped, heard = await run(audio, rec)
            assert alone is not None and helped is not None
            same += alone.result is helped.result
            gain = alone.decision_ms - helped.decision_ms
            gains.append(gain)
            faster += gain > 0
            slower += gain < 0
            print(
                f"{label:8} {text[:48]!r:52} acoustic {alone.result.value}/{alone.reason}"
                f" {alone.decision_ms} ms | words {helped.result.value}/{helped.reason}"
                f" {helped.decision_ms} ms heard {heard!r}"
            )
    finally:
        await rec.aclose()
    print(
        f"amd_words: phrases={len(phrases)} same_result={same} faster={faster}"
        f" slower={slower} median_gain_ms={int(statistics.median(gains))}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
