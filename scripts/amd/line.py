#!/usr/bin/env python3
"""Copy a labelled AMD set (WAVs + labels.csv) through another kind of line.

    python scripts/amd/line.py SRC_DIR OUT_DIR --gate 30      # silence suppression
    python scripts/amd/line.py SRC_DIR OUT_DIR --noise 30     # white noise of RMS 30 added

``--gate DB``: every 20 ms frame more than DB under the clip's loud frames (95th percentile
of frame levels) becomes digital zero, as VoIP silence suppression or a phone's noise
suppression leaves the quiet between words. ``--noise RMS``: white noise of that RMS (int16
units; 30 ≈ −61 dBFS) over the whole clip. The labels do not change: the same person or
greeting on another line. Used to check that the detector does not depend on the noise
floor of the corpora (docs/amd.md, "Measured figures").
"""

from __future__ import annotations

import argparse
import shutil
import sys
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import gate_silence


def gate(x: np.ndarray, below_db: float) -> np.ndarray:
    """``generate.gate_silence`` (the training data's silence suppression), with the clip's
    loud frames (95th percentile of frame levels) as the speech level."""
    n = x.size // 160 * 160
    frames = x[:n].astype(np.float64).reshape(-1, 160)
    loud = np.percentile(10 * np.log10((frames**2).mean(axis=1) + 1e-9), 95)
    return gate_silence(x.astype(np.float64), float(loud), below_db)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    kind = ap.add_mutually_exclusive_group(required=True)
    kind.add_argument("--gate", type=float, metavar="DB")
    kind.add_argument("--noise", type=float, metavar="RMS")
    ap.add_argument("--seed", type=int, default=5)
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    for name in ("labels.csv", "meta.jsonl"):
        if (a.src / name).exists():
            shutil.copy(a.src / name, a.out / name)
    rng = np.random.default_rng(a.seed)
    count = 0
    for path in sorted(a.src.glob("*.wav")):
        with wave.open(str(path)) as w:
            rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
            if (width, channels) != (2, 1):
                raise SystemExit(f"{path}: need 16-bit mono PCM")
            x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        if a.gate is not None:
            y = gate(x, a.gate)
        else:
            y = x + rng.normal(0.0, a.noise, x.size)
        with wave.open(str(a.out / path.name), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(np.clip(np.round(y), -32768, 32767).astype("<i2").tobytes())
        count += 1
    print(f"wrote {count} clips to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
