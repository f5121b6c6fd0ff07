#!/usr/bin/env python3
"""Train the AMD classifier shipped as ``src/dialflow/amd/model.json``.

1. Makes clips with ``generate.py`` (in memory, reproducible from ``--seed``).
2. Runs each clip through the detector's own front end
   (:class:`dialflow.amd.features.FeatureExtractor`) and takes a feature snapshot every
   ``--step-ms`` up to ``--horizon-ms``, labelled with the clip's class. For a share of the
   clips a simulated recognizer transcript (words heard so far, with deletions and
   substitutions, some latency) fills the keyword features, so the model can use them but
   does not depend on them.
3. Fits scikit-learn's ``HistGradientBoostingClassifier`` (each clip weighs the same,
   classes balanced) and writes the trees as JSON for the numpy evaluator in
   :mod:`dialflow.amd.classifier`, after checking that both give the same probabilities.

Fax clips and SIT cases are left out: tones are decided by rules before the model runs.

    python scripts/amd/train.py                 # full model (about 5 minutes on 2 cores)
    python scripts/amd/train.py --quick --out /tmp/model.json   # CI smoke run (< 60 s)

Needs scikit-learn and scipy (dev only), espeak-ng and flite.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

import generate  # noqa: E402

from dialflow.amd.classifier import TreeModel, keyword_scores  # noqa: E402
from dialflow.amd.features import FEATURE_NAMES, FeatureExtractor  # noqa: E402

CLASSES = ("human", "machine", "unknown")
FRAME = 160
FILLER = ["the", "a", "and", "uh", "to", "you", "it", "oh", "in", "is"]


def transcript_at(
    clip: generate.Clip, t_ms: int, rng: np.random.Generator, latency: int, drop: float, sub: float
) -> str:
    """Simulated recognizer output at ``t_ms``: words finished ``latency`` ms ago."""
    words: list[str] = []
    for start, end, text in clip.speech_ms:
        toks = text.split()
        if not toks:
            continue
        step = (end - start) / len(toks)
        for i, w in enumerate(toks):
            if start + (i + 1) * step + latency <= t_ms:
                words.append(w)
    out = []
    for w in words:
        r = rng.random()
        if r < drop:
            continue
        out.append(str(rng.choice(FILLER)) if r < drop + sub else w)
    return " ".join(out)


def snapshots(args: tuple[int, int, int, int, float]) -> tuple[str, str, np.ndarray]:
    """Feature snapshots of clip ``index`` of run ``seed``."""
    seed, index, step_ms, horizon_ms, tx_share = args
    clip = generate.make_clip(seed, index)
    label = clip.label
    if label == "fax" or clip.meta.get("sit"):
        return label, clip.case, np.zeros((0, len(FEATURE_NAMES)))
    rng = np.random.default_rng([seed, index, 99])
    with_tx = rng.random() < tx_share
    latency = int(rng.uniform(300, 1200))
    drop, sub = rng.uniform(0.0, 0.4), rng.uniform(0.0, 0.3)
    audio = generate.to_int16(clip.audio)
    fe = FeatureExtractor()
    n = len(audio) // FRAME
    rows = []
    for i in range(n):
        now = (i + 1) * 20
        fe.push(audio[i * FRAME : (i + 1) * FRAME], now)
        last = i == n - 1
        if now > horizon_ms:
            break
        if now % step_ms == 0 or last:
            if last:
                fe.flush()
            m = h = 0.0
            has = False
            if with_tx:
                text = transcript_at(clip, now, rng, latency, drop, sub)
                if text:
                    m, h = keyword_scores(text)
                    has = True
            rows.append(fe.vector(now, m, h, has))
    return label, clip.case, np.array(rows)


def export(clf: Any, classes: tuple[str, ...]) -> dict[str, Any]:
    """The fitted HistGradientBoostingClassifier as the JSON model document."""
    trees = []
    depth = 0
    for stage in clf._predictors:
        for k, pred in enumerate(stage):
            nodes = pred.nodes
            leaf = nodes["is_leaf"].astype(bool)
            feat = np.where(leaf, -1, nodes["feature_idx"]).astype(int)
            trees.append(
                {
                    "class": k,
                    "feature": feat.tolist(),
                    "threshold": [float(v) for v in nodes["num_threshold"]],
                    "left": nodes["left"].astype(int).tolist(),
                    "right": nodes["right"].astype(int).tolist(),
                    "value": [float(v) for v in nodes["value"]],
                }
            )
            depth = max(depth, int(nodes["depth"].max()))
    baseline = np.asarray(clf._baseline_prediction, dtype=float).ravel()
    return {
        "kind": "gbt",
        "version": 1,
        "classes": list(classes),
        "features": list(FEATURE_NAMES),
        "baseline": baseline.tolist(),
        "depth": depth,
        "trees": trees,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--count", type=int, default=6400, help="clips to generate (all classes)")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--step-ms", type=int, default=100)
    ap.add_argument("--horizon-ms", type=int, default=8000)
    ap.add_argument(
        "--transcripts", type=float, default=0.3, help="share of clips with a transcript"
    )
    ap.add_argument("--iters", type=int, default=250)
    ap.add_argument("--leaves", type=int, default=15)
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument(
        "--min-leaf",
        type=int,
        default=200,
        help="snapshots per leaf at least (one clip gives up to 80 strongly correlated ones)",
    )
    ap.add_argument("--lr", type=float, default=0.08, help="learning rate")
    ap.add_argument("--l2", type=float, default=1.0, help="L2 regularisation of leaf values")
    ap.add_argument(
        "--human-weight",
        type=float,
        default=2.0,
        help="relative weight of human clips: calling a person a machine costs more",
    )
    ap.add_argument(
        "--drop",
        action="append",
        default=[],
        metavar="FEATURE",
        help="train without this feature (its column is zeroed: ablation runs)",
    )
    ap.add_argument("--quick", action="store_true", help="tiny run for CI (about 30 s)")
    ap.add_argument("--out", type=Path, default=ROOT / "src" / "dialflow" / "amd" / "model.json")
    a = ap.parse_args(argv)
    if a.quick:
        a.count, a.iters, a.horizon_ms, a.step_ms = min(a.count, 48), 30, 6000, 200
        a.min_leaf = min(a.min_leaf, 40)
    from sklearn.ensemble import HistGradientBoostingClassifier

    t0 = time.time()
    work = [(a.seed, i, a.step_ms, a.horizon_ms, a.transcripts) for i in range(a.count)]
    if a.jobs > 1:
        from multiprocessing import Pool

        with Pool(a.jobs) as pool:
            results = pool.map(snapshots, work, chunksize=4)
    else:
        results = [snapshots(w) for w in work]
    xs, ys, ws, groups = [], [], [], []
    for gi, (label, _case, rows) in enumerate(results):
        if label not in CLASSES or len(rows) == 0:
            continue
        xs.append(rows)
        ys.extend([CLASSES.index(label)] * len(rows))
        ws.extend([1.0 / len(rows)] * len(rows))
        groups.extend([gi] * len(rows))
    x = np.vstack(xs)
    for name in a.drop:
        x[:, FEATURE_NAMES.index(name)] = 0.0
    y = np.asarray(ys)
    w = np.asarray(ws)
    for k in range(len(CLASSES)):  # balance classes
        m = y == k
        if m.any():
            w[m] *= len(y) / (len(CLASSES) * w[m].sum())
    w[y == CLASSES.index("human")] *= a.human_weight
    print(
        f"snapshots: {len(y)} from {len(xs)} clips in {time.time() - t0:.1f}s; "
        f"per class {np.bincount(y, minlength=3).tolist()}",
        file=sys.stderr,
    )
    clf = HistGradientBoostingClassifier(
        max_iter=a.iters,
        learning_rate=a.lr,
        max_leaf_nodes=a.leaves,
        max_depth=a.depth,
        l2_regularization=a.l2,
        min_samples_leaf=a.min_leaf,
        random_state=a.seed,
    )
    clf.fit(x, y, sample_weight=w)
    doc = export(clf, CLASSES)
    doc["meta"] = {
        "seed": a.seed,
        "clips": len(xs),
        "snapshots": int(len(y)),
        "iters": a.iters,
        "leaves": a.leaves,
        "depth": a.depth,
        "min_leaf": a.min_leaf,
        "lr": a.lr,
        "l2": a.l2,
        "step_ms": a.step_ms,
        "horizon_ms": a.horizon_ms,
        "transcripts": a.transcripts,
        "quick": a.quick,
        "human_weight": a.human_weight,
        "count": a.count,
        "trainer": "sklearn.HistGradientBoostingClassifier",
    }
    if a.drop:
        doc["meta"]["dropped"] = a.drop
    model = TreeModel.from_dict(doc)
    idx = np.random.default_rng(0).choice(len(y), size=min(300, len(y)), replace=False)
    ref = clf.predict_proba(x[idx])
    ours = np.array([model.predict_proba(x[i]) for i in idx])
    err = float(np.abs(ref - ours).max())
    if err > 1e-6:
        print(f"numpy evaluator disagrees with sklearn by {err}", file=sys.stderr)
        return 1
    acc = float((clf.predict(x) == y).mean())
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(doc, separators=(",", ":")))
    print(
        f"model: {len(doc['trees'])} trees, depth {doc['depth']}, train snapshot accuracy "
        f"{acc:.3f}, wrote {a.out} ({a.out.stat().st_size // 1024} KiB) in {time.time() - t0:.1f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
