"""The trained AMD classifier: gradient-boosted trees evaluated in numpy.

The model is trained by ``scripts/amd/train.py`` (scikit-learn, dev only) on clips made
by ``scripts/amd/generate.py`` and shipped as ``model.json`` next to this module. At run
time nothing but numpy is needed: the trees are stored as flat arrays and evaluated for
all trees at once, one level per step (``depth`` numpy operations per prediction).

Classes are ``human``, ``machine`` and ``unknown`` (silence, noise); fax and SIT are found
by the tone rules, never by the model. Inputs are the features of
:data:`dialflow.amd.features.FEATURE_NAMES`, including optional transcript keyword scores
from :func:`keyword_scores`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dialflow.amd.features import FEATURE_NAMES

MODEL_FILE = "model.json"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class ModelError(ValueError):
    """The model file is missing, malformed, or was trained on other features."""


@dataclass(slots=True)
class TreeModel:
    """A multi-class gradient-boosted tree ensemble (softmax over per-class raw scores)."""

    classes: tuple[str, ...]
    features: tuple[str, ...]
    baseline: FloatArray  # (n_classes,)
    tree_class: IntArray  # (n_trees,) class each tree adds to
    feature: IntArray  # (n_trees, n_nodes), -1 on leaves
    threshold: FloatArray  # (n_trees, n_nodes): go left when x <= threshold
    left: IntArray
    right: IntArray
    value: FloatArray  # (n_trees, n_nodes) leaf values (learning rate applied)
    depth: int
    meta: dict[str, Any]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TreeModel:
        """Build from the JSON document written by the training script."""
        try:
            if d.get("kind") != "gbt" or int(d.get("version", 0)) != 1:
                raise ModelError("unsupported model kind/version")
            trees = d["trees"]
            n_nodes = max(len(t["feature"]) for t in trees)
            n = len(trees)
            feature = np.full((n, n_nodes), -1, dtype=np.int64)
            threshold = np.zeros((n, n_nodes), dtype=np.float64)
            left = np.zeros((n, n_nodes), dtype=np.int64)
            right = np.zeros((n, n_nodes), dtype=np.int64)
            value = np.zeros((n, n_nodes), dtype=np.float64)
            for i, t in enumerate(trees):
                k = len(t["feature"])
                feature[i, :k] = t["feature"]
                threshold[i, :k] = t["threshold"]
                left[i, :k] = t["left"]
                right[i, :k] = t["right"]
                value[i, :k] = t["value"]
            model = cls(
                classes=tuple(d["classes"]),
                features=tuple(d["features"]),
                baseline=np.asarray(d["baseline"], dtype=np.float64),
                tree_class=np.asarray([t["class"] for t in trees], dtype=np.int64),
                feature=feature,
                threshold=threshold,
                left=left,
                right=right,
                value=value,
                depth=int(d["depth"]),
                meta=dict(d.get("meta", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"malformed AMD model: {exc}") from exc
        if model.features != FEATURE_NAMES:
            raise ModelError("model was trained on a different feature set")
        return model

    @classmethod
    def load(cls, path: str | Path | None = None) -> TreeModel:
        """Load ``path``, or the model shipped with the package when ``path`` is None."""
        if path is None:
            text = resources.files("dialflow.amd").joinpath(MODEL_FILE).read_text("utf-8")
        else:
            text = Path(path).read_text("utf-8")
        return cls.from_dict(json.loads(text))

    def raw(self, x: FloatArray) -> FloatArray:
        """Per-class raw scores for one feature vector."""
        rows = np.arange(self.feature.shape[0])
        node = np.zeros(self.feature.shape[0], dtype=np.int64)
        for _ in range(self.depth):
            f = self.feature[rows, node]
            leaf = f < 0
            go_left = x[np.where(leaf, 0, f)] <= self.threshold[rows, node]
            nxt = np.where(go_left, self.left[rows, node], self.right[rows, node])
            node = np.where(leaf, node, nxt)
        contrib = self.value[rows, node]
        return self.baseline + np.bincount(
            self.tree_class, weights=contrib, minlength=len(self.classes)
        )

    def predict_proba(self, x: FloatArray) -> FloatArray:
        """Class probabilities (order of :attr:`classes`) for one feature vector."""
        r = self.raw(x)
        e = np.exp(r - r.max())
        return np.asarray(e / e.sum(), dtype=np.float64)


_default_model: TreeModel | None = None


def default_model() -> TreeModel:
    """The shipped model, loaded once per process."""
    global _default_model
    if _default_model is None:
        _default_model = TreeModel.load()
    return _default_model


# ---------------------------------------------------------------------------------------
# Transcript keywords
# ---------------------------------------------------------------------------------------

MACHINE_PHRASES: dict[str, float] = {
    "leave a message": 1.0,
    "leave your message": 1.0,
    "leave a brief message": 1.0,
    "leave your name": 1.0,
    "after the tone": 1.0,
    "after the beep": 1.0,
    "at the tone": 1.0,
    "at the beep": 1.0,
    "following the tone": 1.0,
    "record your message": 1.0,
    "not available": 0.8,
    "unavailable": 0.8,
    "can't take your call": 0.8,
    "cannot take your call": 0.8,
    "can't come to the phone": 0.8,
    "can't answer": 0.7,
    "you have reached": 0.7,
    "you've reached": 0.7,
    "voicemail": 0.8,
    "voice mail": 0.8,
    "mailbox": 0.8,
    "get back to you": 0.6,
    "call you back": 0.6,
    "return your call": 0.6,
    "office hours": 0.5,
    "press": 0.3,
    "thank you for calling": 0.4,
    "thanks for calling": 0.4,
    "is closed": 0.5,
    "are closed": 0.5,
}
"""Phrases typical of recorded greetings, with weights (the score is their sum, capped at 3)."""

HUMAN_PHRASES: dict[str, float] = {
    "hello": 0.4,
    "who is this": 1.0,
    "who's this": 1.0,
    "who is calling": 1.0,
    "who's calling": 1.0,
    "can i help": 0.7,
    "speaking": 0.6,
    "yeah": 0.5,
    "yes": 0.3,
    "hi": 0.3,
    "hey": 0.4,
    "anybody there": 1.0,
    "anyone there": 1.0,
    "somebody there": 1.0,
}
"""Phrases typical of a person answering, with weights."""

_NON_WORD = re.compile(r"[^a-z' ]+")


def _normalise(text: str) -> str:
    return " " + " ".join(_NON_WORD.sub(" ", text.lower().replace("’", "'")).split()) + " "


def keyword_scores(text: str) -> tuple[float, float]:
    """(machine score, human score) of a transcript: sums of matched phrase weights."""
    t = _normalise(text)
    m = sum(w for p, w in MACHINE_PHRASES.items() if f" {p} " in t)
    h = sum(w for p, w in HUMAN_PHRASES.items() if f" {p} " in t)
    return min(m, 3.0), min(h, 3.0)
