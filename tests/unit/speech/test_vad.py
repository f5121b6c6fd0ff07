"""Endpointer: speech start with hysteresis, end after N ms of silence, the length cap."""

from __future__ import annotations

import numpy as np
import pytest

from dialflow.speech.vad import EndpointConfig, Endpointer, EndpointState

from .conftest import line_audio, requires_flite, silence


def frames(x: np.ndarray) -> list[np.ndarray]:
    return [x[i : i + 160] for i in range(0, x.size - 159, 160)]


def test_silence_and_line_noise_never_start_speech() -> None:
    ep = Endpointer()
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(8000 * 3) * 30).astype(np.int16)  # about -60 dBFS hiss
    for f in frames(np.concatenate([silence(1.0), noise])):
        assert ep.update(f) is EndpointState.WAITING
    assert ep.start_frame == -1 and ep.frames == 200


def test_a_single_click_is_not_speech() -> None:
    ep = Endpointer()
    click = silence(0.02)
    click[40:60] = 20000
    for f in frames(np.concatenate([silence(0.5), click, silence(0.5)])):
        ep.update(f)
    assert ep.state is EndpointState.WAITING


@requires_flite
async def test_start_and_end_frames_of_a_prompt() -> None:
    audio = await line_audio("thank you for calling", lead_s=1.0, tail_s=2.0)
    ep = Endpointer(EndpointConfig(end_silence_ms=600))
    states = [ep.update(f) for f in frames(audio)]
    assert ep.state is EndpointState.ENDED
    # flite starts with ~0.3 s of breath: the first loud frame is where the word begins.
    loud = [i for i, f in enumerate(frames(audio)) if np.abs(f.astype(float)).mean() > 500]
    assert loud[0] - 5 <= ep.start_frame <= loud[0], (ep.start_frame, loud[0])
    first_speech = states.index(EndpointState.SPEECH)
    assert first_speech - ep.start_frame == 4  # 5 voiced frames (100 ms) needed to start
    # It ends exactly 30 silent frames (600 ms) after the last voiced frame.
    assert ep.silence_frames == 30
    assert states[ep.end_frame] is EndpointState.ENDED
    assert states[ep.end_frame - 1] is EndpointState.SPEECH


@requires_flite
async def test_max_speech_cuts_a_long_utterance() -> None:
    audio = await line_audio("please listen carefully as our menu options have changed")
    ep = Endpointer(EndpointConfig(max_speech_ms=1000))
    for f in frames(audio):
        ep.update(f)
        if ep.state is EndpointState.ENDED:
            break
    assert ep.end_frame - ep.start_frame + 1 == 50


def test_bad_frame_and_bad_mode_are_refused() -> None:
    with pytest.raises(ValueError, match="160"):
        Endpointer().update(np.zeros(80, dtype=np.int16))
    with pytest.raises(ValueError, match="vad_mode"):
        Endpointer(EndpointConfig(vad_mode=7))
