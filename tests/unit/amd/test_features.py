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


def test_pause_structure_features() -> None:
    # A 1 s phrase, a sentence-length pause, a phrase, a long wait, a last phrase.
    x = np.concatenate(
        [
            quiet(300),
            babble(1000),
            quiet(500, seed=2),
            babble(800, seed=3),
            quiet(1200, seed=4),
            babble(500, seed=5),
            quiet(300, seed=6),
        ]
    )
    fe = run(x)
    v = fe.vector(fe.stats.t_ms)
    assert v[IDX["mid_gaps"]] == 1  # the 0.5 s pause; not the syllable gaps, not the wait
    assert 1.0 <= v[IDX["longest_gap_s"]] <= 1.4
    assert 0.8 <= v[IDX["first_utterance_s"]] <= 1.1
    assert v[IDX["utterances"]] == 3


def test_first_utterance_while_it_lasts() -> None:
    fe = run(np.concatenate([quiet(300), babble(700), quiet(600, seed=2)]))
    v = fe.vector(fe.stats.t_ms)
    assert v[IDX["first_utterance_s"]] == v[IDX["last_utterance_s"]] > 0.4
    assert v[IDX["mid_gaps"]] == 0
