"""The detector end to end on synthetic tones and on the two WAV fixtures."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from dialflow.amd.classifier import TreeModel
from dialflow.amd.detector import AmdDecision, AmdDetector, BeepDetected
from dialflow.amd.features import FEATURE_NAMES
from dialflow.amd.offline import read_wav, to_frames_8k
from dialflow.amd.rules import AmdConfig, AmdResult
from dialflow.rtp.g711 import ulaw_decode, ulaw_encode
from dialflow.speech.tts import TtsEngine

from .conftest import FIXTURES, babble, frames, quiet, tone


def run(x: np.ndarray, cfg: AmdConfig | None = None) -> tuple[AmdDetector, list]:
    det = AmdDetector(cfg)
    events: list = []
    now = 0
    for fr, now in frames(x):
        events += det.feed(fr, now)
    events += det.finish(now)
    return det, events


def decision(events: list) -> AmdDecision:
    ds = [e for e in events if isinstance(e, AmdDecision)]
    assert len(ds) == 1
    return ds[0]


def test_cng_is_fax_quickly() -> None:
    x = np.concatenate([quiet(300), tone(1100, 500), quiet(3000, seed=1), tone(1100, 500)])
    d = decision(run(x)[1])
    assert (d.result, d.reason) == (AmdResult.FAX, "cng")
    assert 600 <= d.decision_ms <= 800


def test_ced_is_fax() -> None:
    d = decision(run(np.concatenate([quiet(200), tone(2100, 3000)]))[1])
    assert (d.result, d.reason) == (AmdResult.FAX, "ced")
    assert d.decision_ms <= 700


def test_sit_is_unknown() -> None:
    sit = np.concatenate([tone(985.2, 380), tone(1428.5, 380), tone(1776.7, 380)])
    d = decision(run(np.concatenate([quiet(300), sit, quiet(2000, seed=2)]))[1])
    assert (d.result, d.reason) == (AmdResult.UNKNOWN, "sit")


def test_silence_is_unknown_at_initial_silence() -> None:
    d = decision(run(quiet(6000))[1])
    assert (d.result, d.reason) == (AmdResult.UNKNOWN, "silence")
    assert 3500 <= d.decision_ms <= 3600


def test_short_file_decides_at_end() -> None:
    det, events = run(quiet(1200))
    d = decision(events)
    assert d.result is AmdResult.UNKNOWN and d.decision_ms == 1200
    assert det.done


def test_beep_after_speech_is_machine_and_reported_with_its_start() -> None:
    x = np.concatenate(
        [quiet(300), babble(1500), quiet(400, seed=3), tone(800, 400), quiet(800, seed=4)]
    )
    cfg = AmdConfig(machine_confidence=1.0, human_confidence=1.0)  # only the beep can decide
    _, events = run(x, cfg)
    d = decision(events)
    beeps = [e for e in events if isinstance(e, BeepDetected)]
    assert (d.result, d.reason) == (AmdResult.MACHINE, "beep")
    assert len(beeps) == 1 and abs(beeps[0].beep_ms - 2200) <= 40
    assert events.index(d) < events.index(beeps[0])


def test_long_greeting_rule_and_timeout() -> None:
    cfg = AmdConfig(
        machine_confidence=1.0, human_confidence=1.0, max_greeting_ms=2500, timeout_ms=9000
    )
    d = decision(run(np.concatenate([quiet(300), babble(4000)]), cfg)[1])
    assert (d.result, d.reason) == (AmdResult.MACHINE, "long_greeting")
    assert 2700 <= d.decision_ms <= 3100
    cfg = AmdConfig(
        machine_confidence=1.0, human_confidence=1.0, timeout_ms=1500, timeout_min_confidence=1.0
    )
    d = decision(run(np.concatenate([quiet(300), babble(4000)]), cfg)[1])
    assert (d.result, d.reason, d.decision_ms) == (AmdResult.UNKNOWN, "timeout", 1500)


def test_transcript_keywords_can_decide_machine() -> None:
    det = AmdDetector(AmdConfig(min_machine_speech_ms=100000))
    x = np.concatenate([quiet(300), babble(1600)])
    got = []
    for fr, now in frames(x):
        if now == 1500:
            det.add_transcript("hi you've reached dana please leave a message after the tone", now)
        got += det.feed(fr, now)
    d = [e for e in got if isinstance(e, AmdDecision)]
    assert d and d[0].result is AmdResult.MACHINE and d[0].decision_ms >= 1500


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        AmdConfig(timeout_ms=0)
    with pytest.raises(ValueError):
        AmdConfig(human_confidence=1.5)


@pytest.mark.parametrize(
    ("name", "want"), [("human", AmdResult.HUMAN), ("machine", AmdResult.MACHINE)]
)
def test_fixture_recordings(name: str, want: AmdResult) -> None:
    x, rate = read_wav(FIXTURES / f"{name}.wav")
    _, events = run(to_frames_8k(x, rate).astype(np.float64))
    d = decision(events)
    assert d.result is want
    assert 0.5 <= d.confidence <= 1.0
    if name == "machine":
        beeps = [e for e in events if isinstance(e, BeepDetected)]
        assert len(beeps) == 1 and abs(beeps[0].beep_ms - 7352) <= 150
    else:
        assert d.decision_ms <= 2500


def test_answer_in_the_middle_of_a_cng_burst_is_fax_at_its_edge() -> None:
    # The first 250 ms are the end of a CNG burst; the next one would come 3 s later.
    x = np.concatenate([tone(1100, 250), quiet(3250, seed=5), tone(1100, 500)])
    d = decision(run(x)[1])
    assert (d.result, d.reason) == (AmdResult.FAX, "cng")
    assert d.decision_ms <= 400


def flat_model(human: float, machine: float) -> TreeModel:
    """A model that always says the same (raw scores ``human``/``machine``, unknown -5)."""
    leaf = {"class": 0, "feature": [-1], "threshold": [0.0], "left": [0], "right": [0]}
    return TreeModel.from_dict(
        {
            "kind": "gbt",
            "version": 1,
            "classes": ["human", "machine", "unknown"],
            "features": list(FEATURE_NAMES),
            "baseline": [human, machine, -5.0],
            "depth": 0,
            "trees": [{**leaf, "value": [0.0]}],
        }
    )


def test_pause_after_a_short_answer_is_human() -> None:
    cfg = AmdConfig(pause_human_ms=700)
    x = np.concatenate([quiet(300), babble(700), quiet(3000, seed=2)])
    det = AmdDetector(cfg, flat_model(0.0, 0.0))  # undecided model: only the pause decides
    events: list = []
    for fr, now in frames(x):
        events += det.feed(fr, now)
    d = decision(events)
    assert (d.result, d.reason) == (AmdResult.HUMAN, "pause")
    assert 1600 <= d.decision_ms <= 1900
    # A model fairly sure of a machine holds the pause rule back.
    det = AmdDetector(cfg, flat_model(0.0, 1.0))
    events = []
    for fr, now in frames(x):
        events += det.feed(fr, now)
    assert all(e.reason != "pause" for e in events if isinstance(e, AmdDecision))


def test_vowel_followed_by_speech_is_not_a_beep() -> None:
    x = np.concatenate(
        [
            quiet(300),
            babble(1200),
            quiet(200, seed=6),
            tone(900, 300),
            babble(800, seed=7),
            quiet(1500, seed=8),
        ]
    )
    cfg = AmdConfig(machine_confidence=1.0, human_confidence=1.0, pause_human_ms=100000)
    _, events = run(x, cfg)
    assert not [e for e in events if isinstance(e, BeepDetected)]
    assert decision(events).reason != "beep"
    # It is the check on what follows that rejects it: without it the tone is a beep.
    cfg = AmdConfig(machine_confidence=1.0, human_confidence=1.0, beep_speech_after_ms=10**6)
    assert decision(run(x, cfg)[1]).reason == "beep"


def test_quiet_tone_under_the_speaker_is_not_a_beep() -> None:
    # A note 20 dB under the person who spoke (background music), in a pause.
    x = np.concatenate(
        [quiet(300), babble(1500), quiet(400, seed=3), tone(900, 400, amp=300.0), quiet(1500)]
    )
    cfg = AmdConfig(machine_confidence=1.0, human_confidence=1.0)
    assert decision(run(x, cfg)[1]).reason != "beep"
    loud_ok = AmdConfig(machine_confidence=1.0, human_confidence=1.0, beep_max_below_speech_db=60)
    assert decision(run(x, loud_ok)[1]).reason == "beep"


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed")
@pytest.mark.parametrize("text", ["Hi, this is Sam.", "Yeah, hello?", "Hello, this is Chris."])
async def test_a_person_on_a_line_with_silence_suppression_is_not_a_machine(text: str) -> None:
    # Nothing at all between the words (VoIP silence suppression, noise suppression): the
    # model once took a silent line for a recording and called such people machines.
    speech = (await TtsEngine(cache_bytes=0).render(text)).astype(np.float64)
    x = np.concatenate([np.zeros(2400), speech, np.zeros(8 * 8000)])
    x = ulaw_decode(ulaw_encode(x.astype(np.int16)))
    d = decision(run(x)[1])
    assert d.result is AmdResult.HUMAN, d
