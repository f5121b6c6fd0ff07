"""Model file format, the numpy tree evaluator and transcript keywords."""

from __future__ import annotations

import numpy as np
import pytest

from dialflow.amd.classifier import ModelError, TreeModel, default_model, keyword_scores
from dialflow.amd.features import FEATURE_NAMES, IDX, N_FEATURES


def tiny_model() -> dict:
    # class 0 gets +2 when speech_s <= 1.0 else -2; class 1 the opposite; class 2 nothing.
    f = IDX["speech_s"]
    tree = lambda k, lo, hi: {  # noqa: E731
        "class": k,
        "feature": [f, -1, -1],
        "threshold": [1.0, 0, 0],
        "left": [1, 0, 0],
        "right": [2, 0, 0],
        "value": [0, lo, hi],
    }
    return {
        "kind": "gbt",
        "version": 1,
        "classes": ["human", "machine", "unknown"],
        "features": list(FEATURE_NAMES),
        "baseline": [0.0, 0.0, -5.0],
        "depth": 1,
        "trees": [tree(0, 2.0, -2.0), tree(1, -2.0, 2.0)],
    }


def test_tree_evaluation_exact() -> None:
    m = TreeModel.from_dict(tiny_model())
    x = np.zeros(N_FEATURES)
    x[IDX["speech_s"]] = 0.5
    assert m.raw(x).tolist() == [2.0, -2.0, -5.0]
    x[IDX["speech_s"]] = 3.0
    p = m.predict_proba(x)
    assert p.argmax() == 1 and p.sum() == pytest.approx(1.0)


def test_model_must_match_features() -> None:
    d = tiny_model()
    d["features"] = d["features"][:-1]
    with pytest.raises(ModelError):
        TreeModel.from_dict(d)
    with pytest.raises(ModelError):
        TreeModel.from_dict({"kind": "gbt", "version": 1})


def test_shipped_model_loads_and_gives_probabilities() -> None:
    m = default_model()
    assert m.classes == ("human", "machine", "unknown")
    p = m.predict_proba(np.zeros(N_FEATURES))
    assert p.shape == (3,) and p.sum() == pytest.approx(1.0)
    assert m.meta.get("trainer", "").startswith("sklearn")


def test_keywords() -> None:
    m, h = keyword_scores("Hi, you've reached Sam. Please leave a message after the tone!")
    assert m >= 2.0 and h == pytest.approx(0.3)
    m, h = keyword_scores("Hello? Who's this?")
    assert m == 0.0 and h == pytest.approx(1.4)
    assert keyword_scores("") == (0.0, 0.0)
