"""Real SIP peers for interop tests: SIPp scenarios and a headless baresip.

Nothing here imports dialflow: the peers are proven against each other in
``test_peers_selfcheck.py`` so that a failing interop test points at dialflow,
not at the harness. See ``docs/interop.md`` for the scenarios and pitfalls.

Three parts:

* media: G.711 µ-law, WAV and RTP/pcap writers (the pcaps SIPp plays, with
  RFC 4733 telephone-events), and audio assertions (``wav_energy_dbfs``,
  ``dominant_frequency``);
* :class:`Sipp`: one ``sipp`` process per scenario, results parsed from its
  ``-trace_stat`` CSV and ``-trace_screen`` dumps into a :class:`SippResult`;
* :class:`Baresip`: a baresip user agent with a throw-away config directory,
  driven over its ``ctrl_tcp`` JSON/netstring socket.

A missing ``sipp``/``baresip`` skips the test locally but fails it when the
``CI`` environment variable is set (CI installs them with
``scripts/install-system-deps.sh``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import numpy as np
import numpy.typing as npt

HERE = Path(__file__).resolve().parent
SCENARIO_DIR = HERE / "scenarios"
MEDIA_DIR = HERE / "media"

#: Committed media (regenerate with ``python tests/interop/peers.py``).
TONE_PCAP = MEDIA_DIR / "tone_1000hz_3s.pcap"
TONE_DTMF_PCAP = MEDIA_DIR / "tone_1000hz_dtmf.pcap"
#: Digits carried as RFC 4733 events in ``TONE_DTMF_PCAP``.
TONE_DTMF_DIGITS = "123#"
#: A short human-like answer (flite, voice kal, 8 kHz) as WAV and as pcap.
SPEECH_WAV = MEDIA_DIR / "speech_hello.wav"
SPEECH_PCAP = MEDIA_DIR / "speech_hello.pcap"
SPEECH_TEXT = "Hello? Who is this?"

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz (RFC 3551 §4.5: G.711 default ptime)
LOCALHOST = "127.0.0.1"
SIPP_BUILTIN = frozenset({"uac", "uas", "uac_pcap", "regexp", "branchc", "branchs"})

Int16Array = npt.NDArray[np.int16]


# --------------------------------------------------------------------------- environment


def in_ci() -> bool:
    """True when running under CI (``CI=true``), where missing peers are errors."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_binary(name: str) -> str:
    """Return the path of ``name``; skip the test if absent (fail it under CI)."""
    path = shutil.which(name)
    if path is None:
        _skip_or_fail(f"{name} is not installed (run scripts/install-system-deps.sh as root)")
    assert path is not None
    return path


def require_raw_socket() -> None:
    """SIPp 3.6's ``play_pcap_audio`` sends through a raw socket: root or CAP_NET_RAW."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP).close()
    except PermissionError:
        _skip_or_fail("SIPp 3.6 play_pcap_audio needs root or CAP_NET_RAW (raw socket)")


def _skip_or_fail(reason: str) -> None:
    import pytest

    if in_ci():
        pytest.fail(f"{reason} [CI is set, so this is an error]", pytrace=False)
    pytest.skip(reason)


_handed_out: set[int] = set()
_port_lock = threading.Lock()
_rng = random.SystemRandom()  # immune to tests that seed the global random


def find_free_udp_port(host: str = LOCALHOST, *, span: int = 1, tcp: bool = False) -> int:
    """A port ``p`` such that ``p .. p+span-1`` are free on ``host`` (UDP, and TCP if asked).

    Ports are drawn below the Linux ephemeral range (32768+) so that outgoing
    sockets cannot grab them between this check and the peer's bind, and are
    never handed out twice in one process.
    """
    with _port_lock:
        for attempt in range(1000):
            if attempt == 500:
                # Ports of finished tests are free again (the bind check below proves it):
                # forget them rather than run out in a long session.
                _handed_out.clear()
            base = _rng.randrange(20000, 32000 - span, 2)
            ports = range(base, base + span)
            if any(p in _handed_out for p in ports):
                continue
            if all(_bindable(host, p, socket.SOCK_DGRAM) for p in ports) and (
                not tcp or all(_bindable(host, p, socket.SOCK_STREAM) for p in ports)
            ):
                _handed_out.update(ports)
                return base
    raise RuntimeError("no free port block found")


def _bindable(host: str, port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def udp_port_bound(port: int) -> bool:
    """Whether some process has bound UDP ``port`` (Linux ``/proc/net/udp``)."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f, None)  # header
            for line in f:
                local = line.split()[1]  # "0100007F:3AF2"
                if int(local.rsplit(":", 1)[1], 16) == port:
                    return True
    return False


def _keep_workdirs() -> bool:
    """``DIALFLOW_INTEROP_KEEP=1`` keeps every peer's temp dir (traces, config, WAVs)."""
    return os.environ.get("DIALFLOW_INTEROP_KEEP", "") not in {"", "0"}


def _catches_signal(pid: int, signum: int) -> bool:
    """Whether ``pid`` has installed a handler for ``signum`` (``SigCgt`` mask)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except OSError:
        pass
    return False


# --------------------------------------------------------------------------- audio


def tone(freq: float, seconds: float, *, amplitude: float = 0.3) -> Int16Array:
    """A sine tone at 8 kHz, ``amplitude`` relative to full scale."""
    t = np.arange(int(round(seconds * SAMPLE_RATE))) / SAMPLE_RATE
    return (amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def ulaw_encode(samples: Int16Array) -> npt.NDArray[np.uint8]:
    """G.711 µ-law (ITU-T G.711 §3, the 0x84-bias segment encoder)."""
    x = samples.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    mag = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.clip(np.floor(np.log2(mag)).astype(np.int32) - 7, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    codes: npt.NDArray[np.int32] = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return codes.astype(np.uint8)


def ulaw_decode(codes: npt.NDArray[np.uint8]) -> Int16Array:
    """Inverse of :func:`ulaw_encode`."""
    u = ~codes.astype(np.int32) & 0xFF
    mag = (((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 0x07)
    return np.where(u & 0x80, 0x84 - mag, mag - 0x84).astype(np.int16)


def write_wav(path: Path, samples: Int16Array, rate: int = SAMPLE_RATE) -> Path:
    """Write mono 16-bit PCM (the only format baresip's ``aufile`` reads)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def read_wav(path: Path) -> tuple[Int16Array, int]:
    """Read a 16-bit PCM WAV as mono int16 (channels averaged) and its rate."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM is supported")
        channels, rate = w.getnchannels(), w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return data.astype(np.int16), rate


def _segment(path: Path, start: float, end: float | None) -> tuple[npt.NDArray[np.float64], int]:
    samples, rate = read_wav(path)
    lo = int(start * rate)
    hi = len(samples) if end is None else int(end * rate)
    return samples[lo:hi].astype(np.float64), rate


def wav_energy_dbfs(path: Path, *, start: float = 0.0, end: float | None = None) -> float:
    """RMS level of ``path`` (optionally a time slice) in dBFS; ``-inf`` if silent/empty."""
    seg, _ = _segment(path, start, end)
    if seg.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(seg * seg)))
    return 20 * math.log10(rms / 32768) if rms > 0 else -math.inf


def dominant_frequency(
    path: Path, *, start: float = 0.0, end: float | None = None, min_hz: float = 50.0
) -> float:
    """Frequency (Hz) of the strongest spectral peak above ``min_hz`` (Hann window)."""
    seg, rate = _segment(path, start, end)
    if seg.size < 64:
        raise ValueError(f"{path}: too little audio ({seg.size} samples)")
    seg -= seg.mean()
    spectrum = np.abs(np.fft.rfft(seg * np.hanning(seg.size)))
    freqs = np.fft.rfftfreq(seg.size, 1 / rate)
    spectrum[freqs < min_hz] = 0
    return float(freqs[int(np.argmax(spectrum))])


# --------------------------------------------------------------------------- RTP / pcap

#: RFC 4733 §3.2: DTMF event codes.
DTMF_EVENTS = {key: code for code, key in enumerate("0123456789*#ABCD")}
_PCAP_BASE_PORT = 6000  # SIPp maps the lowest UDP port in the pcap onto -mp / the SDP port


def rtp_packets(
    audio: Int16Array,
    *,
    dtmf: str = "",
    dtmf_after: float = 0.5,
    digit_ms: int = 100,
    gap_ms: int = 100,
    payload_type: int = 0,
    dtmf_payload_type: int = 101,
    ssrc: int = 0x0D1A1F10,
) -> list[tuple[float, bytes]]:
    """One RTP stream (send time, packet) of µ-law ``audio`` with RFC 4733 digits.

    The digits start ``dtmf_after`` seconds in; each lasts ``digit_ms`` and is
    followed by ``gap_ms`` of audio. Audio is not sent during an event, and the
    stream keeps one SSRC with continuous sequence numbers and timestamps, so a
    receiver sees exactly what a real phone would send.
    """
    frames = ulaw_encode(audio)
    n_frames = len(frames) // FRAME_SAMPLES
    out: list[tuple[float, bytes]] = []
    seq, ts, t = 0, 0, 0.0
    marker = True  # RFC 3551 §4.1: marker on the first packet of a talkspurt

    def emit(pt: int, payload: bytes, *, at: float, stamp: int, mark: bool = False) -> None:
        nonlocal seq
        header = struct.pack("!BBHII", 0x80, (0x80 if mark else 0) | pt, seq & 0xFFFF, stamp, ssrc)
        out.append((at, header + payload))
        seq += 1

    digits = list(dtmf)
    next_digit_at = round(dtmf_after * 1000 / 20)
    frame = 0
    while frame < n_frames:
        if digits and frame == next_digit_at:
            event = DTMF_EVENTS[digits.pop(0).upper()]
            steps = max(1, digit_ms // 20)
            for i in range(1, steps + 1):
                end = i == steps
                # RFC 4733 §2.3: event, E|R|volume(10 = -10 dBm0), duration in
                # timestamp units; §2.5.1.4: the final packet is sent three times.
                payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, i * FRAME_SAMPLES)
                for _ in range(3 if end else 1):
                    emit(dtmf_payload_type, payload, at=t, stamp=ts, mark=(i == 1))
                t += 0.02
            ts += steps * FRAME_SAMPLES
            frame += steps
            next_digit_at = frame + max(1, gap_ms // 20)
            continue
        chunk = frames[frame * FRAME_SAMPLES : (frame + 1) * FRAME_SAMPLES].tobytes()
        emit(payload_type, chunk, at=t, stamp=ts, mark=marker)
        marker = False
        ts += FRAME_SAMPLES
        t += 0.02
        frame += 1
    if digits:
        raise ValueError(f"audio too short for DTMF {dtmf!r}: {''.join(digits)!r} left over")
    return out


def write_pcap(path: Path, packets: Sequence[tuple[float, bytes]]) -> Path:
    """Write UDP datagrams as an Ethernet/IPv4 pcap (the link type SIPp replays).

    SIPp rewrites the addresses and ports when it plays the file; only the
    payload and the inter-packet times matter.
    """
    chunks = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for at, payload in packets:
        udp = struct.pack("!HHHH", _PCAP_BASE_PORT, _PCAP_BASE_PORT, 8 + len(payload), 0)
        ip = bytearray(
            struct.pack(
                "!BBHHHBBH4s4s",
                0x45,
                0,
                28 + len(payload),
                0,
                0x4000,
                64,
                17,
                0,
                bytes([127, 0, 0, 1]),
                bytes([127, 0, 0, 1]),
            )
        )
        csum = sum(struct.unpack("!10H", ip))
        csum = (csum & 0xFFFF) + (csum >> 16)
        csum = (csum & 0xFFFF) + (csum >> 16)
        ip[10:12] = struct.pack("!H", ~csum & 0xFFFF)
        frame = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
        frame += bytes(ip) + udp + payload
        sec = int(at)
        chunks.append(
            struct.pack("<IIII", sec, int(round((at - sec) * 1e6)), len(frame), len(frame))
        )
        chunks.append(frame)
    path.write_bytes(b"".join(chunks))
    return path


def read_pcap_rtp(path: Path) -> list[bytes]:
    """RTP payloads (UDP bodies) of a pcap written by :func:`write_pcap`."""
    data = path.read_bytes()
    pos, out = 24, []
    while pos + 16 <= len(data):
        incl = struct.unpack_from("<IIII", data, pos)[2]
        frame = data[pos + 16 : pos + 16 + incl]
        out.append(frame[14 + 20 + 8 :])
        pos += 16 + incl
    return out


def make_tone_pcap(
    path: Path,
    *,
    freq: float = 1000.0,
    seconds: float = 3.0,
    dtmf: str = "",
    dtmf_after: float = 0.5,
) -> Path:
    """A PCMU tone as a SIPp-playable pcap, optionally with RFC 4733 digits (PT 101)."""
    return write_pcap(path, rtp_packets(tone(freq, seconds), dtmf=dtmf, dtmf_after=dtmf_after))


def make_wav_pcap(path: Path, wav: Path, *, dtmf: str = "", dtmf_after: float = 0.5) -> Path:
    """An 8 kHz mono WAV (speech, a greeting…) as a SIPp-playable PCMU pcap."""
    samples, rate = read_wav(wav)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{wav}: need {SAMPLE_RATE} Hz, got {rate}")
    return write_pcap(path, rtp_packets(samples, dtmf=dtmf, dtmf_after=dtmf_after))


def make_speech_wav(path: Path, text: str, *, voice: str = "kal") -> Path:
    """Synthesize ``text`` with flite; its ``kal`` voice is already 8 kHz mono 16-bit."""
    flite = require_binary("flite")
    subprocess.run(
        [flite, "-voice", voice, "-t", text, "-o", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return path


def make_media(media_dir: Path = MEDIA_DIR) -> list[Path]:
    """(Re)generate the committed fixtures under ``tests/interop/media``."""
    media_dir.mkdir(parents=True, exist_ok=True)
    made = [
        make_tone_pcap(media_dir / TONE_PCAP.name, seconds=3.0),
        make_tone_pcap(media_dir / TONE_DTMF_PCAP.name, seconds=2.5, dtmf=TONE_DTMF_DIGITS),
    ]
    if shutil.which("flite"):
        wav = make_speech_wav(media_dir / SPEECH_WAV.name, SPEECH_TEXT)
        made += [wav, make_wav_pcap(media_dir / SPEECH_PCAP.name, wav)]
    return made


# --------------------------------------------------------------------------- SIPp

_FAILED_COLUMNS = re.compile(r"^Failed(?!Call\()\w*\(C\)$")


@dataclass(slots=True)
class SippResult:
    """Outcome of one SIPp run.

    ``exit_code`` is SIPp's: 0 all calls succeeded, 1 at least one failed,
    97 stopped by an internal command, 99 no call processed, 255 fatal error
    or ``-timeout`` reached (we pass ``-timeout_error``), 254 could not bind.
    ``rtp_sent`` counts pcap packets SIPp played; ``rtp_echoed`` counts RTP
    packets it received and echoed (``-rtp_echo``) -- both sampled from
    screen dumps, so the last ~0.3 s of a call may be missing.
    """

    exit_code: int
    successful: int
    failed: int
    retransmissions: int
    failure_reasons: dict[str, int]
    rtp_sent: int
    rtp_echoed: int
    command: list[str]
    workdir: Path
    stdout: str
    errors: str
    messages: str
    logs: str
    harness_failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Exit 0, no failed call, one success at least, and no harness check failed."""
        return (
            self.exit_code == 0
            and self.failed == 0
            and self.successful > 0
            and not self.harness_failures
        )

    def summary(self, tail: int = 3000) -> str:
        """A compact report for assertion messages."""
        return (
            f"sipp exit={self.exit_code} successful={self.successful} failed={self.failed} "
            f"retrans={self.retransmissions} reasons={self.failure_reasons} "
            f"rtp_sent={self.rtp_sent} rtp_echoed={self.rtp_echoed} "
            f"harness_failures={self.harness_failures}\n"
            f"cmd: {' '.join(self.command)}\nworkdir: {self.workdir}\n"
            f"--- errors ---\n{self.errors[-tail:]}\n--- logs ---\n{self.logs[-tail:]}\n"
            f"--- messages (tail) ---\n{self.messages[-tail:]}\n"
            f"--- stdout (tail) ---\n{self.stdout[-tail:]}"
        )


class Sipp:
    """One SIPp process running one scenario for ``calls`` calls.

    ``scenario`` is a file under ``tests/interop/scenarios`` (``"uas_answer"``
    or ``"uas_answer.xml"``), a path, or a SIPp built-in (``"uac"``, ``"uas"``).
    ``remote`` (``"host:port"``) makes it a client; without it, it is a server
    listening on ``local_port``. Scenario parameters:

    * ``pcap`` (``-key pcap``): what ``play=True`` plays (default 1 kHz tone);
    * ``play`` (``-set play 1``): play the pcap as RTP after the call is up;
    * ``rtp_echo``: echo every RTP packet received on ``media_port`` back;
    * ``hold_ms`` (``-d``): length of every ``<pause/>`` (call hold time);
    * ``uas_bye`` (``-set uas_bye 1``): in uas_answer, SIPp hangs up itself;
    * ``remote_bye`` (``-set remote_bye 1``): in uac_call, SIPp waits for the BYE;
    * ``auth_user``/``auth_password``: ``-key auth_user/auth_pass`` (what
      ``uas_auth`` accepts) and ``-au/-ap`` (what ``[authentication]`` sends);
    * ``proxy_auth`` (``-set proxy_auth 1``): uas_auth challenges with 407;
    * ``verify_digest`` (default: on for ``uas_auth``): recompute the digest
      of every received INVITE's credentials (RFC 2617 §3.2.2) and report
      mismatches in ``SippResult.harness_failures``;
    * ``keys``/``variables``/``extra_args``: anything else.

    Use as a context manager; the process is killed on exit no matter what.
    """

    def __init__(
        self,
        scenario: str | Path,
        *,
        remote: str | None = None,
        local_port: int | None = None,
        media_port: int | None = None,
        service: str = "dialflow",
        calls: int = 1,
        pcap: Path = TONE_PCAP,
        play: bool = False,
        rtp_echo: bool = False,
        hold_ms: int = 1000,
        uas_bye: bool = False,
        remote_bye: bool = False,
        auth_user: str = "alice",
        auth_password: str = "secret",
        proxy_auth: bool = False,
        verify_digest: bool | None = None,
        keys: Mapping[str, str] | None = None,
        variables: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        timeout: float = 30.0,
        workdir: Path | None = None,
    ) -> None:
        self.binary = require_binary("sipp")
        if play:
            require_raw_socket()
        self.local_port = local_port or find_free_udp_port()
        # -rtp_echo also binds media_port + 2 (a second stream): reserve both.
        self.media_port = media_port or find_free_udp_port(span=4)
        self.remote = remote
        self.timeout = timeout
        self.auth_user, self.auth_password = auth_user, auth_password
        # SIPp 3.6 cannot check a Proxy-Authorization hash: recompute it here.
        self.verify_digest = (
            str(scenario).startswith("uas_auth") if verify_digest is None else verify_digest
        )
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="sipp-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self._stdout: IO[bytes] | None = None
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()

        name = str(scenario)
        declared: set[str] = set()  # SIPp refuses -set for a variable the scenario lacks
        if name in SIPP_BUILTIN:
            scenario_args = ["-sn", name]
        else:
            path = Path(name)
            if not path.is_absolute() and not path.exists():
                path = SCENARIO_DIR / (name if name.endswith(".xml") else f"{name}.xml")
            if not path.exists():
                raise FileNotFoundError(path)
            scenario_args = ["-sf", str(path.resolve())]
            for group in re.findall(r'<Global\s+variables="([^"]*)"', path.read_text()):
                declared.update(v.strip() for v in group.split(",") if v.strip())
        all_keys = {
            "pcap": str(Path(pcap).resolve()),
            "auth_user": auth_user,
            "auth_pass": auth_password,
            **(keys or {}),
        }
        all_vars = {
            "play": "1" if play else "0",
            "uas_bye": "1" if uas_bye else "0",
            "remote_bye": "1" if remote_bye else "0",
            "proxy_auth": "1" if proxy_auth else "0",
            **(variables or {}),
        }
        cmd = [self.binary]
        if remote:
            cmd.append(remote)
        cmd += scenario_args
        cmd += ["-i", LOCALHOST, "-p", str(self.local_port), "-bind_local"]
        cmd += ["-mi", LOCALHOST, "-mp", str(self.media_port)]
        cmd += ["-m", str(calls), "-s", service, "-d", str(hold_ms), "-aa", "-nostdin"]
        cmd += ["-timeout", f"{int(math.ceil(timeout))}s", "-timeout_error"]
        cmd += ["-au", auth_user, "-ap", auth_password]
        cmd += ["-trace_stat", "-trace_screen", "-trace_err", "-trace_msg", "-trace_logs"]
        if rtp_echo:
            cmd.append("-rtp_echo")
        if name not in SIPP_BUILTIN:
            for k, v in all_keys.items():
                cmd += ["-key", k, v]
        for k, v in all_vars.items():
            if k in declared:
                cmd += ["-set", k, v]
        cmd += list(extra_args)
        self.argv = cmd

    @property
    def address(self) -> str:
        """``host:port`` SIPp listens on."""
        return f"{LOCALHOST}:{self.local_port}"

    def uri(self, user: str = "sipp") -> str:
        """A SIP URI reaching this SIPp."""
        return f"sip:{user}@{self.address}"

    def start(self) -> Self:
        """Launch SIPp and wait until its SIP port is bound."""
        self._stdout = (self.workdir / "stdout.txt").open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 5
        while not udp_port_bound(self.local_port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        self._poller = threading.Thread(target=self._poll_screens, daemon=True)
        self._poller.start()
        return self

    def _poll_screens(self) -> None:
        # SIPp prints RTP counters on its screen only, and drops them from the
        # exit dump (no elapsed period). SIGUSR2 makes it append the screens to
        # the -trace_screen log. Until SIPp installs its handler a USR2 would
        # kill it, so wait for the handler first.
        proc = self.proc
        assert proc is not None
        while not self._stop.wait(0.3) and proc.poll() is None:
            if _catches_signal(proc.pid, signal.SIGUSR2):
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGUSR2)

    def wait(self, timeout: float | None = None) -> SippResult:
        """Wait for SIPp to exit and parse its traces; kill it and raise on timeout."""
        if self.proc is None:
            self.start()
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=timeout if timeout is not None else self.timeout + 5)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TimeoutError(
                f"sipp did not finish: {' '.join(self.argv)}\n{self._read('stdout.txt')[-2000:]}"
            ) from None
        finally:
            self._stop.set()
        if self._poller is not None:
            self._poller.join()
        return self._result(code)

    def kill(self) -> None:
        """Kill SIPp (its whole session) if it is still running."""
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        if self._stdout is not None:
            self._stdout.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()
        # A temp dir we made goes away unless the block failed (or KEEP is set);
        # SippResult already holds the traces as text.
        if self._own_workdir and exc_type is None and not _keep_workdirs():
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _read(self, pattern: str) -> str:
        parts = [p.read_text(errors="replace") for p in sorted(self.workdir.glob(pattern))]
        return "\n".join(parts)

    def _result(self, code: int) -> SippResult:
        pid = self.proc.pid if self.proc else 0
        counters = _parse_stat_csv(self._read(f"*_{pid}_.csv"))
        messages = self._read(f"*_{pid}_messages.log")
        screens = self._read(f"*_{pid}_screen.log") + self._read("stdout.txt")
        return SippResult(
            exit_code=code,
            successful=counters.get("SuccessfulCall(C)", 0),
            failed=counters.get("FailedCall(C)", 0),
            retransmissions=counters.get("Retransmissions(C)", 0),
            failure_reasons={
                k[:-3]: v for k, v in counters.items() if _FAILED_COLUMNS.match(k) and v
            },
            rtp_sent=_max_int(r"(\d+) Total RTP pckts sent", screens),
            rtp_echoed=_max_int(r"(\d+) Total echo RTP pckts 1st stream", screens),
            command=self.argv,
            workdir=self.workdir,
            stdout=self._read("stdout.txt"),
            errors=self._read(f"*_{pid}_errors.log"),
            messages=messages,
            logs=self._read(f"*_{pid}_logs.log"),
            harness_failures=[
                problem
                for msg in (received_messages(messages) if self.verify_digest else [])
                if msg.startswith("INVITE ") and _AUTH_HEADER.search(msg)
                for problem in digest_problems(msg, self.auth_user, self.auth_password)
            ],
        )


def _parse_stat_csv(text: str) -> dict[str, int]:
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return {}
    header, last = lines[0].split(";"), lines[-1].split(";")
    out: dict[str, int] = {}
    for name, value in zip(header, last, strict=False):
        if value.isdigit():
            out[name] = int(value)
    return out


def _max_int(pattern: str, text: str) -> int:
    return max((int(m) for m in re.findall(pattern, text)), default=0)


def received_messages(trace: str) -> list[str]:
    """SIP messages SIPp received, from its ``-trace_msg`` log, in order."""
    out = []
    for block in re.split(r"^-{20,}[^\n]*$", trace, flags=re.M):
        head, _, body = block.strip().partition("\n")
        if "message received" in head:
            out.append(body.strip("\n"))
    return out


_AUTH_HEADER = re.compile(r"^(?:Proxy-)?Authorization:\s*Digest\s+(.*)$", re.M | re.I)


def digest_problems(message: str, username: str, password: str) -> list[str]:
    """What is wrong with the digest credentials in ``message`` (empty list: valid).

    Recomputes the response per RFC 2617 §3.2.2 (MD5, with or without
    ``qop=auth``) from the message's own realm/nonce/uri/cnonce/nc.
    """
    import hashlib

    match = _AUTH_HEADER.search(message)
    if match is None:
        return ["no Authorization / Proxy-Authorization header"]
    params = {
        k.lower(): q or t
        for k, q, t in re.findall(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))', match.group(1))
    }
    problems = []
    if params.get("username") != username:
        problems.append(f"username {params.get('username')!r} != {username!r}")
    if params.get("algorithm", "MD5").upper() != "MD5":
        problems.append(f"algorithm {params['algorithm']!r} not supported by the check")

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    method = message.split(" ", 1)[0]
    ha1 = md5(f"{params.get('username')}:{params.get('realm')}:{password}")
    ha2 = md5(f"{method}:{params.get('uri')}")
    if params.get("qop"):
        expected = md5(
            f"{ha1}:{params.get('nonce')}:{params.get('nc')}:{params.get('cnonce')}:"
            f"{params['qop']}:{ha2}"
        )
    else:
        expected = md5(f"{ha1}:{params.get('nonce')}:{ha2}")
    if params.get("response", "").lower() != expected:
        problems.append(f"response {params.get('response')!r} != expected {expected!r}")
    return problems


# --------------------------------------------------------------------------- baresip


@dataclass(frozen=True, slots=True)
class BaresipEvent:
    """One ctrl_tcp event, e.g. ``CALL_ESTABLISHED`` or ``CALL_DTMF_START`` (param: digit)."""

    index: int
    type: str
    param: str
    raw: dict[str, Any] = field(repr=False)

    @property
    def text(self) -> str:
        """``"TYPE param"`` -- what :meth:`Baresip.wait_for` matches against."""
        return f"{self.type} {self.param}"


class Baresip:
    """A headless baresip UA on 127.0.0.1, controlled over ctrl_tcp.

    It auto-answers (``answer_mode="auto"``), plays ``play_wav`` (default: a
    440 Hz tone) to the far end through the ``aufile`` source, records what it
    receives and what it sends through the ``sndfile`` filter
    (:attr:`recorded_wav`, :attr:`sent_wav`), and sends RFC 4733 DTMF.

    baresip 1.0 hangs up when the ``aufile`` source reaches the end of the
    file, so the WAV is looped to ``play_seconds``. There is no audio player:
    incoming audio is only recorded.
    """

    def __init__(
        self,
        *,
        user: str = "baresip",
        play_wav: Path | None = None,
        play_seconds: float = 60.0,
        answer_mode: str = "auto",
        auth: tuple[str, str] | None = None,
        extra_config: Mapping[str, str] | None = None,
        lifetime: float = 120.0,
        workdir: Path | None = None,
    ) -> None:
        self.binary = require_binary("baresip")
        self.user = user
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="baresip-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.record_dir = self.workdir / "rec"
        self.record_dir.mkdir(exist_ok=True)
        # baresip listens on UDP+TCP sip_port and TLS on sip_port + 1.
        self.sip_port = find_free_udp_port(span=2, tcp=True)
        self.ctrl_port = find_free_udp_port(tcp=True)
        rtp_base = find_free_udp_port(span=20)
        source = (
            play_wav
            if play_wav is not None
            else write_wav(self.workdir / "tone440.wav", tone(440.0, 1.0))
        )
        self.source_wav = self._loop_wav(source, play_seconds)
        config = {
            "poll_method": "epoll",
            "sip_listen": f"{LOCALHOST}:{self.sip_port}",
            "call_max_calls": "4",
            "audio_source": f"aufile,{self.source_wav}",
            "ausrc_srate": str(SAMPLE_RATE),
            "ausrc_channels": "1",
            "rtp_ports": f"{rtp_base}-{rtp_base + 19}",
            "jitter_buffer_delay": "1-10",
            "module_path": "/usr/lib/baresip/modules",
            "ctrl_tcp_listen": f"{LOCALHOST}:{self.ctrl_port}",
            "snd_path": str(self.record_dir),
            **(extra_config or {}),
        }
        lines = [f"{k}\t{v}" for k, v in config.items()]
        lines += [
            "module\tg711.so",
            "module\taufile.so",
            "module\tsndfile.so",
            "module_tmp\taccount.so",
            "module_app\tmenu.so",
            "module_app\tctrl_tcp.so",
        ]
        (self.workdir / "config").write_text("\n".join(lines) + "\n")
        account = (
            f"<sip:{user}@{LOCALHOST}:{self.sip_port}>;regint=0;answermode={answer_mode}"
            ";audio_codecs=PCMU;ptime=20"
        )
        if auth:
            account += f";auth_user={auth[0]};auth_pass={auth[1]}"
        (self.workdir / "accounts").write_text(account + "\n")
        self.argv = [self.binary, "-f", str(self.workdir), "-v", "-t", str(int(lifetime))]
        self.proc: subprocess.Popen[bytes] | None = None
        self._stdout: IO[bytes] | None = None
        self._sock: socket.socket | None = None
        self._events: list[BaresipEvent] = []
        self._responses: dict[str, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._token = 0

    def _loop_wav(self, source: Path, seconds: float) -> Path:
        samples, rate = read_wav(source)
        if rate != SAMPLE_RATE:
            raise ValueError(f"{source}: baresip aufile needs {SAMPLE_RATE} Hz, got {rate}")
        reps = max(1, math.ceil(seconds * rate / max(1, len(samples))))
        return write_wav(self.workdir / "source.wav", np.tile(samples, reps))

    @property
    def uri(self) -> str:
        """The SIP URI that reaches this UA."""
        return f"sip:{self.user}@{LOCALHOST}:{self.sip_port}"

    @property
    def address(self) -> str:
        """``host:port`` of its SIP listener."""
        return f"{LOCALHOST}:{self.sip_port}"

    def start(self, timeout: float = 10.0) -> Self:
        """Launch baresip and connect to ctrl_tcp."""
        self._stdout = (self.workdir / "stdout.txt").open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,  # no stdio UI: it needs a terminal
            stdout=self._stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._sock = socket.create_connection((LOCALHOST, self.ctrl_port), timeout=1)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"baresip did not start:\n{self.log_text()[-3000:]}"
                    ) from None
                time.sleep(0.05)
        while not udp_port_bound(self.sip_port) and time.monotonic() < deadline:
            time.sleep(0.01)
        threading.Thread(target=self._reader, daemon=True).start()
        return self

    def _reader(self) -> None:
        sock = self._sock
        assert sock is not None
        sock.settimeout(None)
        buf = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._cond.notify_all()
                return
            buf += chunk
            while b":" in buf:  # netstrings: <len>:<json>,
                head, rest = buf.split(b":", 1)
                size = int(head)
                if len(rest) < size + 1:
                    break
                msg = json.loads(rest[:size])
                buf = rest[size + 1 :]
                with self._cond:
                    if msg.get("event"):
                        self._events.append(
                            BaresipEvent(
                                len(self._events),
                                str(msg.get("type")),
                                str(msg.get("param", "")),
                                msg,
                            )
                        )
                    elif "token" in msg:
                        self._responses[str(msg["token"])] = msg
                    self._cond.notify_all()

    def command(self, command: str, params: str | None = None, timeout: float = 5.0) -> str:
        """Run a long command (``dial``, ``hangup``, ``sndcode``, ``listcalls``…); its output."""
        if self._sock is None:
            raise RuntimeError("baresip is not running")
        with self._cond:
            self._token += 1
            token = str(self._token)
        msg: dict[str, str] = {"command": command, "token": token}
        if params is not None:
            msg["params"] = params
        body = json.dumps(msg).encode()
        self._sock.sendall(str(len(body)).encode() + b":" + body + b",")
        with self._cond:
            if not self._cond.wait_for(lambda: token in self._responses, timeout):
                raise TimeoutError(f"baresip: no response to {command}")
            response = self._responses.pop(token)
        if not response.get("ok", False):
            raise RuntimeError(f"baresip {command} {params}: {response.get('data')}")
        return str(response.get("data", ""))

    def dial(self, uri: str) -> None:
        """Place a call (baresip as UAC)."""
        self.command("dial", uri)

    def hangup(self) -> None:
        """Hang up the current call (BYE, or CANCEL while it rings)."""
        self.command("hangup")

    def answer(self) -> None:
        """Answer the ringing call (when ``answer_mode="manual"``)."""
        self.command("accept")

    def send_dtmf(self, digits: str, *, gap: float = 0.25) -> None:
        """Send RFC 4733 digits on the current call, one ``sndcode`` per digit.

        One command per digit, ``gap`` seconds apart: each command starts and
        ends one event, so digits never merge at the receiver.
        """
        for digit in digits:
            self.command("sndcode", digit)
            time.sleep(gap)

    @property
    def events(self) -> list[BaresipEvent]:
        """Events received so far (copy)."""
        with self._cond:
            return list(self._events)

    def wait_for(self, pattern: str, timeout: float = 10.0, *, after: int = 0) -> BaresipEvent:
        """First event with index >= ``after`` whose ``"TYPE param"`` matches ``pattern``."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout

        def found() -> BaresipEvent | None:
            return next((e for e in self._events[after:] if rx.search(e.text)), None)

        with self._cond:
            while (event := found()) is None:
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc is not None and self.proc.poll() is not None):
                    seen = [e.text for e in self._events]
                    raise TimeoutError(
                        f"baresip: no event /{pattern}/ in {timeout}s; seen {seen}\n"
                        f"{self.log_text()[-3000:]}"
                    )
                self._cond.wait(min(left, 0.2))
        return event

    def _dump(self, kind: str) -> Path | None:
        files = sorted(self.record_dir.glob(f"dump-*-{kind}.wav"), key=lambda p: p.stat().st_mtime)
        return files[-1] if files else None

    def recording(self, kind: str = "dec", timeout: float = 5.0) -> Path:
        """The latest call's recording once baresip has closed it.

        ``kind`` is ``"dec"`` (received) or ``"enc"`` (sent). libsndfile writes
        the WAV sizes when the stream closes, at hang-up; until then the file
        reads as empty.
        """
        deadline = time.monotonic() + timeout
        while True:
            path = self._dump(kind)
            if path is not None:
                with contextlib.suppress(wave.Error, EOFError, OSError), wave.open(str(path)) as w:
                    if w.getnframes() > 0:
                        return path
            if time.monotonic() > deadline:
                raise TimeoutError(f"baresip: no closed {kind} recording in {self.record_dir}")
            time.sleep(0.05)

    @property
    def recorded_wav(self) -> Path | None:
        """WAV of the audio received on the latest call (8 kHz mono); see :meth:`recording`."""
        return self._dump("dec")

    @property
    def sent_wav(self) -> Path | None:
        """WAV of the audio sent on the latest call."""
        return self._dump("enc")

    def log_text(self) -> str:
        """baresip's stdout/stderr so far."""
        path = self.workdir / "stdout.txt"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Quit baresip (``quit`` command, then SIGTERM/SIGKILL); flushes the WAV dumps."""
        if self.proc is not None and self.proc.poll() is None and self._sock is not None:
            with contextlib.suppress(OSError, TimeoutError, RuntimeError):
                body = b'{"command":"quit","token":"quit"}'
                self._sock.sendall(str(len(body)).encode() + b":" + body + b",")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(3)
        if self.proc is not None and self.proc.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(3)
                    break
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._stdout is not None:
            self._stdout.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        # Recordings live in the temp dir: read them inside the with-block, or
        # pass workdir= (e.g. pytest's tmp_path) to keep them.
        if self._own_workdir and exc_type is None and not _keep_workdirs():
            shutil.rmtree(self.workdir, ignore_errors=True)


if __name__ == "__main__":
    for made in make_media():
        print(made, made.stat().st_size, "bytes")
