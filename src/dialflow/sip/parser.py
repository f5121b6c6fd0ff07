"""Parsing SIP messages from datagrams and from streams (RFC 3261 §7, §18.3, §25).

:func:`parse_message` takes one whole message (a UDP datagram); :class:`StreamFramer`
cuts a TCP byte stream into messages using Content-Length; :func:`try_parse_for_response`
salvages a malformed request far enough to answer it with a 400. Whatever the bytes,
the first two raise nothing but :class:`~dialflow.sip.errors.SipParseError` (whose
``status`` is the response a server should send), and the third raises nothing.

What is checked (so that the transaction and dialog layers can trust the typed
accessors of a parsed message): the start line; exactly one From, To, Call-ID and
CSeq; at least one Via; every Via, From, To, Contact and Record-Route value; CSeq
method equal to the request method; Content-Length against the body. Where RFC 4475
lets a receiver be liberal and that costs nothing (bare LF line ends, a missing reason
phrase, an unknown URI scheme, a bad Date, spaces inside ``< >``), the parser is.
"""

from __future__ import annotations

import re
from collections import deque

from .errors import SipParseError
from .message import (
    SIP_VERSION,
    Headers,
    SipMessage,
    SipRequest,
    SipResponse,
    canonical_name,
    parse_cseq,
)
from .uri import SipUri, is_token, parse_name_addr, parse_uri, parse_via, split_quoted

# A datagram or stream message above this is refused (RFC 3261 §18.1.1 keeps UDP
# requests under the path MTU; 64 KiB is the largest UDP payload anyway).
MAX_MESSAGE_SIZE = 65535
MAX_HEADERS = 256

# Methods of RFC 3261 and its extensions. An unknown method whose CSeq disagrees is
# answered 501 rather than 400 (RFC 4475 §3.1.2.18).
KNOWN_METHODS = frozenset(
    {
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "INFO",
        "REFER",
        "MESSAGE",
        "UPDATE",
    }
)

_HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_VERSION_RE = re.compile(r"^SIP/[0-9]+\.[0-9]+$", re.IGNORECASE)
# Header fields parse_message checks (lower-case canonical names).
_CHECKED = frozenset(
    {"via", "from", "to", "call-id", "cseq", "content-length", "contact", "record-route"}
)
_SALVAGED = frozenset({"via", "from", "to", "call-id", "cseq"})
_LWS = " \t"


def parse_message(data: bytes) -> SipMessage:
    """Parse one complete SIP message (a datagram).

    The body is the bytes after the empty line, cut to Content-Length when present
    (RFC 3261 §18.3: octets after it in a datagram are discarded); without
    Content-Length the body is the rest of the datagram. The model does not keep the
    Content-Length header: serialization always writes it from the body.

    Raises :class:`SipParseError`; its ``status`` is 400, 505 (unsupported SIP
    version), 501 (unknown method with a mismatched CSeq) or 513 (too large).
    """
    if len(data) > MAX_MESSAGE_SIZE:
        raise SipParseError("message too large", status=513)
    if data[:1] in (b"\r", b"\n"):
        # RFC 3261 §7.5: CRLFs before the start line are ignored.
        data = data.lstrip(b"\r\n")
    if not data:
        raise SipParseError("empty message")
    head_bytes, body = _split_head(data)
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("header block is not UTF-8") from exc
    if "\x00" in head:
        _check_nuls(head)
    lines = _unfold(head)
    if len(lines) - 1 > MAX_HEADERS:
        raise SipParseError("too many headers")

    items: list[tuple[str, str]] = []
    checked: dict[str, list[str]] = {}
    names = _NAMES
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        known = names.get(name)
        if known is None or not colon:
            known = _header_name(name, colon, line)
        cname, lname = known
        # Only SP/HTAB are LWS (RFC 3261 §25.1); str.strip() would also eat NBSP & co.
        value = value.strip(_LWS)
        if lname in _CHECKED:
            checked.setdefault(lname, []).append(value)
            if lname == "content-length":
                continue
        items.append((cname, value))

    body = _cut_body(checked.get("content-length"), body)
    message = _parse_start_line(lines[0], Headers.from_canonical(items), body)
    _check_core_headers(message, checked)
    return message


# Header names as written before the colon (trailing blanks included) that passed the
# check, with their canonical and lower-case forms: peers repeat the same few spellings
# in every message, and the regex and canonicalization cost more than the lookup.
_NAMES: dict[str, tuple[str, str]] = {}
_NAMES_MAX = 1024


def _header_name(raw: str, colon: str, line: str) -> tuple[str, str]:
    # RFC 3261 §25.1 HCOLON = *( SP / HTAB ) ":" SWS: blanks may precede the colon.
    name = raw.rstrip(_LWS)
    if not colon or not _HEADER_NAME_RE.match(name):
        raise SipParseError(f"bad header line {line[:60]!r}")
    cname = canonical_name(name)
    known = (cname, cname.lower())
    if len(_NAMES) >= _NAMES_MAX:
        _NAMES.clear()
    _NAMES[raw] = known
    return known


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    """Split at the first empty line: CRLF CRLF, or a bare-LF variant of it.

    RFC 3261 §7.5 asks for CRLF, but a sloppy peer's bare LFs cost nothing to accept.
    The earliest empty line wins, so a body holding CRLF CRLF cannot be mistaken for
    the end of a bare-LF header block. RFC 3261 §7: the empty line MUST be present.
    """
    crlf = data.find(b"\n\r\n")
    lf = data.find(b"\n\n")
    if crlf < 0 and lf < 0:
        raise SipParseError("no empty line after the header block")
    if lf < 0 or 0 <= crlf < lf:
        pos, skip = crlf, 3
    else:
        pos, skip = lf, 2
    head = data[:pos]
    if head.endswith(b"\r"):
        head = head[:-1]
    return head, data[pos + skip :]


def _check_nuls(head: str) -> None:
    """Allow NUL only as a quoted-pair (RFC 3261 §25.1 ``"\\" %x00``, RFC 4475 §3.1.1.2).

    A raw NUL anywhere else is refused: C-based peers would cut the header there.
    """
    i = head.find("\x00")
    while i >= 0:
        j = i
        while j > 0 and head[j - 1] == "\\":
            j -= 1
        if (i - j) % 2 == 0:
            raise SipParseError("NUL in header block")
        i = head.find("\x00", i + 1)


def _unfold(head: str) -> list[str]:
    """Split header lines, joining continuation lines (RFC 3261 §7.3.1 folding).

    A continuation replaces the line break and leading whitespace by one space. A CR
    that does not end a line is refused: echoed into a response it would end the line.
    """
    text = head.replace("\r\n", "\n") if "\r" in head else head
    if "\r" in text:
        raise SipParseError("bare CR in header block")
    if "\n " not in text and "\n\t" not in text:
        return text.split("\n")
    lines: list[str] = []
    for raw in text.split("\n"):
        if raw[:1] in (" ", "\t"):
            if len(lines) < 2:
                raise SipParseError("continuation line before any header")
            lines[-1] = lines[-1].rstrip(_LWS) + " " + raw.strip(_LWS)
        else:
            lines.append(raw)
    return lines


def _parse_length(text: str) -> int:
    # isascii(): "²".isdigit() is true but int() refuses it; the length cap keeps int()
    # away from its 4300-digit limit and from lengths no message can have.
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise SipParseError(f"bad Content-Length {text[:20]!r}")
    return int(text)


def _cut_body(values: list[str] | None, body: bytes) -> bytes:
    if values is None:
        return body
    length = _parse_length(values[0])
    for other in values[1:]:
        # RFC 4475 §3.3.9: with two different lengths nobody can know where the body ends.
        if _parse_length(other) != length:
            raise SipParseError("conflicting Content-Length values")
    if length > len(body):
        # RFC 3261 §18.3 / RFC 4475 §3.1.2.2: a datagram shorter than its Content-Length.
        raise SipParseError("body shorter than Content-Length")
    return body[:length] if length < len(body) else body


def _parse_start_line(line: str, headers: Headers, body: bytes) -> SipMessage:
    if line[:4].upper() == "SIP/":
        # Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (RFC 3261 §7.2).
        version, _, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        if not _VERSION_RE.match(version):
            raise SipParseError(f"bad status line {line[:80]!r}")
        if version.upper() != SIP_VERSION:
            raise SipParseError(f"unsupported version {version!r}", status=505)
        # A missing SP before an empty reason phrase is accepted (RFC 4475 §3.1.1.13
        # allows a liberal receiver to).
        # Status-Code: 3DIGIT in the classes 1xx-6xx (RFC 3261 §7.2, §21).
        if not (len(code) == 3 and code.isascii() and code.isdigit()) or code[0] not in "123456":
            raise SipParseError(f"bad status code {code[:20]!r}")
        return SipResponse(headers=headers, body=body, status=int(code), reason=reason)
    # Request-Line = Method SP Request-URI SP SIP-Version (RFC 3261 §7.1). Extra or
    # trailing spaces are refused (RFC 4475 §3.1.2.9/§3.1.2.10 allow either choice).
    parts = line.split(" ")
    if len(parts) != 3:
        raise SipParseError(f"bad request line {line[:80]!r}")
    method, uri_text, version = parts
    if not is_token(method):
        raise SipParseError(f"bad method {method[:40]!r}")
    if not _VERSION_RE.match(version):
        raise SipParseError(f"bad request line {line[:80]!r}")
    if version.upper() != SIP_VERSION:
        # RFC 4475 §3.1.2.16: answer 505 Version Not Supported.
        raise SipParseError(f"unsupported version {version!r}", status=505)
    uri = parse_uri(uri_text)
    if isinstance(uri, SipUri) and uri.headers:
        # RFC 3261 §19.1.1 (table): headers are not allowed in a Request-URI;
        # RFC 4475 §3.1.2.11 lets us answer 400 rather than guess.
        raise SipParseError("headers in the Request-URI")
    return SipRequest(headers=headers, body=body, method=method, uri=uri)


_DISPLAY_NAMES = {
    "via": "Via",
    "from": "From",
    "to": "To",
    "call-id": "Call-ID",
    "cseq": "CSeq",
}


def _single(checked: dict[str, list[str]], lname: str) -> str:
    values = checked.get(lname)
    if not values:
        raise SipParseError(f"missing {_DISPLAY_NAMES[lname]} header")
    if len(values) > 1:
        # RFC 4475 §3.3.8: several values in a single-value field get a 400.
        raise SipParseError(f"more than one {_DISPLAY_NAMES[lname]} header")
    return values[0]


# name-addr values that parsed, with their wildcard flag. A dialog's From, To and
# Contact come back in every message of the dialog; parsing is a pure function of the
# text, so each distinct value is parsed once while it is in here.
_NAME_ADDR_CHECKED: dict[str, bool] = {}
_CHECKED_MAX = 4096


def _is_wildcard(value: str) -> bool:
    """Whether ``value`` is ``*``; raises SipParseError when it is no name-addr at all."""
    wildcard = _NAME_ADDR_CHECKED.get(value)
    if wildcard is None:
        wildcard = parse_name_addr(value).wildcard
        if len(_NAME_ADDR_CHECKED) >= _CHECKED_MAX:
            _NAME_ADDR_CHECKED.clear()
        _NAME_ADDR_CHECKED[value] = wildcard
    return wildcard


# Via values that parsed: the responses of one transaction (100, 180, 200) all carry
# the Via of its request, with the same branch.
_VIA_CHECKED: set[str] = set()


def _check_via(value: str) -> None:
    if value not in _VIA_CHECKED:
        parse_via(value)
        if len(_VIA_CHECKED) >= _CHECKED_MAX:
            _VIA_CHECKED.clear()
        _VIA_CHECKED.add(value)


def _check_core_headers(message: SipMessage, checked: dict[str, list[str]]) -> None:
    """RFC 3261 §8.1.1: every request and response carries these, well-formed.

    Checking here means the transaction and dialog layers can trust the typed
    accessors (``vias``, ``from_``, ``to``, ``cseq``, ``contacts``, ``record_route``),
    and a server can answer a bad request with 400 before anything else.
    """
    via_count = 0
    for value in checked.get("via", ()):
        for part in split_quoted(value, ","):
            if part.strip():
                _check_via(part)
                via_count += 1
    if not via_count:
        raise SipParseError("missing Via header")
    cseq = parse_cseq(_single(checked, "cseq"))
    if not _single(checked, "call-id"):
        raise SipParseError("empty Call-ID")
    for lname in ("from", "to"):
        if _is_wildcard(_single(checked, lname)):
            raise SipParseError(f"'*' in {_DISPLAY_NAMES[lname]}")
    for lname in ("contact", "record-route"):
        for value in checked.get(lname, ()):
            for part in split_quoted(value, ","):
                if part.strip():
                    _is_wildcard(part)
    if isinstance(message, SipRequest) and cseq.method != message.method:
        # RFC 4475 §3.1.2.17: 400; §3.1.2.18: 501 when the method is unknown anyway.
        status = 400 if message.method in KNOWN_METHODS else 501
        raise SipParseError("CSeq method does not match the request method", status=status)


def try_parse_for_response(data: bytes) -> SipRequest | None:
    """Salvage a malformed request far enough to answer it (RFC 3261 §8.2.6, §21.4.1).

    Meant for the bytes :func:`parse_message` refused::

        try:
            message = parse_message(data)
        except SipParseError as exc:
            request = try_parse_for_response(data)
            if request is not None:
                send(make_response(request, exc.status))

    The returned request carries only what a response copies: the Via values that
    parse (empty parameters removed; RFC 3261 §18.2.2 sends the response by the top
    one), and the first From, To, Call-ID and CSeq. From and To are kept only if they
    parse, so
    ``make_response(..., to_tag=...)`` can add a tag; Call-ID and CSeq are copied as
    received. ``uri`` is None when the Request-URI does not parse. Header values
    holding NUL or CR are dropped rather than echoed.

    Returns None for responses (never answered), for ACK (RFC 3261 §17: an ACK gets
    no response) and when no usable Via is present. Never raises.
    """
    try:
        return _salvage(data)
    except SipParseError:
        return None


def _salvage(data: bytes) -> SipRequest | None:
    data = data[:MAX_MESSAGE_SIZE].lstrip(b"\r\n")
    ends = [i for i in (data.find(b"\n\r\n"), data.find(b"\n\n")) if i >= 0]
    head = data[: min(ends)] if ends else data
    # surrogateescape: stray bytes survive, and serialization writes them back as-is.
    lines = head.decode("utf-8", "surrogateescape").replace("\r\n", "\n").split("\n")
    start = lines[0].split()
    if not start or start[0][:4].upper() == "SIP/":
        return None
    method = start[0]
    if not is_token(method) or method == "ACK":
        return None
    uri = None
    if len(start) > 1:
        try:
            uri = parse_uri(start[1])
        except SipParseError:
            uri = None
    found: dict[str, list[str]] = {}
    last: str | None = None
    for raw in lines[1:]:
        if raw[:1] in (" ", "\t"):
            if last is not None and found[last]:
                found[last][-1] = (found[last][-1] + " " + raw.strip()).strip()
            continue
        last = None
        name, colon, value = raw.partition(":")
        lname = canonical_name(name.strip()).lower()
        if colon and lname in _SALVAGED:
            found.setdefault(lname, []).append(value.strip())
            last = lname
    for values in found.values():
        values[:] = [v for v in values if v and "\x00" not in v and "\r" not in v]
    vias = [
        via for v in found.get("via", ()) for p in split_quoted(v, ",") if (via := _usable_via(p))
    ]
    if not vias:
        return None
    headers = Headers()
    for via in vias:
        headers.add("Via", via)
    for lname, name in (("from", "From"), ("to", "To")):
        for value in found.get(lname, [])[:1]:
            try:
                if not parse_name_addr(value).wildcard:
                    headers.add(name, value)
            except SipParseError:
                pass
    for lname, name in (("call-id", "Call-ID"), ("cseq", "CSeq")):
        for value in found.get(lname, [])[:1]:
            headers.add(name, value)
    return SipRequest(headers=headers, method=method, uri=uri)


def _usable_via(text: str) -> str | None:
    """A Via value a response can carry, or None (for :func:`try_parse_for_response`).

    Empty parameters (RFC 4475 §3.1.2.1, ``192.0.2.15;;``) are dropped so the sender
    still gets its 400; anything else that does not parse is left out.
    """
    text = text.strip()
    if not text:
        return None
    try:
        parse_via(text)
        return text
    except SipParseError:
        pass
    cleaned = ";".join(part.strip() for part in text.split(";") if part.strip())
    try:
        parse_via(cleaned)
    except SipParseError:
        return None
    return cleaned


class FramingError(SipParseError):
    """A stream can no longer be cut into messages (RFC 3261 §18.3): close it.

    Raised for a negative, non-numeric or conflicting Content-Length, or a message
    above the size limit (``status`` 513); an absent Content-Length means no body.
    ``messages`` (from :meth:`StreamFramer.feed`) or ``frames`` (from
    :meth:`StreamFramer.feed_frames`) hold what was complete before the error, in
    order; handle them, then close.
    """

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message, status=status)
        self.messages: list[SipMessage] = []
        self.frames: list[bytes] = []


class StreamMessageError(SipParseError):
    """One message on a stream was framed but did not parse; the stream is still usable.

    ``data`` is that message's bytes (for :func:`try_parse_for_response`),
    ``messages`` the messages completed before it in the same call; call
    :meth:`StreamFramer.feed` again (``feed(b"")``) for those queued after it.
    """

    def __init__(self, message: str, data: bytes, *, status: int = 400) -> None:
        super().__init__(message, status=status)
        self.data = data
        self.messages: list[SipMessage] = []


_CR, _LF = 13, 10


class StreamFramer:
    """Cuts a stream (TCP) into SIP messages by Content-Length (RFC 3261 §18.3).

    Feed it bytes as they arrive; it returns the complete messages. CRLF keep-alives
    between messages are skipped (RFC 3261 §7.5); ``keepalives`` counts the RFC 5626
    §4.4.1 pings (CRLF CRLF) seen, which a server answers with a CRLF pong.

    Errors: :class:`FramingError` is fatal (the stream is lost; every later call raises
    it again); :class:`StreamMessageError` concerns one message only. Both are
    :class:`SipParseError`, and neither loses a message completed before it.
    """

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._buffer = bytearray()
        self._max_size = max_size
        self._need = -1  # total size of the message being received, once its head is in
        self._scan = 0  # where to resume looking for the empty line
        self._frames: deque[bytes] = deque()
        self._broken: FramingError | None = None
        self.keepalives = 0

    def feed(self, data: bytes) -> list[SipMessage]:
        """Add ``data``; return every message now complete, parsed."""
        messages: list[SipMessage] = []
        framing: FramingError | None = None
        try:
            self._frames.extend(self.feed_frames(data))
        except FramingError as exc:
            # Frames completed before the error are still delivered (in exc.messages).
            self._frames.extend(exc.frames)
            exc.frames = []
            framing = exc
        while self._frames:
            frame = self._frames.popleft()
            try:
                messages.append(parse_message(frame))
            except SipParseError as exc:
                error = StreamMessageError(str(exc), frame, status=exc.status)
                error.messages = messages
                raise error from exc
        if framing is not None:
            framing.messages = messages
            raise framing
        return messages

    def feed_frames(self, data: bytes) -> list[bytes]:
        """Add ``data``; return every complete message as bytes, without parsing it.

        For servers that want to answer a malformed message (see
        :func:`try_parse_for_response`) and carry on with the next one.
        """
        if self._broken is not None:
            raise FramingError(f"stream already broken: {self._broken}", status=self._broken.status)
        self._buffer += data
        frames: list[bytes] = []
        try:
            self._cut(frames)
        except FramingError as exc:
            self._broken = exc
            exc.frames = frames
            raise
        return frames

    def _cut(self, frames: list[bytes]) -> None:
        buf = self._buffer
        while True:
            if self._need < 0:
                self._skip_keepalives()
                if not buf:
                    return
                end = buf.find(b"\r\n\r\n", self._scan)
                if end < 0:
                    if len(buf) > self._max_size:
                        raise FramingError("header block too large", status=513)
                    # Resume the search where it stopped, not from the start: a large
                    # header arriving in small reads would otherwise cost O(n²).
                    self._scan = max(0, len(buf) - 3)
                    return
                need = end + 4 + _content_length(bytes(buf[:end]))
                if need > self._max_size:
                    raise FramingError("message too large", status=513)
                self._need = need
            if len(buf) < self._need:
                return
            frames.append(bytes(buf[: self._need]))
            del buf[: self._need]
            self._need = -1
            self._scan = 0

    def _skip_keepalives(self) -> None:
        buf = self._buffer
        n = len(buf)
        i = 0
        while i < n and (buf[i] == _CR or buf[i] == _LF):
            i += 1
        if not i:
            return
        run = bytes(buf[:i])
        if i == n:
            # Nothing but CR/LF so far: a ping may be split across reads, so consume
            # whole pings from the left and keep a tail that may still become one.
            j = 0
            while run.startswith(b"\r\n\r\n", j):
                j += 4
            if b"\r\n\r\n".startswith(run[j:]):
                i = j
            self.keepalives += j // 4
        else:
            self.keepalives += run.count(b"\r\n\r\n")
        del buf[:i]

    @property
    def pending(self) -> int:
        """Bytes received but not yet returned as a message."""
        return len(self._buffer)


def _content_length(head: bytes) -> int:
    """The Content-Length of a header block, for framing (RFC 3261 §18.3)."""
    values: list[bytes] = []
    in_length = False
    for line in head.split(b"\r\n")[1:]:
        if line[:1] in (b" ", b"\t"):
            if in_length:
                values[-1] += b" " + line.strip()  # a folded value
            continue
        name, colon, value = line.partition(b":")
        in_length = bool(colon) and name.rstrip().lower() in (b"content-length", b"l")
        if in_length:
            values.append(value.strip())
    if not values:
        # RFC 3261 §18.3: it MUST be present on a stream; absent, take it as no body.
        return 0
    lengths: set[int] = set()
    for value in values:
        value = value.strip()
        # bytes.isdigit() is ASCII-only; the cap keeps int() and sizes sane.
        if not value.isdigit() or len(value) > 9:
            raise FramingError(f"bad Content-Length {value[:20]!r}")
        lengths.add(int(value))
    if len(lengths) > 1:
        raise FramingError("conflicting Content-Length values")
    return lengths.pop()
