#!/usr/bin/env python3
"""AMD accuracy and decision-time benchmark over a labelled folder of WAVs.

    python bench/amd_eval.py /work/shared/corpus/amd-dev [--json details.json] [--jobs 2]

The folder holds ``labels.csv`` (``file,label,beep,beepStartMs``). Every file goes through
the same code as ``dialflow amd classify`` (:func:`dialflow.amd.offline.classify_file`).
Prints accuracy per class, the confusion matrix, median and p90 ``decisionMs`` per class,
beep detection (found within ±1 s / within ±150 ms, start error, false beeps) and ends
with ONE summary line starting ``amd_eval:``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from dialflow.amd.classifier import TreeModel
from dialflow.amd.offline import classify_file
from dialflow.amd.rules import AmdConfig

CLASSES = ("human", "machine", "fax", "unknown")
_MODEL: TreeModel | None = None
_CFG: AmdConfig | None = None


def make_config(timeout_ms: int, overrides: list[str]) -> AmdConfig:
    """AmdConfig with ``--set name=value`` overrides (numbers only)."""
    kw: dict[str, Any] = {"timeout_ms": timeout_ms}
    for item in overrides:
        name, _, value = item.partition("=")
        kw[name] = float(value) if "." in value else int(value)
    return AmdConfig(**kw)


def _init(model_path: str | None, timeout_ms: int, overrides: list[str]) -> None:
    global _MODEL, _CFG
    _MODEL = TreeModel.load(model_path) if model_path else None
    _CFG = make_config(timeout_ms, overrides)


def _run(path: str) -> dict[str, Any]:
    return classify_file(path, _CFG, _MODEL).as_dict()


def pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def evaluate(rows: list[dict[str, str]], results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    conf = {t: {p: 0 for p in CLASSES} for t in CLASSES}
    times: dict[str, list[float]] = {c: [] for c in CLASSES}
    beep_err: list[float] = []
    beep_total = beep_found = beep_150 = 0
    nobeep_machine = nobeep_machine_false = nobeep_all = nobeep_all_false = 0
    files = []
    for r in rows:
        res = results[r["file"]]
        t, p = r["label"], res["result"]
        conf[t][p] += 1
        times[t].append(res["decisionMs"])
        has_beep = r["beep"].strip().lower() == "true"
        err = None
        if has_beep:
            beep_total += 1
            if res["beep"] and res["beepMs"] is not None:
                err = res["beepMs"] - int(float(r["beepStartMs"]))
                if abs(err) <= 1000:
                    beep_found += 1
                    beep_err.append(abs(err))
                if abs(err) <= 150:
                    beep_150 += 1
        else:
            nobeep_all += 1
            nobeep_all_false += int(bool(res["beep"]))
            if t == "machine":
                nobeep_machine += 1
                nobeep_machine_false += int(bool(res["beep"]))
        files.append(
            {
                **res,
                "file": r["file"],
                "label": t,
                "truthBeep": has_beep,
                "truthBeepMs": r.get("beepStartMs") or None,
                "beepErrMs": err,
            }
        )
    n = len(rows)
    correct = sum(conf[c][c] for c in CLASSES)
    per_class = {
        c: (conf[c][c] / sum(conf[c].values()) if sum(conf[c].values()) else None) for c in CLASSES
    }
    n_h = sum(conf["human"].values())
    return {
        "files": n,
        "accuracy": correct / n if n else 0.0,
        "per_class": per_class,
        "confusion": conf,
        "human_as_machine": conf["human"]["machine"] / n_h if n_h else 0.0,
        "decision_ms": {c: {"p50": pct(times[c], 50), "p90": pct(times[c], 90)} for c in CLASSES},
        "beep": {
            "with_beep": beep_total,
            "recall": beep_found / beep_total if beep_total else None,
            "recall_150ms": beep_150 / beep_total if beep_total else None,
            "err_p50_ms": pct(beep_err, 50),
            "err_p90_ms": pct(beep_err, 90),
            "false_machine": nobeep_machine_false / nobeep_machine if nobeep_machine else None,
            "false_all": nobeep_all_false / nobeep_all if nobeep_all else None,
        },
        "details": files,
    }


def fmt(v: float | None, d: int = 3) -> str:
    return "na" if v is None else (f"{v:.{d}f}" if d else f"{v:.0f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("dir", type=Path)
    ap.add_argument("--json", type=Path, help="write per-file details and figures here")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--model", help="model JSON (default: the shipped one)")
    ap.add_argument("--timeout-ms", type=int, default=AmdConfig().timeout_ms)
    ap.add_argument("--errors", action="store_true", help="list misclassified files")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override an AmdConfig setting, e.g. --set human_confidence=0.8",
    )
    a = ap.parse_args(argv)
    with open(a.dir / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    paths = [str(a.dir / r["file"]) for r in rows]
    if a.jobs > 1:
        from multiprocessing import Pool

        with Pool(a.jobs, initializer=_init, initargs=(a.model, a.timeout_ms, a.set)) as pool:
            out = pool.map(_run, paths, chunksize=4)
    else:
        _init(a.model, a.timeout_ms, a.set)
        out = [_run(p) for p in paths]
    results = {r["file"]: o for r, o in zip(rows, out, strict=True)}
    ev = evaluate(rows, results)
    print(f"{a.dir}: {ev['files']} files, accuracy {ev['accuracy']:.3f}")
    print("class     acc     p50_ms  p90_ms   | predicted: " + " ".join(f"{c:>8}" for c in CLASSES))
    for c in CLASSES:
        dm = ev["decision_ms"][c]
        row = " ".join(f"{ev['confusion'][c][p]:>8d}" for p in CLASSES)
        acc = fmt(ev["per_class"][c])
        print(f"{c:<8} {acc:>6} {fmt(dm['p50'], 0):>8} {fmt(dm['p90'], 0):>7}   | {'':>10} {row}")
    b = ev["beep"]
    print(
        f"beep: {b['with_beep']} with beep, found(±1s) {fmt(b['recall'])}, within ±150ms "
        f"{fmt(b['recall_150ms'])}, |err| p50 {fmt(b['err_p50_ms'], 0)} "
        f"p90 {fmt(b['err_p90_ms'], 0)} ms, false on beepless machines "
        f"{fmt(b['false_machine'])}, on all beepless {fmt(b['false_all'])}"
    )
    if a.errors:
        for d in ev["details"]:
            bad_beep = d["truthBeep"] and (d["beepErrMs"] is None or abs(d["beepErrMs"]) > 150)
            if d["result"] != d["label"] or bad_beep or (not d["truthBeep"] and d["beep"]):
                print(
                    f"  {d['file']}: {d['label']} -> {d['result']} "
                    f"({d['reason']}, {d['confidence']}) at {d['decisionMs']} ms; "
                    f"beep {d['beepMs']} truth {d['truthBeepMs']}"
                )
    if a.json:
        a.json.write_text(json.dumps(ev, indent=1))
    pc, dm = ev["per_class"], ev["decision_ms"]
    print(
        f"amd_eval: files={ev['files']} accuracy={ev['accuracy']:.3f} "
        + " ".join(f"{c}={fmt(pc[c])}" for c in CLASSES)
        + f" human_as_machine={ev['human_as_machine']:.3f}"
        + f" p50_ms_human={fmt(dm['human']['p50'], 0)} p90_ms_human={fmt(dm['human']['p90'], 0)}"
        + f" p50_ms_machine={fmt(dm['machine']['p50'], 0)} p50_ms_fax={fmt(dm['fax']['p50'], 0)}"
        + f" beep_recall={fmt(b['recall'])} beep_recall_150ms={fmt(b['recall_150ms'])}"
        + f" beep_err_p90_ms={fmt(b['err_p90_ms'], 0)} beep_false={fmt(b['false_machine'])}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
