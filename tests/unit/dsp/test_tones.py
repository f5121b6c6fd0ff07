"""Tone tracking, beeps, fax and SIT detection on synthetic signals."""

from __future__ import annotations

import numpy as np

from dialflow.dsp.spectrum import SpectrumAnalyzer
from dialflow.dsp.tones import BeepDetector, KnownToneDetector

RATE = 8000


def tone(freq: float, ms: float, amp: float = 8000.0) -> np.ndarray:
    n = int(RATE * ms / 1000)
    return amp * np.sin(2 * np.pi * freq * np.arange(n) / RATE)


def silence(ms: float, level: float = 30.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, level, int(RATE * ms / 1000))


def frames(x: np.ndarray):
    a = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    for i in range(len(a) // 160):
        yield a[i * 160 : (i + 1) * 160], (i + 1) * 20


def known_events(x: np.ndarray) -> list[tuple[str, int]]:
    an = SpectrumAnalyzer()
    det = KnownToneDetector()
    out = []
    for fr, now in frames(x):
        spec = an.analyze(fr)
        out += [(e.kind, e.start_ms) for e in det.update(an.samples, spec.level_db, now)]
    return out


def test_beep_after_quiet_is_found_with_its_start() -> None:
    x = np.concatenate([silence(1000), tone(1000, 400), silence(600, seed=1)])
    det = BeepDetector()
    beeps = [b for fr, now in frames(x) for b in det.feed(fr, now)] + det.finish()
    assert len(beeps) == 1
    assert abs(beeps[0].start_ms - 1000) <= 40
    assert abs(beeps[0].end_ms - 1400) <= 60
    assert abs(beeps[0].freq_hz - 1000) < 5


def test_rising_two_tone_beep_is_one_beep() -> None:
    x = np.concatenate([silence(800), tone(700, 200), tone(1050, 250), silence(500, seed=2)])
    det = BeepDetector()
    beeps = [b for fr, now in frames(x) for b in det.feed(fr, now)] + det.finish()
    assert [(b.tones, abs(b.start_ms - 800) <= 40) for b in beeps] == [(2, True)]


def test_short_blip_and_gliding_tone_are_not_beeps() -> None:
    t = np.arange(int(RATE * 0.5)) / RATE
    glide = 8000 * np.sin(2 * np.pi * (320 * t - 40 * t * t))  # 320 -> 280 Hz, voice-like
    x = np.concatenate(
        [silence(500), tone(900, 60), silence(500, seed=3), glide, silence(500, seed=4)]
    )
    det = BeepDetector()
    assert [b for fr, now in frames(x) for b in det.feed(fr, now)] + det.finish() == []


def test_tone_over_music_level_is_not_a_beep() -> None:
    bed = np.random.default_rng(5).normal(0, 8000, RATE * 2)  # loud broadband before the tone
    x = np.concatenate([bed, tone(1000, 400, amp=20000), silence(500)])
    det = BeepDetector()
    assert [b for fr, now in frames(x) for b in det.feed(fr, now)] + det.finish() == []


def test_cng_burst_detected() -> None:
    x = np.concatenate([silence(700), tone(1100, 500), silence(3000, seed=6)])
    ev = known_events(x)
    assert ev and ev[0][0] == "cng" and abs(ev[0][1] - 700) <= 40


def test_ced_detected_and_off_frequency_tone_is_not() -> None:
    assert known_events(np.concatenate([silence(300), tone(2100, 1000)]))[0][0] == "ced"
    assert known_events(np.concatenate([silence(300), tone(1600, 1000)])) == []


def test_sit_needs_all_three_segments() -> None:
    sit = np.concatenate([tone(913.8, 274), tone(1370.6, 274), tone(1776.7, 380)])
    assert [k for k, _ in known_events(np.concatenate([silence(300), sit, silence(500)]))] == [
        "sit"
    ]
    two = np.concatenate([silence(300), tone(941, 274), tone(1448, 274), silence(500)])
    assert known_events(two) == []


def test_cng_burst_cut_by_the_answer_is_reported_at_its_falling_edge() -> None:
    # Answered 300 ms into a 500 ms burst: 200 ms of 1100 Hz from the first frame, then quiet.
    x = np.concatenate([tone(1100, 200), silence(3000, seed=7)])
    ev = known_events(x)
    assert ev == [("cng", 0)]


def test_short_1100_hz_tone_after_answer_is_not_cng() -> None:
    # The same 200 ms tone later in the call is no burst tail (and too short for CNG).
    x = np.concatenate([silence(700), tone(1100, 200), silence(3000, seed=8)])
    assert known_events(x) == []


def test_falling_two_tone_beep_from_2000_hz_is_found() -> None:
    # A nominal 2000 Hz beep measures a little above 2000 Hz; it must not fall off the range.
    x = np.concatenate([silence(800), tone(2010, 200), tone(1250, 250), silence(600, seed=1)])
    det = BeepDetector()
    beeps = []
    for fr, now in frames(x):
        beeps += det.feed(fr, now)
    beeps += det.finish()
    assert len(beeps) == 1
    assert beeps[0].tones == 2
    assert abs(beeps[0].start_ms - 800) <= 60


def _beeps(x: np.ndarray) -> list:
    det = BeepDetector()
    return [b for fr, now in frames(x) for b in det.feed(fr, now)] + det.finish()


def test_multi_beep_with_long_gaps_between_pulses_is_one_beep_ending_at_its_last_pulse() -> None:
    # Three 120 ms pulses 140 ms apart: the first alone is too short to be a beep, and the
    # group must stay open across the gaps (it used to close after the first pulse).
    parts = [silence(800)]
    for i in range(3):
        parts += [tone(508, 120), silence(140, seed=10 + i)]
    x = np.concatenate([*parts, silence(600, seed=20)])
    beeps = _beeps(x)
    assert [b.tones for b in beeps] == [3]
    assert abs(beeps[0].start_ms - 800) <= 40
    assert abs(beeps[0].end_ms - (800 + 3 * 120 + 2 * 140)) <= 60


def test_multi_beep_of_short_pulses_is_found_but_one_short_pulse_is_not() -> None:
    # 70 ms pulses are shorter than a tone segment (4 frames); repeated at one frequency
    # they are a multi-beep.
    x = np.concatenate(
        [
            silence(800),
            tone(873, 70),
            silence(90),
            tone(873, 70),
            silence(90, seed=5),
            tone(873, 70),
            silence(600, seed=6),
        ]
    )
    beeps = _beeps(x)
    assert [b.tones for b in beeps] == [3]
    assert abs(beeps[0].start_ms - 800) <= 40
    # One such pulse, or two pulses at different pitches (a vowel, then another), is not.
    assert _beeps(np.concatenate([silence(800), tone(873, 70), silence(600, seed=7)])) == []
    x = np.concatenate(
        [silence(800), tone(600, 70), silence(90), tone(900, 70), silence(600, seed=8)]
    )
    assert _beeps(x) == []


def test_a_decaying_note_is_not_a_beep_but_a_steady_tone_is() -> None:
    # A plucked note in a music intro: pure and steady in pitch, but 20 dB down in 400 ms.
    t = np.arange(int(RATE * 0.4)) / RATE
    note = 12000 * np.sin(2 * np.pi * 800 * t) * 10 ** (-20 * t / 0.4 / 20)
    assert _beeps(np.concatenate([silence(800), note, silence(600, seed=9)])) == []
    steady = 12000 * np.sin(2 * np.pi * 800 * t)
    beeps = _beeps(np.concatenate([silence(800), steady, silence(600)]))
    assert [b.tones for b in beeps] == [1]
