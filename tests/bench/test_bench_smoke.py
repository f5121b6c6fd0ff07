"""Smoke runs of every benchmark in ``bench/`` at toy size, and the benchmark parts that
need no server (the far end's DTMF, the sweep's report).

The smoke runs start a real ``dialflow serve`` and SIPp, so they are interop tests.
They only prove the harness works end to end: exit status 0, a last stdout line in
the exact summary format and the figures present in the JSON (the figures themselves
are for docs/performance.md, not for assertions on a shared machine).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from dialflow.rtp.dtmf import DtmfSender
from dialflow.rtp.packet import RtpPacket
from dialflow.rtp.stream import FeedResult, RtpReceiver, RtpSender

BENCH = Path(__file__).resolve().parents[2] / "bench"

CPS_LINE = re.compile(
    r"^cps: rate=\d+(\.\d+)? seconds=\d+(\.\d+)? placed=\d+ failed=\d+ retrans=\d+"
    r" api_p99_ms=\d+$"
)
CONCURRENT_LINE = re.compile(
    r"^concurrent_calls: calls=\d+ answered=\d+ jitter_p99_ms=(\d+\.\d|nan) lost=\d+"
    r" late=\d+ cpu_pct=\d+ rss_per_call_kb=-?\d+$"
)
SWEEP_LINE = re.compile(r"^sweep: points=\d+ runs=\d+ ok=\d+ failed=\d+ png=\S+$")


def _load(name: str) -> ModuleType:
    """A bench script as a module (it puts bench/ on sys.path for ``common`` itself)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _need_sipp() -> None:
    if shutil.which("sipp") is None:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail("sipp is not installed [CI is set, so this is an error]", pytrace=False)
        pytest.skip("sipp is not installed (run scripts/install-system-deps.sh as root)")


def _run(script: str, *args: str, timeout: float) -> tuple[str, str]:
    """Run a bench script: its last stdout line and its stderr."""
    _need_sipp()
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"{script} exited {proc.returncode}\n{proc.stderr[-3000:]}"
    lines = proc.stdout.strip().splitlines()
    assert lines, f"{script} printed nothing\n{proc.stderr[-3000:]}"
    return lines[-1], proc.stderr


@pytest.mark.interop
def test_cps_smoke(tmp_path: Path) -> None:
    out = tmp_path / "cps.json"
    line, _ = _run("cps.py", "--rate", "5", "--seconds", "2", "--json", str(out), timeout=90)
    assert CPS_LINE.match(line), line
    assert line.startswith("cps: rate=5 seconds=2 placed=10 ")
    assert out.exists()


@pytest.mark.interop
@pytest.mark.parametrize(
    ("mode", "key", "figure"),
    [("sync", "sync", "end_to_response_ms"), ("webhook", "webhooks", "first_attempt_delay_ms")],
)
def test_cps_latency_modes_smoke(tmp_path: Path, mode: str, key: str, figure: str) -> None:
    _need_sipp()
    out = tmp_path / "cps.json"
    extra = ["--webhooks"] if mode == "webhook" else []
    line, _ = _run(
        "cps.py",
        *("--rate", "3", "--seconds", "2", "--mode", mode, *extra, "--json", str(out)),
        timeout=90,
    )
    assert CPS_LINE.match(line), line
    data = json.loads(out.read_text())
    assert data[key][figure]["count"] > 0, data[key]
    assert {"p50", "p99"} <= set(data[key][figure]), data[key]


def test_media_clock_smoke() -> None:
    line, _ = _run("media_clock.py", "--legs", "4", "--seconds", "1", "--warmup", "0.2", timeout=60)
    assert re.match(r"^media_clock: legs=4 seconds=1 jitter_p99_ms=\d+\.\d+ lost=\d+ ", line), line


def test_amd_cost_smoke(tmp_path: Path) -> None:
    line, _ = _run("amd_cost.py", str(tmp_path / "none"), "--seconds", "0.3", timeout=60)
    assert re.match(r"^amd_cost: fps=\d+ us_per_frame=\d+\.\d+ core_share_per_call=", line), line


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed")
def test_amd_words_smoke() -> None:
    line, _ = _run("amd_words.py", "--phrase", "Leave a message.", timeout=120)
    assert re.match(
        r"^amd_words: phrases=1 same_result=[01] faster=[01] slower=[01] median_gain_ms=-?\d+$",
        line,
    ), line


def test_amd_eval_smoke(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    generate = BENCH.parent / "scripts" / "amd" / "generate.py"
    subprocess.run(
        [sys.executable, str(generate), str(clips), "--count", "8", "--seed", "5", "--jobs", "1"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    out = tmp_path / "eval.json"
    line, _ = _run("amd_eval.py", str(clips), "--jobs", "1", "--json", str(out), timeout=120)
    assert re.match(r"^amd_eval: files=8 accuracy=\d\.\d{3} human=", line), line
    assert json.loads(out.read_text())


@pytest.mark.interop
def test_concurrent_calls_smoke(tmp_path: Path) -> None:
    out = tmp_path / "concurrent.json"
    line, stderr = _run(
        "concurrent_calls.py",
        *("--calls", "5", "--hold", "2", "--settle", "1", "--json", str(out)),
        timeout=120,
    )
    assert CONCURRENT_LINE.match(line), line
    assert line.startswith("concurrent_calls: calls=5 ")
    data = json.loads(out.read_text())
    dtmf = data["dtmf"]
    for figures in (dtmf, dtmf["whole_run"]):
        assert set(figures["dtmf_to_prompt_ms"]) >= {"p50", "p99", "max"}
        assert isinstance(figures["count"], int)
    # Every call starts with the DTMF menu and the warm-up call alone lasts 3 s, so the
    # run holds digit -> prompt exchanges even when the 2 s window catches none.
    whole = dtmf["whole_run"]
    assert whole["count"] >= 1, dtmf
    assert whole["no_prompt"] == 0, dtmf
    assert whole["prompt_first_frames"] == 1, dtmf  # each detection is the reply's start
    assert "dtmf_to_prompt: count=" in stderr
    # What bench/sweep.py reads from these JSONs is there (the 2 s window may hold no
    # digit, so the windowed DTMF p99 may be null).
    sweep = _load("sweep")
    missing = [name for name, _t, read, _d in sweep.METRICS if read(data) is None]
    assert set(missing) <= {"dtmf_p99_ms"}, missing


def test_farend_dtmf_exchange() -> None:
    """The far end answers the server's cue with one digit the server's receiver decodes
    once, keeps the stream continuous, and times the reply prompt's first frame."""
    cc = _load("concurrent_calls")
    addr = ("127.0.0.1", 4000)
    now = [1_000_000_000_000]  # ns
    out: list[bytes] = []
    peer = cc.DtmfPeer(seed=7, clock=lambda: now[0], sendto=lambda p, a: out.append(p))
    # Sequence number and timestamp both wrap during the test.
    server = RtpSender(0, dtmf_payload_type=101, ssrc=0x1234, sequence=65530, timestamp=2**32 - 800)
    receiver = RtpReceiver(0, 101)
    digits = []
    sent = 0
    arrival = now[0]
    end_left = 0
    prompt = b"\x10" * 160

    def tick(packet: bytes) -> bytes | None:
        """The server's packet arrives at the far end; then 20 ms pass."""
        nonlocal sent, arrival, end_left
        sent += 1
        arrival += 20_000_000
        now[0] = arrival
        reply: bytes | None = peer.packet(addr, packet, arrival)
        if reply is None:
            out.append(packet)  # the echo
        elif reply:
            out.append(reply)
        due = peer.next_due()
        if due is not None and due < arrival + 20_000_000:
            assert due >= arrival  # a digit packet leaves after the one it replaces
            now[0] = due
            peer.flush(due)
            if out and out[-1][1] & 0x7F == 101 and out[-1][13] & 0x80 and not end_left:
                end_left = due
        for datagram in out:
            if receiver.feed(datagram, addr, now[0] / 1e9) is FeedResult.DIGITS:
                digits.extend(receiver.take_digits())
        out.clear()
        return reply

    for _ in range(5):
        assert tick(server.audio_packet(cc.SILENCE)) is None  # the plain echo
    server.start_dtmf(DtmfSender("9"))
    while server.dtmf_active:
        cue = server.dtmf_packet()
        assert cue is not None  # a one-digit string has no gap ticks
        reply = tick(cue)
        # The cue comes back as silence: echoed as an event it would be a digit.
        assert reply is not None and RtpPacket.parse(reply).payload_type == 0
    waited = 0
    while not digits:
        tick(server.audio_packet(cc.SILENCE))
        waited += 1
        assert waited < 100, "no digit"
    # 0.3-1.3 s after the cue's first packet (15-65 ticks), then 5 packets to the end.
    assert 5 <= waited <= 70
    assert [(d.digit, d.duration_ms) for d in digits] == [("5", 100)]
    assert end_left
    next_arrival = arrival + 20_000_000
    tick(server.audio_packet(cc.SILENCE))  # the tick at which the server reads the digit
    for _ in range(5):
        tick(server.audio_packet(prompt))
    assert len(digits) == 1  # the end packet's two repeats are not a second digit
    assert not peer.active and peer.next_due() is None
    stats = receiver.update_stats()
    assert stats.lost == 0 and stats.packets == sent  # one packet back for each sent

    report = peer.report()
    figures = cc.analyse_dtmf(
        [{"dtmf": report, "rec_start_ns": end_left - 1, "rec_stop_ns": now[0]}]
    )
    assert figures["count"] == 1 and figures["whole_run"]["count"] == 1
    wait_ms = (next_arrival - end_left) / 1e6
    assert 0 < wait_ms <= 20
    assert figures["digit_wait_ms"]["p50"] == pytest.approx(wait_ms, abs=0.01)
    assert figures["dtmf_to_prompt_ms"]["p50"] == pytest.approx(wait_ms + 20, abs=0.01)
    assert figures["first_packet_to_prompt_ms"]["p50"] == pytest.approx(wait_ms + 100, abs=0.01)
    assert figures["tick_to_prompt_ms"]["p50"] == pytest.approx(20.0)
    assert figures["prompt_tick"] == {"next": 0, "second": 1, "later": 0}
    assert figures["within_one_tick_pct"] == 100.0
    assert figures["no_prompt"] == 0 and figures["prompt_first_frames"] == 1
    # A window that starts after the digit leaves it to the whole-run figures.
    late = cc.analyse_dtmf([{"dtmf": report, "rec_start_ns": end_left + 1, "rec_stop_ns": now[0]}])
    assert late["count"] == 0 and late["dtmf_to_prompt_ms"]["p99"] is None
    assert late["whole_run"]["count"] == 1


def test_farend_digit_is_seven_packets_even_from_a_backlog() -> None:
    """A far end that falls behind (no flush between packets) still sends one digit of
    four updates and three end packets, in sequence order, then echoes again."""
    cc = _load("concurrent_calls")
    sent: list[bytes] = []
    peer = cc.DtmfPeer(seed=3, clock=lambda: 0, sendto=lambda p, a: sent.append(p))
    server = RtpSender(0, dtmf_payload_type=101, ssrc=9, sequence=100, timestamp=0)
    server.start_dtmf(DtmfSender("1"))
    t = 10**12
    while server.dtmf_active:
        t += 20_000_000
        cue = server.dtmf_packet()
        assert cue is not None
        assert peer.packet(("127.0.0.1", 6000), cue, t)  # echoed as silence
    replies = []
    for _ in range(100):  # 2 s of backlog, read in one go
        t += 20_000_000
        replies.append(peer.packet(("127.0.0.1", 6000), server.audio_packet(cc.SILENCE), t))
    assert replies.count(b"") == 7 and replies.count(None) == 93
    peer.flush(t)
    events = [RtpPacket.parse(p) for p in sent]
    assert [p.payload_type for p in events] == [101] * 7
    assert [p.marker for p in events] == [True] + [False] * 6
    assert [p.sequence_number for p in events] == sorted(p.sequence_number for p in events)
    assert [p.payload[1] >> 7 for p in events] == [0, 0, 0, 0, 1, 1, 1]  # the E bit


FAKE_CONCURRENT = """
import argparse, json, sys
p = argparse.ArgumentParser()
p.add_argument("--calls", type=int)
p.add_argument("--json")
args, rest = p.parse_known_args()
with open(sys.argv[0] + ".log", "a") as f:
    f.write(json.dumps([args.calls, rest]) + "\\n")
if args.calls == 3:
    sys.exit(1)
k = len(open(sys.argv[0] + ".log").readlines())  # varies per run: min < median < max
data = {
    "answered": args.calls,
    "media": {"jitter_ms": {"p50": 0.3, "p99": args.calls / 100 + k}, "lost": 0, "late": 0},
    "server_cpu_pct": args.calls / 10 + k,
    "rss_per_call_kb": 120.0,
    "dtmf": {"dtmf_to_prompt_ms": {"p99": 35.0}},
}
open(args.json, "w").write(json.dumps(data))
print("concurrent_calls: calls=%d answered=%d" % (args.calls, args.calls))
"""


def test_sweep_runs_summarises_and_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    sweep = _load("sweep")
    fake = tmp_path / "fake_cc.py"
    fake.write_text(FAKE_CONCURRENT)
    monkeypatch.setattr(sweep, "CONCURRENT", fake)
    out = tmp_path / "out"
    argv = ["--calls", "200", "100", "3", "--runs", "3", "--hold", "2", "--nice", "-10"]
    argv += ["--out", str(out), "--cooldown", "0", "--ramp-rate", "7"]
    assert sweep.main(argv) == 1  # the runs at 3 calls fail

    calls_seen = [
        json.loads(line) for line in (tmp_path / "fake_cc.py.log").read_text().splitlines()
    ]
    # Interleaved: every count once per round, and the options passed through.
    assert [c for c, _ in calls_seen] == [3, 100, 200] * 3
    assert all(
        rest == ["--ramp-rate", "7", "--hold", "2.0", "--nice", "-10"] for _, rest in calls_seen
    )

    png = out / "sweep.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    points = {p["calls"]: p for p in summary["points"]}
    assert points[3]["failed_runs"] == 3 and points[3]["cpu_pct"]["median"] is None
    cpu = points[100]["cpu_pct"]
    assert cpu["values"] == [12.0, 15.0, 18.0]  # rounds 1-3: runs 2, 5 and 8 of the sweep
    assert (cpu["median"], cpu["min"], cpu["max"]) == (15.0, 12.0, 18.0)

    lines = capsys.readouterr().out.strip().splitlines()
    assert SWEEP_LINE.match(lines[-1]), lines[-1]
    assert lines[-1].startswith("sweep: points=3 runs=3 ok=6 failed=3 ")
    assert lines[0].startswith("| calls | runs | answered | jitter p50 ms | jitter p99 ms |")
    row_100 = next(line for line in lines if line.startswith("| 100 |"))
    assert "| 15 (12–18) |" in row_100  # server CPU: median (min–max)
    assert "| 0.30 |" in row_100  # equal in every run: the value alone
