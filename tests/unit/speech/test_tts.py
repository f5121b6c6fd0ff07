"""TtsEngine: real flite renders, the prompt cache, shared in-flight renders, errors."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import numpy as np
import pytest

from dialflow.speech.cache import PromptCache
from dialflow.speech.tts import TtsEngine, TtsError, parse_wav, sanitize_text

from .conftest import band_share, requires_espeak, requires_flite


@requires_flite
async def test_render_is_8khz_int16_speech_of_plausible_length() -> None:
    tts = TtsEngine()
    audio = await tts.render("Press one for sales.")
    assert audio.dtype == np.int16 and audio.ndim == 1
    # Four words at flite's ~3 words/s: between 1 and 3 seconds at 8 kHz.
    assert 8000 <= audio.size <= 24000
    active = audio[np.abs(audio) > 300].astype(np.float64)
    assert active.size > 0.3 * audio.size  # mostly speech, not silence
    level = 10 * np.log10(np.mean(active**2) / 32768**2)
    assert -23.0 <= level <= -17.0  # normalised to -20 dBFS RMS
    assert band_share(audio) > 0.8  # a voice, in the telephone band
    assert not audio.flags.writeable  # the cache's array: callers copy to modify


@requires_flite
async def test_cache_hit_returns_same_array_without_rendering_again() -> None:
    tts = TtsEngine()
    first = await tts.render("Your appointment is confirmed.")
    again = await tts.render("Your  appointment is confirmed.\n")  # same text once sanitised
    assert again is first
    assert tts.render_count == 1
    other_voice = await tts.render("Your appointment is confirmed.", "awb")
    assert other_voice is not first and tts.render_count == 2


@requires_flite
async def test_concurrent_renders_of_one_prompt_render_once() -> None:
    tts = TtsEngine()
    results = await asyncio.gather(*(tts.render("Please hold the line.") for _ in range(10)))
    assert tts.render_count == 1
    assert all(r is results[0] for r in results)


@requires_flite
async def test_a_cancelled_waiter_does_not_cancel_the_shared_render() -> None:
    tts = TtsEngine()
    first = asyncio.ensure_future(tts.render("Thank you for calling."))
    second = asyncio.ensure_future(tts.render("Thank you for calling."))
    await asyncio.sleep(0)
    first.cancel()
    audio = await second
    assert audio.size > 8000 and tts.render_count == 1
    assert first.cancelled()


@requires_flite
async def test_disk_cache_survives_a_new_engine(tmp_path: Path) -> None:
    one = TtsEngine(cache_dir=str(tmp_path))
    audio = await one.render("Goodbye.")
    assert len(await asyncio.to_thread(lambda: list(tmp_path.glob("*.s16")))) == 1
    two = TtsEngine(cache_dir=str(tmp_path))
    again = await two.render("Goodbye.")
    assert two.render_count == 0
    np.testing.assert_array_equal(again, audio)


@requires_flite
async def test_library_and_binary_backends_give_the_same_samples() -> None:
    lib = await TtsEngine(flite_backend="lib").render("Say yes or no.")
    cli = await TtsEngine(flite_backend="cli").render("Say yes or no.")
    np.testing.assert_array_equal(lib, cli)


@requires_flite
async def test_text_is_never_an_option_or_a_shell_command(tmp_path: Path) -> None:
    target = tmp_path / "evil.wav"
    tts = TtsEngine(flite_backend="cli")
    audio = await tts.render(f"-o {target} ; touch {tmp_path}/x")
    assert audio.size > 0
    assert not target.exists() and not (tmp_path / "x").exists()


@requires_espeak
async def test_espeak_voice_renders_at_8khz() -> None:
    tts = TtsEngine()
    assert "espeak:en-us" in tts.voices()
    audio = await tts.render("-Press two for support.", "espeak:en-us")
    assert audio.dtype == np.int16 and 8000 <= audio.size <= 32000
    assert band_share(audio) > 0.7


@requires_flite
def test_voices_lists_the_default_first() -> None:
    voices = TtsEngine().voices()
    assert voices[0] == "kal16"
    assert {"awb", "kal", "slt", "rms"} <= set(voices)


async def test_missing_flite_binary_raises_tts_error_naming_the_package() -> None:
    tts = TtsEngine(flite_backend="cli", flite_path="/nonexistent/flite")
    with pytest.raises(TtsError, match="apt-get install flite"):
        await tts.render("hello there")


async def test_missing_espeak_raises_tts_error_naming_the_package() -> None:
    tts = TtsEngine(espeak_path="/nonexistent/espeak-ng")
    with pytest.raises(TtsError, match="apt-get install espeak-ng"):
        await tts.render("hello there", "espeak:en-us")


async def test_unknown_voice_and_bad_espeak_name_are_refused() -> None:
    tts = TtsEngine()
    with pytest.raises(TtsError, match="unknown voice"):
        await tts.render("hello", "hal9000")
    with pytest.raises(TtsError, match="bad espeak voice"):
        await tts.render("hello", "espeak:en;rm -rf")


async def test_empty_text_is_silence_without_rendering() -> None:
    tts = TtsEngine(flite_backend="cli", flite_path="/nonexistent/flite")
    audio = await tts.render(" \x00\t\x1b ")
    assert audio.size == 0 and tts.render_count == 0


def test_sanitize_removes_control_characters_and_caps_length() -> None:
    assert sanitize_text("Press\x001\x1b[31m for\u202e sales\r\n") == "Press 1 [31m for sales"
    assert sanitize_text("a" * 2000) == "a" * 2000
    with pytest.raises(TtsError, match="limit is 2000"):
        sanitize_text("a" * 2001)
    with pytest.raises(TtsError):
        sanitize_text(42)  # type: ignore[arg-type]


def test_parse_wav_reads_streaming_headers() -> None:
    pcm = np.arange(-5, 5, dtype=np.int16)
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 22050, 44100, 2, 16)
    data = b"data" + struct.pack("<I", 0x7FFFFFFF) + pcm.tobytes()
    wav = b"RIFF" + struct.pack("<I", 0x7FFFFFFF) + b"WAVE" + fmt + data
    out, rate = parse_wav(wav)
    assert rate == 22050
    np.testing.assert_array_equal(out, pcm)
    with pytest.raises(TtsError):
        parse_wav(b"not a wav file at all")


def test_prompt_cache_is_bounded_by_bytes_and_least_recently_used() -> None:
    cache = PromptCache(max_bytes=3 * (2000 + 200))
    arrays = {k: np.full(1000, i, dtype=np.int16) for i, k in enumerate("abcd")}
    for k in "abc":
        cache.put(("flite", "kal16", k), arrays[k])
    assert cache.get(("flite", "kal16", "a")) is arrays["a"]  # a is now the most recent
    cache.put(("flite", "kal16", "d"), arrays["d"])  # evicts b, the least recent
    assert cache.get(("flite", "kal16", "b")) is None
    assert cache.get(("flite", "kal16", "a")) is arrays["a"]
    assert len(cache) == 3 and cache.bytes == 3 * 2200
    cache.put(("flite", "kal16", "huge"), np.zeros(10_000, dtype=np.int16))  # > whole cache
    assert cache.get(("flite", "kal16", "huge")) is None and len(cache) == 3
