"""Speech statistics of the AMD front end on synthetic sound."""

from __future__ import annotations

import numpy as np

from dialflow.amd.features import FEATURE_NAMES, IDX, N_FEATURES, FeatureExtractor

from .conftest import babble, frames, quiet, tone


def run(x: np.ndarray) -> FeatureExtractor:
    fe = FeatureExtractor()
    for fr, now in frames(x):
        fe.push(fr, now)
    fe.flush()
    return fe


def test_two_utterances_with_a_pause() -> None:
    x = np.concatenate(
        [quiet(500), babble(800), quiet(900, seed=2), babble(600, seed=3), quiet(1000, seed=4)]
    )
    fe = run(x)
    st = fe.stats
    assert st.utterances == 2
    assert 400 <= st.first_onset_ms <= 600
    assert 700 <= st.longest_pause_ms <= 1200
    assert 800 <= st.silence_ms <= 1200
    v = fe.vector(st.t_ms)
    assert v.shape == (N_FEATURES,) and len(FEATURE_NAMES) == N_FEATURES
    assert v[IDX["utterances"]] == 2
    assert v[IDX["tone_s"]] == 0.0


def test_beep_is_a_tone_not_speech() -> None:
    x = np.concatenate([quiet(300), tone(1000, 500), quiet(500, seed=5)])
    fe = run(x)
    assert fe.stats.speech_frames <= 2  # at most the ramp frames
    assert 0.4 <= fe.vector(fe.stats.t_ms)[IDX["tone_s"]] <= 0.56


def test_silence_has_no_speech() -> None:
    fe = run(quiet(2000))
    v = fe.vector(2000)
    assert v[IDX["speech_s"]] == 0.0
    assert v[IDX["initial_silence_s"]] >= 1.9
