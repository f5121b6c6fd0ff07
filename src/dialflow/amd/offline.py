"""``dialflow amd classify FILE.wav…``: the live detector run over recordings.

Each file is read (WAV: integer PCM, float, or G.711 µ-law/A-law; any rate, channels mixed
down), resampled to 8 kHz, cut into 20 ms frames and fed to
:class:`~dialflow.amd.detector.AmdDetector` with the same settings as a call
(``--timeout-ms`` as ``amd.timeoutMs``). At the end of the file it decides with the
evidence it has, as the timeout would. One JSON line per file:
``{"file", "result", "decisionMs", "beep", "beepMs", "reason", "confidence"}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from dialflow.amd.classifier import TreeModel
from dialflow.amd.detector import AmdDecision, AmdDetector, BeepDetected
from dialflow.amd.rules import AmdConfig
from dialflow.dsp.resample import resample
from dialflow.media.sources import decode_wav

RATE = 8000
FRAME = 160


class AudioFileError(ValueError):
    """The file is not a WAV file we can read."""


def read_wav(path: str | Path) -> tuple[npt.NDArray[np.float64], int]:
    """Read a WAV file (see :func:`dialflow.media.sources.decode_wav` for the formats) as
    mono float samples in [-1, 1) and its sample rate."""
    try:
        audio = decode_wav(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise AudioFileError(f"{path}: {exc}") from exc
    return audio.signal, audio.rate


def to_frames_8k(x: npt.NDArray[np.float64], rate: int) -> npt.NDArray[np.int16]:
    """Resample to 8 kHz and convert to int16 (the RTP path's format)."""
    y = resample(x, rate, RATE) if rate != RATE else x
    return np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16)


@dataclass(slots=True)
class FileResult:
    """What ``amd classify`` reports for one file."""

    file: str
    decision: AmdDecision
    beep_ms: int | None

    def as_dict(self) -> dict[str, object]:
        """The JSON line."""
        d = self.decision
        return {
            "file": self.file,
            "result": d.result.value,
            "decisionMs": d.decision_ms,
            "beep": self.beep_ms is not None,
            "beepMs": self.beep_ms,
            "reason": d.reason,
            "confidence": round(d.confidence, 3),
        }


def classify_samples(
    audio: npt.NDArray[np.int16],
    cfg: AmdConfig | None = None,
    name: str = "",
    model: TreeModel | None = None,
) -> FileResult:
    """Run the detector over 8 kHz int16 audio; decide at the end if it has not yet."""
    det = AmdDetector(cfg, model)
    beep: int | None = None
    n = len(audio) // FRAME
    now = 0
    for i in range(n):
        now = (i + 1) * 20
        for ev in det.feed(audio[i * FRAME : (i + 1) * FRAME], now):
            if isinstance(ev, BeepDetected) and beep is None:
                beep = ev.beep_ms
        if det.done:
            break
    if not det.done:
        rest = len(audio) - n * FRAME
        if rest:  # a last partial frame, padded with silence
            tail = np.zeros(FRAME, dtype=np.int16)
            tail[:rest] = audio[n * FRAME :]
            now = n * 20 + 20
            for ev in det.feed(tail, now):
                if isinstance(ev, BeepDetected) and beep is None:
                    beep = ev.beep_ms
        for ev in det.finish(now):
            if isinstance(ev, BeepDetected) and beep is None:
                beep = ev.beep_ms
    assert det.decision is not None
    return FileResult(name, det.decision, beep)


def classify_file(
    path: str | Path, cfg: AmdConfig | None = None, model: TreeModel | None = None
) -> FileResult:
    """Read, resample and classify one recording."""
    x, rate = read_wav(path)
    return classify_samples(to_frames_8k(x, rate), cfg, str(path), model)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dialflow amd classify``; returns the process exit code."""
    ap = argparse.ArgumentParser(
        prog="dialflow amd classify",
        description="Classify recordings as human / machine / fax / unknown (one JSON line each).",
    )
    ap.add_argument("files", nargs="+", help="WAV files (any rate; resampled to 8 kHz)")
    ap.add_argument("--timeout-ms", type=int, default=AmdConfig().timeout_ms, help="amd.timeoutMs")
    ap.add_argument("--no-beep", action="store_true", help="do not look for the beep")
    a = ap.parse_args(list(argv) if argv is not None else None)
    cfg = AmdConfig(timeout_ms=a.timeout_ms, detect_beep=not a.no_beep)
    status = 0
    for f in a.files:
        try:
            res = classify_file(f, cfg)
        except (OSError, AudioFileError) as exc:
            print(json.dumps({"file": f, "error": str(exc)}), flush=True)
            status = 1
            continue
        print(json.dumps(res.as_dict()), flush=True)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
