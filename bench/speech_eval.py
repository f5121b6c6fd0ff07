#!/usr/bin/env python3
"""How well dialflow understands its own prompts over a telephone line, and what it costs.

    python bench/speech_eval.py [--voice kal16] [--threads] [-v]

Renders IVR-style prompts with the TTS engine (default voice), sends each through a G.711
µ-law round trip at 8 kHz with silence around it, and recognises it through the streaming
session API (VAD, batches, end of speech after silence) twice: free-form, and constrained
with the whole prompt list as hints. Word accuracy is 1 − WER over all words (numbers
compared as words). Ends with ONE summary line starting ``speech_eval:``.

``tts_ms_per_audio_s`` is rendering time per second of audio (cache off, after one warm-up
render). ``asr_rtf`` is free-form decoding wall time per second of audio, including the
worker round trips (``asr_rtf_constrained`` adds the grammar pass).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from dialflow.rtp.g711 import ulaw_decode, ulaw_encode
from dialflow.speech.asr import Recognizer, RecognizerConfig, Transcript
from dialflow.speech.matching import edit_distance, normalize_words
from dialflow.speech.tts import TtsEngine

PROMPTS = [
    "Thank you for calling. Please listen carefully as our menu options have changed.",
    "Press 1 for sales.",
    "Press 2 for customer support.",
    "For billing questions, press 3.",
    "To speak with an operator, press 0 at any time.",
    "Please enter your account number followed by the pound key.",
    "Your appointment is confirmed for Tuesday, March 3rd at 10 in the morning.",
    "Say yes to confirm or no to cancel.",
    "Please leave a message after the tone.",
    "Your current balance is 42 dollars and 17 cents.",
    "Your payment of 150 dollars was received on June 21st.",
    "We are currently closed. Our office hours are Monday through Friday.",
    "Please hold while we transfer your call.",
    "All of our agents are busy. Your call will be answered in the order it was received.",
    "Your estimated wait time is 5 minutes.",
    "To repeat this menu, press the star key.",
    "I did not understand your answer. Please try again.",
    "Goodbye and have a nice day.",
    "This call may be recorded for quality purposes.",
    "Please say the name of the person you are trying to reach.",
    "Your package will be delivered on Friday, the 14th of August.",
    "Your prescription is ready for pickup at the pharmacy.",
    "To return to the main menu, press 9.",
    "Please enter your 4 digit pin.",
    "Your order number is 3 7 5 2.",
    "We could not verify your identity. Please call back later.",
    "This is a reminder about your dental appointment tomorrow at 2 in the afternoon.",
    "Press 1 if you are the account holder. Otherwise, press 2.",
    "Thank you. Your survey responses have been recorded.",
    "The number you have dialed is not in service.",
    "Please stay on the line for an important message about your account.",
    "You have 3 new voicemail messages.",
]


def telephone(samples: np.ndarray) -> np.ndarray:
    """8 kHz µ-law round trip with 0.3 s before and 1.2 s of silence after the prompt."""
    audio = np.concatenate([np.zeros(2400, np.int16), samples, np.zeros(9600, np.int16)]).astype(
        np.int16
    )
    return ulaw_decode(ulaw_encode(audio))


async def recognise(rec: Recognizer, audio: np.ndarray, hints: list[str] | None) -> Transcript:
    session = rec.session(hints=hints)
    for start in range(0, audio.size, 160):
        session.feed(audio[start : start + 160])
        if session.ended:
            break
    session.finish()
    return await session.result()


def errors(ref: str, hyp: str) -> tuple[int, int]:
    r, h = normalize_words(ref), normalize_words(hyp)
    return edit_distance(r, h), len(r)


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voice", default=None, help="TTS voice (default: the engine's default)")
    ap.add_argument("--threads", action="store_true", help="decode in a thread, not a process")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    tts = TtsEngine(cache_bytes=0)
    await tts.render("warm up the synthesiser", args.voice)
    rendered: list[np.ndarray] = []
    t0 = time.perf_counter()
    for text in PROMPTS:
        rendered.append(np.array(await tts.render(text, args.voice)))
    tts_s = time.perf_counter() - t0
    audio_s = sum(a.size for a in rendered) / 8000
    lines = [telephone(a) for a in rendered]

    rec = Recognizer(RecognizerConfig(use_processes=not args.threads))
    await rec.start()
    try:
        results: dict[str, list[Transcript]] = {"free": [], "constrained": []}
        elapsed: dict[str, float] = {}
        for mode, hints in (("free", None), ("constrained", PROMPTS)):
            t0 = time.perf_counter()
            for audio in lines:
                results[mode].append(await recognise(rec, audio, hints))
            elapsed[mode] = time.perf_counter() - t0
    finally:
        await rec.aclose()

    line_s = sum(a.size for a in lines) / 8000
    acc: dict[str, float] = {}
    for mode, transcripts in results.items():
        edits = words = 0
        for text, t in zip(PROMPTS, transcripts, strict=True):
            e, n = errors(text, t.text)
            edits, words = edits + e, words + n
            if args.verbose and e:
                print(f"  [{mode}] {text!r}\n      -> {t.text!r} (conf {t.confidence:.2f})")
        acc[mode] = 1.0 - edits / words
    exact = sum(t.phrase == p for p, t in zip(PROMPTS, results["constrained"], strict=True))
    if args.verbose:
        print(f"constrained: {exact}/{len(PROMPTS)} prompts returned as the exact phrase")
        print(f"asr_rtf_constrained={elapsed['constrained'] / line_s:.3f}")
    print(
        f"speech_eval: prompts={len(PROMPTS)} voice={args.voice or tts.default_voice} "
        f"tts_ms_per_audio_s={1000 * tts_s / audio_s:.2f} "
        f"asr_rtf={elapsed['free'] / line_s:.3f} "
        f"word_accuracy_free={acc['free']:.3f} "
        f"word_accuracy_constrained={acc['constrained']:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
