#!/usr/bin/env python3
"""Cost of the AMD detector per call: frames per second on one core.

    python bench/amd_cost.py [DIR] [--seconds 5]

Feeds recordings (default: the amd-dev corpus if present, else synthetic speech-like
noise) frame by frame through :class:`~dialflow.amd.detector.AmdDetector` with beep
detection on and a timeout long enough that every frame is analysed, and reports how
many frames one core processes per second. A call needs 50 frames/s, so the share of a
core one call uses is ``50 / fps``. Ends with ONE summary line starting ``amd_cost:``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from dialflow.amd.detector import AmdDetector
from dialflow.amd.offline import read_wav, to_frames_8k
from dialflow.amd.rules import AmdConfig

FRAME = 160


def load_audio(d: Path | None, limit: int) -> list[np.ndarray]:
    if d is not None and d.is_dir():
        out = []
        for p in sorted(d.glob("*.wav"))[:limit]:
            x, rate = read_wav(p)
            out.append(to_frames_8k(x, rate))
        if out:
            return out
    rng = np.random.default_rng(0)
    n = 8000 * 10
    env = 1 + np.sin(2 * np.pi * 4 * np.arange(n) / 8000)
    return [(rng.normal(0, 2000, n) * env).astype(np.int16)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("dir", nargs="?", type=Path, default=Path("/work/shared/corpus/amd-dev"))
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=5.0, help="minimum measuring time")
    a = ap.parse_args(argv)
    clips = load_audio(a.dir, a.files)
    # Never decide early: every frame pays full analysis plus a model evaluation every 100 ms.
    cfg = AmdConfig(
        timeout_ms=10**9,
        initial_silence_ms=10**9,
        human_confidence=1.0,
        machine_confidence=1.0,
        unknown_confidence=1.0,
        max_greeting_ms=10**9,
        max_word_ms=10**9,
        max_utterances=10**6,
        after_greeting_silence_ms=10**9,
    )
    frames = 0
    t0 = time.process_time()
    while time.process_time() - t0 < a.seconds:
        for clip in clips:
            det = AmdDetector(cfg)
            n = len(clip) // FRAME
            for i in range(n):
                det.feed(clip[i * FRAME : (i + 1) * FRAME], (i + 1) * 20)
            frames += n
    dt = time.process_time() - t0
    fps = frames / dt
    share = 50.0 / fps
    print(f"{frames} frames in {dt:.2f} s CPU: {fps:.0f} frames/s, {1e6 / fps:.0f} us/frame")
    print(
        f"amd_cost: fps={fps:.0f} us_per_frame={1e6 / fps:.1f} "
        f"core_share_per_call={share * 100:.2f}% calls_per_core={fps / 50:.0f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
