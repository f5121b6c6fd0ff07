"""``dialflow amd classify``: WAV reading, resampling, JSON lines."""

from __future__ import annotations

import json
import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from dialflow.amd.offline import classify_file, main, read_wav
from dialflow.dsp.resample import resample
from dialflow.rtp.g711 import ulaw_encode

from .conftest import FIXTURES


def write(path: Path, x: np.ndarray, rate: int, channels: int = 1) -> None:
    a = np.clip(np.round(x * 32768), -32768, 32767).astype("<i2")
    if channels == 2:
        a = np.repeat(a, 2)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(a.tobytes())


def test_main_prints_one_json_line_per_file(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main([str(FIXTURES / "human.wav"), str(FIXTURES / "machine.wav")])
    lines = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert rc == 0
    assert [set(d) for d in lines] == [
        {"file", "result", "decisionMs", "beep", "beepMs", "reason", "confidence"}
    ] * 2
    assert [d["result"] for d in lines] == ["human", "machine"]
    assert lines[1]["beep"] is True and abs(lines[1]["beepMs"] - 7352) <= 150
    assert lines[0]["beep"] is False and lines[0]["beepMs"] is None


def test_other_rates_and_stereo_give_the_same_answer(tmp_path: Path) -> None:
    x, rate = read_wav(FIXTURES / "human.wav")
    p = tmp_path / "h16k.wav"
    write(p, resample(x, rate, 16000), 16000, channels=2)
    y, r2 = read_wav(p)
    assert r2 == 16000 and len(y) == 2 * len(x)
    a = classify_file(FIXTURES / "human.wav").decision
    b = classify_file(p).decision
    assert a.result == b.result
    assert abs(a.decision_ms - b.decision_ms) <= 100


def test_bad_file_is_reported_not_raised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav")
    assert main([str(bad)]) == 1
    assert "error" in json.loads(capsys.readouterr().out)


def test_mulaw_wav_recording_gives_the_same_answer(tmp_path: Path) -> None:
    # Call recordings are often stored as G.711 µ-law WAV (format tag 7).
    x, rate = read_wav(FIXTURES / "human.wav")
    codes = ulaw_encode(np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16))
    fmt = struct.pack("<HHIIHHH", 7, 1, rate, rate, 1, 8, 0)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"data" + struct.pack("<I", codes.size) + codes.tobytes()
    p = tmp_path / "human-ulaw.wav"
    p.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
    a = classify_file(FIXTURES / "human.wav").decision
    b = classify_file(p).decision
    assert (a.result, b.result) == ("human", "human")
    assert abs(a.decision_ms - b.decision_ms) <= 100
