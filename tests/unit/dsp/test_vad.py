"""VAD: adapts to stationary noise, ignores quiet background, hears quiet speakers."""

from __future__ import annotations

from dialflow.dsp.vad import EnergyVad, VadConfig


def test_stationary_noise_is_not_speech_and_bursts_are() -> None:
    vad = EnergyVad()
    flags = [vad.update(-45.0) for _ in range(100)]
    assert not any(flags[5:])
    assert vad.update(-30.0)  # 15 dB over the floor


def test_background_far_below_speaker_is_ignored() -> None:
    vad = EnergyVad(VadConfig(speech_range_db=15.0))
    for _ in range(20):
        vad.update(-70.0)
    assert vad.update(-20.0)  # the person
    assert not vad.update(-40.0)  # 20 dB under them: background talk


def test_quiet_speaker_over_quiet_line() -> None:
    vad = EnergyVad()
    for _ in range(30):
        vad.update(-68.0)
    assert vad.update(-50.0)
    assert not vad.update(-64.0)
