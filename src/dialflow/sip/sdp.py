"""SDP model (RFC 8866, formerly RFC 4566) and audio offer/answer (RFC 3264), sans-I/O.

:class:`SessionDescription` parses and serializes SDP bodies while keeping lines and
attributes it does not model, so a parse/serialize round trip loses nothing. On top of it,
:func:`build_offer`, :func:`build_answer` and :func:`negotiate_answer` implement the audio-only
offer/answer we need: G.711 (PCMU/PCMA) plus RFC 4733 telephone-event.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

__all__ = [
    "CODECS",
    "STATIC_PAYLOAD_TYPES",
    "TELEPHONE_EVENT",
    "Connection",
    "Direction",
    "MediaDescription",
    "NegotiatedMedia",
    "Origin",
    "RtpMap",
    "SdpError",
    "SdpNegotiationError",
    "SessionDescription",
    "build_answer",
    "build_offer",
    "negotiate_answer",
]


class SdpError(ValueError):
    """An SDP body that cannot be parsed or used."""


class SdpNegotiationError(SdpError):
    """Offer/answer failed (e.g. no common codec); a UAS answers 488 Not Acceptable Here."""


class Direction(StrEnum):
    """Media direction attribute (RFC 8866 §6.7), from the point of view of the SDP's author."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        """True if the author of the SDP will send media."""
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        """True if the author of the SDP wants to receive media."""
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def of(cls, sends: bool, receives: bool) -> Direction:
        """The direction with the given send/receive abilities."""
        if sends:
            return cls.SENDRECV if receives else cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE

    def mirrored(self) -> Direction:
        """The answer to this offered direction (RFC 3264 §6.1: sendonly -> recvonly...)."""
        return Direction.of(self.receives, self.sends)


class RtpMap(NamedTuple):
    """``a=rtpmap`` value: encoding name, clock rate, channels (RFC 8866 §6.6)."""

    encoding: str
    clock_rate: int
    channels: int = 1


# RFC 3551 §6 static payload types: these need no rtpmap line.
STATIC_PAYLOAD_TYPES: dict[int, RtpMap] = {
    0: RtpMap("PCMU", 8000),
    3: RtpMap("GSM", 8000),
    4: RtpMap("G723", 8000),
    5: RtpMap("DVI4", 8000),
    6: RtpMap("DVI4", 16000),
    7: RtpMap("LPC", 8000),
    8: RtpMap("PCMA", 8000),
    9: RtpMap("G722", 8000),
    10: RtpMap("L16", 44100, 2),
    11: RtpMap("L16", 44100),
    12: RtpMap("QCELP", 8000),
    13: RtpMap("CN", 8000),
    14: RtpMap("MPA", 90000),
    15: RtpMap("G728", 8000),
    16: RtpMap("DVI4", 11025),
    17: RtpMap("DVI4", 22050),
    18: RtpMap("G729", 8000),
}

#: Codecs we can send and receive, by name, with their static payload type.
CODECS: dict[str, int] = {"PCMU": 0, "PCMA": 8}
TELEPHONE_EVENT = RtpMap("telephone-event", 8000)
#: RFC 4733 §3.2: events 0-15 are the DTMF digits, 16 is flash.
_OUR_EVENTS = frozenset(range(17))
_DEFAULT_PTIME = 20


@dataclass(slots=True)
class Origin:
    """``o=`` line (RFC 8866 §5.2)."""

    username: str = "-"
    sess_id: int = 0
    sess_version: int = 0
    addr: str = "0.0.0.0"
    nettype: str = "IN"
    addrtype: str = "IP4"


@dataclass(slots=True)
class Connection:
    """``c=`` line (RFC 8866 §5.7); ``addr`` keeps any multicast ``/ttl`` suffix."""

    addr: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    @property
    def is_hold(self) -> bool:
        """RFC 2543 hold: the null address 0.0.0.0 (RFC 3264 §8.4 keeps accepting it)."""
        return self.addr in ("0.0.0.0", "::")


@dataclass(slots=True)
class MediaDescription:
    """One ``m=`` section. Unmodelled attributes and lines are kept in order.

    ``formats`` holds RTP payload types; for non-RTP transports (``m=image 0 udptl t38``) the
    format tokens are kept in ``format_tokens`` instead. ``direction`` is None when the section
    has no direction attribute (it then inherits the session level, default sendrecv).
    """

    media: str
    port: int
    proto: str = "RTP/AVP"
    formats: list[int] = field(default_factory=list)
    connection: Connection | None = None
    rtpmap: dict[int, RtpMap] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    ptime: int | None = None
    direction: Direction | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    port_count: int = 1
    format_tokens: list[str] = field(default_factory=list)
    #: other lines (i=, b=, k=, unknown types) as (type, value)
    lines: list[tuple[str, str]] = field(default_factory=list)

    def encoding(self, pt: int) -> RtpMap | None:
        """What payload type ``pt`` means here: its rtpmap, else the RFC 3551 static one."""
        rtpmap = self.rtpmap.get(pt)
        if rtpmap is None and pt < 96:
            rtpmap = STATIC_PAYLOAD_TYPES.get(pt)
        return rtpmap

    def codec_name(self, pt: int) -> str | None:
        """Our canonical codec name ("PCMU"/"PCMA") for ``pt``, or None if not ours."""
        rtpmap = self.encoding(pt)
        if rtpmap is None or rtpmap.clock_rate != 8000 or rtpmap.channels != 1:
            return None
        name = rtpmap.encoding.upper()
        return name if name in CODECS else None

    def telephone_event_pt(self) -> int | None:
        """The first payload type carrying telephone-event/8000 (RFC 4733 §7.1.1), if any."""
        for pt in self.formats:
            rtpmap = self.rtpmap.get(pt)
            if (
                rtpmap is not None
                and rtpmap.encoding.lower() == TELEPHONE_EVENT.encoding
                and rtpmap.clock_rate == TELEPHONE_EVENT.clock_rate
            ):
                return pt
        return None


@dataclass(slots=True)
class SessionDescription:
    """A whole SDP body. ``parse`` and ``serialize`` round-trip everything they read."""

    origin: Origin = field(default_factory=Origin)
    session_name: str = "-"
    connection: Connection | None = None
    time: tuple[int, int] = (0, 0)
    media: list[MediaDescription] = field(default_factory=list)
    direction: Direction | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    #: other session-level lines (i=, u=, e=, p=, b=, extra t=, r=, z=, k=, unknown)
    lines: list[tuple[str, str]] = field(default_factory=list)
    version: int = 0

    @classmethod
    def parse(cls, data: str | bytes) -> SessionDescription:
        """Parse an SDP body; CRLF or bare LF line ends. Raises :class:`SdpError`."""
        return _parse(data)

    def serialize(self) -> bytes:
        """The body in RFC 8866 §5 line order with CRLF line ends."""
        return _serialize(self)

    def direction_of(self, media: MediaDescription) -> Direction:
        """Effective direction of ``media``: its own, else session level, else sendrecv."""
        return media.direction or self.direction or Direction.SENDRECV

    def connection_of(self, media: MediaDescription) -> Connection | None:
        """Effective connection of ``media``: its own ``c=``, else the session's."""
        return media.connection or self.connection


# --------------------------------------------------------------------------- parsing


def _int(text: str, what: str, *, lo: int = 0, hi: int | None = None) -> int:
    if not text.isascii() or not text.isdigit():
        raise SdpError(f"bad {what}: {text!r}")
    value = int(text)
    if value < lo or (hi is not None and value > hi):
        raise SdpError(f"{what} out of range: {text!r}")
    return value


def _parse_connection(value: str) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise SdpError(f"bad c= line: {value!r}")
    return Connection(addr=parts[2], nettype=parts[0], addrtype=parts[1])


def _parse_origin(value: str) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise SdpError(f"bad o= line: {value!r}")
    return Origin(
        username=parts[0],
        sess_id=_int(parts[1], "o= sess-id"),
        sess_version=_int(parts[2], "o= sess-version"),
        nettype=parts[3],
        addrtype=parts[4],
        addr=parts[5],
    )


def _is_rtp(proto: str) -> bool:
    return "RTP/" in proto.upper()


def _parse_media_line(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 4:
        raise SdpError(f"bad m= line: {value!r}")
    port_text, _, count_text = parts[1].partition("/")
    md = MediaDescription(
        media=parts[0],
        port=_int(port_text, "m= port", hi=65535),
        proto=parts[2],
        port_count=_int(count_text, "m= port count", lo=1) if count_text else 1,
    )
    if _is_rtp(md.proto):
        md.formats = [_int(f, "RTP payload type", hi=127) for f in parts[3:]]
    else:
        md.format_tokens = parts[3:]
    return md


def _parse_rtpmap(value: str) -> tuple[int, RtpMap]:
    pt_text, _, rest = value.strip().partition(" ")
    fields = rest.strip().split("/")
    if len(fields) not in (2, 3) or not fields[0]:
        raise SdpError(f"bad rtpmap: {value!r}")
    channels = _int(fields[2], "rtpmap channels", lo=1) if len(fields) == 3 else 1
    return _int(pt_text, "rtpmap payload type", hi=127), RtpMap(
        fields[0], _int(fields[1], "rtpmap clock rate", lo=1), channels
    )


def _media_attribute(md: MediaDescription, name: str, value: str | None) -> None:
    """Store one media-level ``a=`` line in its typed field, or keep it as is."""
    key = name.strip()
    if value is None:
        if key in _DIRECTIONS and md.direction is None:
            md.direction = Direction(key)
            return
    elif key == "rtpmap":
        pt, rtpmap = _parse_rtpmap(value)
        if pt not in md.rtpmap:
            md.rtpmap[pt] = rtpmap
            return
    elif key == "fmtp":
        pt_text, _, params = value.partition(" ")
        if pt_text.isascii() and pt_text.isdigit() and int(pt_text) not in md.fmtp:
            md.fmtp[int(pt_text)] = params.lstrip(" ")
            return
    elif key == "ptime" and md.ptime is None:
        try:
            md.ptime = round(float(value))  # some stacks write "20.0"
        except ValueError:
            raise SdpError(f"bad ptime: {value!r}") from None
        if md.ptime <= 0:
            raise SdpError(f"bad ptime: {value!r}")
        return
    md.attributes.append((name, value))


_DIRECTIONS = frozenset(d.value for d in Direction)


def _parse(data: str | bytes) -> SessionDescription:
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            # RFC 8866 §5.4 lets a=charset change the encoding; latin-1 never fails.
            text = data.decode("latin-1")
    else:
        text = data
    sd = SessionDescription()
    seen: set[str] = set()
    md: MediaDescription | None = None
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.removesuffix("\r")
        if not line.strip():
            continue  # tolerate blank lines, e.g. a trailing empty line
        if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
            raise SdpError(f"line {number}: not <type>=<value>: {line[:40]!r}")
        kind, value = line[0], line[2:]
        if not seen:
            # RFC 8866 §5: the body starts with v=0.
            if kind != "v" or value.strip() != "0":
                raise SdpError("SDP must start with v=0")
            seen.add("v")
            continue
        if kind == "m":
            md = _parse_media_line(value)
            sd.media.append(md)
        elif kind == "a":
            name, sep, avalue = value.partition(":")
            if md is not None:
                _media_attribute(md, name, avalue if sep else None)
            elif not sep and name.strip() in _DIRECTIONS and sd.direction is None:
                sd.direction = Direction(name.strip())
            else:
                sd.attributes.append((name, avalue if sep else None))
        elif md is not None:
            if kind == "c" and md.connection is None:
                md.connection = _parse_connection(value)
            else:
                md.lines.append((kind, value))
        elif kind in ("v", "o", "s") and kind in seen:
            raise SdpError(f"duplicate {kind}= line")
        elif kind == "o":
            sd.origin = _parse_origin(value)
        elif kind == "s":
            sd.session_name = value
        elif kind == "c" and "c" not in seen:
            sd.connection = _parse_connection(value)
        elif kind == "t" and "t" not in seen:
            parts = value.split()
            if len(parts) != 2:
                raise SdpError(f"bad t= line: {value!r}")
            sd.time = (_int(parts[0], "t= start"), _int(parts[1], "t= stop"))
        else:
            sd.lines.append((kind, value))
        if md is None:
            seen.add(kind)
    if "o" not in seen:
        raise SdpError("missing o= line")
    return sd


# --------------------------------------------------------------------------- serializing

# RFC 8866 §5 order of the optional lines; unknown types go after the known ones.
_SESSION_RANK = {"i": 0, "u": 1, "e": 2, "p": 3, "c": 4, "b": 5, "t": 6, "r": 6, "z": 7, "k": 8}
_MEDIA_RANK = {"i": 0, "c": 1, "b": 2, "k": 3}


def _check(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise SdpError(f"line break inside SDP value {value[:40]!r}")
    return value


def _ordered_lines(
    lines: Iterable[tuple[str, str]], rank: dict[str, int], primary: dict[int, str]
) -> list[str]:
    """Interleave the typed ``primary`` lines (by rank) with the kept ones, stably."""
    if not lines:  # the usual case (and every SDP we build): nothing to interleave
        return [primary[r] for r in sorted(primary)]
    tagged = [(rank.get(k, len(rank) + 1), 1, f"{k}={_check(v)}") for k, v in lines]
    tagged += [(r, 0, text) for r, text in primary.items()]
    tagged.sort(key=lambda t: (t[0], t[1]))
    return [text for _, _, text in tagged]


def _attr(name: str, value: str | None) -> str:
    return f"a={_check(name)}" if value is None else f"a={_check(name)}:{_check(value)}"


def _conn(c: Connection) -> str:
    return f"c={c.nettype} {c.addrtype} {_check(c.addr)}"


def _serialize(sd: SessionDescription) -> bytes:
    o = sd.origin
    out = [
        f"v={sd.version}",
        f"o={o.username} {o.sess_id} {o.sess_version} {o.nettype} {o.addrtype} {o.addr}",
        f"s={_check(sd.session_name)}",
    ]
    primary = {_SESSION_RANK["t"]: f"t={sd.time[0]} {sd.time[1]}"}
    if sd.connection is not None:
        primary[_SESSION_RANK["c"]] = _conn(sd.connection)
    out += _ordered_lines(sd.lines, _SESSION_RANK, primary)
    out += [_attr(n, v) for n, v in sd.attributes]
    if sd.direction is not None:
        out.append(f"a={sd.direction.value}")
    for md in sd.media:
        out += _serialize_media(md)
    return ("\r\n".join(out) + "\r\n").encode("utf-8")


def _serialize_media(md: MediaDescription) -> list[str]:
    port = f"{md.port}/{md.port_count}" if md.port_count != 1 else str(md.port)
    fmts = " ".join([str(pt) for pt in md.formats] + md.format_tokens)
    out = [_check(f"m={md.media} {port} {md.proto} {fmts}")]
    primary = {} if md.connection is None else {_MEDIA_RANK["c"]: _conn(md.connection)}
    out += _ordered_lines(md.lines, _MEDIA_RANK, primary)
    # rtpmap/fmtp in format order first (as most stacks write them), then strays.
    pts = list(dict.fromkeys([*md.formats, *md.rtpmap, *md.fmtp]))
    for pt in pts:
        rtpmap = md.rtpmap.get(pt)
        if rtpmap is not None:
            enc = f"{rtpmap.encoding}/{rtpmap.clock_rate}"
            if rtpmap.channels != 1:
                enc += f"/{rtpmap.channels}"
            out.append(f"a=rtpmap:{pt} {_check(enc)}")
        if pt in md.fmtp:
            params = md.fmtp[pt]
            out.append(f"a=fmtp:{pt} {_check(params)}" if params else f"a=fmtp:{pt}")
    if md.ptime is not None:
        out.append(f"a=ptime:{md.ptime}")
    out += [_attr(n, v) for n, v in md.attributes]
    if md.direction is not None:
        out.append(f"a={md.direction.value}")
    return out


# --------------------------------------------------------------------------- offer/answer


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """Outcome of offer/answer for our one audio stream.

    ``remote_addr``/``remote_port`` are where to send RTP; ``payload_type``/``codec`` what to
    send (the peer's numbering). ``ptime`` is the packetization the peer asked for (20 when it
    did not say). ``direction`` is the peer's declared direction (from its point of view);
    ``local_direction`` is what our own SDP declared.
    """

    remote_addr: str
    remote_port: int
    payload_type: int
    codec: str
    dtmf_payload_type: int | None
    ptime: int
    direction: Direction
    local_direction: Direction = Direction.SENDRECV

    @property
    def on_hold(self) -> bool:
        """The peer put us on hold: sendonly/inactive (RFC 3264 §8.4) or c=0.0.0.0 (RFC 2543)."""
        return not self.direction.receives or self.remote_addr in ("0.0.0.0", "::")

    @property
    def can_send(self) -> bool:
        """Whether we should send RTP to the peer now."""
        return self.local_direction.sends and not self.on_hold

    @property
    def can_receive(self) -> bool:
        """Whether the peer will send RTP to us."""
        return self.local_direction.receives and self.direction.sends


def _addrtype(addr: str) -> str:
    try:
        return "IP6" if ipaddress.ip_address(addr).version == 6 else "IP4"
    except ValueError:
        return "IP4"  # a host name; RFC 8866 §5.7 allows an FQDN


def _check_ids(session_id: int, version: int, port: int) -> None:
    # RFC 3264 §5: sess-id and sess-version must fit a 64-bit signed integer.
    for name, value in (("session_id", session_id), ("version", version)):
        if not 0 <= value < 2**63:
            raise ValueError(f"{name} {value} must fit a signed 64-bit integer")
    if not 0 < port <= 65535:
        raise ValueError(f"port {port} out of range")


def _session(addr: str, session_id: int, version: int) -> SessionDescription:
    addrtype = _addrtype(addr)
    return SessionDescription(
        origin=Origin("-", session_id, version, addr, "IN", addrtype),
        session_name="-",  # RFC 3264 §5: "-" or a single space for unicast sessions
        connection=Connection(addr, "IN", addrtype),
    )


def build_offer(
    addr: str,
    port: int,
    *,
    session_id: int,
    version: int,
    codecs: Sequence[str] = ("PCMU", "PCMA"),
    dtmf_pt: int | None = 101,
    ptime: int | None = 20,
    direction: Direction | str = Direction.SENDRECV,
) -> SessionDescription:
    """Our audio offer: ``codecs`` in preference order, then telephone-event at ``dtmf_pt``."""
    _check_ids(session_id, version, port)
    if not codecs:
        raise ValueError("an offer needs at least one codec")
    md = MediaDescription(media="audio", port=port, ptime=ptime, direction=Direction(direction))
    for name in codecs:
        if name.upper() not in CODECS:
            raise ValueError(f"unsupported codec {name!r}")
        pt = CODECS[name.upper()]
        md.formats.append(pt)
        md.rtpmap[pt] = STATIC_PAYLOAD_TYPES[pt]
    if dtmf_pt is not None:
        if not 96 <= dtmf_pt <= 127:
            raise ValueError(f"telephone-event payload type {dtmf_pt} is not dynamic (96-127)")
        md.formats.append(dtmf_pt)
        md.rtpmap[dtmf_pt] = TELEPHONE_EVENT
        md.fmtp[dtmf_pt] = _format_events(_OUR_EVENTS)
    sd = _session(addr, session_id, version)
    sd.media.append(md)
    return sd


def _parse_events(text: str) -> set[int]:
    """RFC 4733 §2.4.1 event list such as "0-15,16"; unreadable items are skipped."""
    events: set[int] = set()
    for item in text.replace(" ", "").split(","):
        lo, _, hi = item.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            first, last = int(lo), int(hi or lo)
            if first <= last <= 255:  # event codes are 8 bits (RFC 4733 §2.3.1)
                events.update(range(first, last + 1))
    return events


def _format_events(events: Iterable[int]) -> str:
    ranges: list[str] = []
    ordered = sorted(events)
    start = prev = ordered[0]
    for e in [*ordered[1:], None]:
        if e is not None and e == prev + 1:
            prev = e
            continue
        ranges.append(str(start) if start == prev else f"{start}-{prev}")
        if e is not None:
            start = prev = e
    return ",".join(ranges)


def _is_our_audio(md: MediaDescription) -> bool:
    # Plain RTP/AVP only: we do not do SRTP (RTP/SAVP) or RTCP feedback (AVPF).
    return md.media == "audio" and md.port != 0 and md.proto.upper() == "RTP/AVP"


def build_answer(
    offer: SessionDescription,
    addr: str,
    port: int,
    *,
    session_id: int,
    version: int,
    supported: Sequence[str] = ("PCMU", "PCMA"),
    ptime: int | None = 20,
    direction: Direction | str = Direction.SENDRECV,
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer ``offer`` (RFC 3264 §6): accept the first usable audio stream, reject the rest.

    The codec is the FIRST payload type in the offer's order that is in ``supported``
    (RFC 3264 §6.1 lets the answerer pick; following the offerer's preference is polite).
    telephone-event is mirrored with the offerer's payload type. Our ``direction`` is
    combined with the mirror of the offered one. Raises :class:`SdpNegotiationError`.
    """
    _check_ids(session_id, version, port)
    wanted = {name.upper() for name in supported}
    answer = _session(addr, session_id, version)
    answer.time = offer.time  # RFC 3264 §6: the answer's t= equals the offer's
    negotiated: NegotiatedMedia | None = None
    for om in offer.media:
        if negotiated is None and _is_our_audio(om):
            pt = next((p for p in om.formats if om.codec_name(p) in wanted), None)
            conn = offer.connection_of(om)
            if pt is not None and conn is not None:
                am, negotiated = _accept(offer, om, pt, conn, port, ptime, Direction(direction))
                answer.media.append(am)
                continue
        # RFC 3264 §6: a rejected stream keeps its place with port 0.
        answer.media.append(
            MediaDescription(
                media=om.media,
                port=0,
                proto=om.proto,
                formats=list(om.formats),
                format_tokens=list(om.format_tokens),
            )
        )
    if negotiated is None:
        offered = [om.encoding(p) for om in offer.media if om.media == "audio" for p in om.formats]
        names = ", ".join(r.encoding for r in offered if r is not None) or "none"
        raise SdpNegotiationError(f"no common audio codec (offered: {names})")
    return answer, negotiated


def _accept(
    offer: SessionDescription,
    om: MediaDescription,
    pt: int,
    conn: Connection,
    port: int,
    ptime: int | None,
    ours: Direction,
) -> tuple[MediaDescription, NegotiatedMedia]:
    offered_dir = offer.direction_of(om)
    mirrored = offered_dir.mirrored()
    local = Direction.of(mirrored.sends and ours.sends, mirrored.receives and ours.receives)
    am = MediaDescription(media="audio", port=port, proto=om.proto, ptime=ptime, direction=local)
    am.formats.append(pt)
    am.rtpmap[pt] = om.encoding(pt) or STATIC_PAYLOAD_TYPES[pt]
    dtmf = om.telephone_event_pt()
    if dtmf is not None:
        # RFC 4733 §2.4.1: no fmtp means events 0-15.
        events = _parse_events(om.fmtp.get(dtmf, "0-15")) & _OUR_EVENTS
        if events:
            am.formats.append(dtmf)
            am.rtpmap[dtmf] = om.rtpmap[dtmf]
            am.fmtp[dtmf] = _format_events(events)
        else:
            dtmf = None
    codec = om.codec_name(pt)
    assert codec is not None
    negotiated = NegotiatedMedia(
        remote_addr=conn.addr,
        remote_port=om.port,
        payload_type=pt,
        codec=codec,
        dtmf_payload_type=dtmf,
        ptime=om.ptime or _DEFAULT_PTIME,
        direction=offered_dir,
        local_direction=local,
    )
    return am, negotiated


def negotiate_answer(
    offer_we_sent: SessionDescription, answer_received: SessionDescription
) -> NegotiatedMedia:
    """UAC side: what the peer's answer means for our audio stream (RFC 3264 §7).

    We send with the first payload type in the answer that we offered (RFC 3264 §7: the
    answer's numbering is used when sending to the answerer). Raises
    :class:`SdpNegotiationError` if the answer rejects or garbles the stream.
    """
    if len(answer_received.media) != len(offer_we_sent.media):
        # RFC 3264 §6: the answer has exactly as many m= lines as the offer.
        raise SdpNegotiationError(
            f"answer has {len(answer_received.media)} m= lines, offer had"
            f" {len(offer_we_sent.media)}"
        )
    index = next((i for i, m in enumerate(offer_we_sent.media) if _is_our_audio(m)), None)
    if index is None:
        raise SdpNegotiationError("our offer has no audio stream")
    om, am = offer_we_sent.media[index], answer_received.media[index]
    if am.port == 0 or am.media != "audio":
        raise SdpNegotiationError("the answer rejected our audio stream")
    offered = {om.codec_name(p) for p in om.formats} - {None}
    pt = next((p for p in am.formats if am.codec_name(p) in offered), None)
    if pt is None:
        raise SdpNegotiationError("the answer has none of the codecs we offered")
    conn = answer_received.connection_of(am)
    if conn is None:
        raise SdpNegotiationError("the answer has no connection address")
    codec = am.codec_name(pt)
    assert codec is not None
    return NegotiatedMedia(
        remote_addr=conn.addr,
        remote_port=am.port,
        payload_type=pt,
        codec=codec,
        dtmf_payload_type=am.telephone_event_pt() if om.telephone_event_pt() is not None else None,
        ptime=am.ptime or _DEFAULT_PTIME,
        direction=answer_received.direction_of(am),
        local_direction=offer_we_sent.direction_of(om),
    )
