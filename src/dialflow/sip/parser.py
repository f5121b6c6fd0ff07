"""Parsing SIP messages from datagrams and from streams (RFC 3261 §7, §18.3, §25).

:func:`parse_message` takes one whole message (a UDP datagram); :class:`StreamFramer`
cuts a TCP byte stream into messages using Content-Length. Both raise only
:class:`~dialflow.sip.errors.SipParseError` on bad input, whatever the bytes.
"""

from __future__ import annotations

import re

from .errors import SipParseError
from .message import SIP_VERSION, Headers, SipMessage, SipRequest, SipResponse, parse_cseq
from .uri import is_token, parse_name_addr, parse_uri, parse_via

# A datagram or stream message above this is refused (RFC 3261 §18.1.1 keeps UDP
# requests under the path MTU; 64 KiB is the largest UDP payload anyway).
MAX_MESSAGE_SIZE = 65535
MAX_HEADERS = 256

_HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_VERSION_RE = re.compile(r"^SIP/\d+\.\d+$", re.IGNORECASE)


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        return data[:end], data[end + 4 :]
    # Tolerate bare-LF line ends from sloppy peers (RFC 3261 §7.5 asks for CRLF,
    # but being liberal in what we accept costs nothing here).
    end = data.find(b"\n\n")
    if end >= 0:
        return data[:end], data[end + 2 :]
    return data, b""


def _unfold(head: str) -> list[str]:
    """Split header lines, joining continuation lines (RFC 3261 §7.3.1 folding)."""
    lines: list[str] = []
    for raw in head.replace("\r\n", "\n").split("\n"):
        if raw[:1] in (" ", "\t"):
            if not lines:
                raise SipParseError("continuation line before any header")
            lines[-1] = lines[-1].rstrip() + " " + raw.strip()
        else:
            lines.append(raw)
    return lines


def parse_message(data: bytes) -> SipMessage:
    """Parse one complete SIP message.

    The body is the bytes after the header block, cut to Content-Length when that is
    present; a datagram shorter than its Content-Length is an error (RFC 3261 §18.3).
    """
    if len(data) > MAX_MESSAGE_SIZE:
        raise SipParseError("message too large", status=513)
    data = data.lstrip(b"\r\n")
    if not data:
        raise SipParseError("empty message")
    head_bytes, body = _split_head(data)
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("header block is not UTF-8") from exc
    if "\x00" in head:
        raise SipParseError("NUL in header block")
    lines = _unfold(head)
    start_line = lines[0]
    headers = Headers()
    if len(lines) - 1 > MAX_HEADERS:
        raise SipParseError("too many headers")
    for line in lines[1:]:
        if not line.strip():
            raise SipParseError("empty header line")
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _HEADER_NAME_RE.match(name):
            raise SipParseError(f"bad header line {line[:60]!r}")
        headers.add(name, value.strip())

    length_text = headers.get("Content-Length")
    if length_text is not None:
        if not length_text.isdigit():
            raise SipParseError(f"bad Content-Length {length_text!r}")
        length = int(length_text)
        if length > len(body):
            raise SipParseError("body shorter than Content-Length")
        body = body[:length]
    # Serialization always writes Content-Length from the body, so the parsed model
    # does not keep it: parse(serialize(m)) == m and no stale length can leak out.
    headers.remove("Content-Length")

    message = _parse_start_line(start_line, headers, body)
    _check_core_headers(message)
    return message


def _parse_start_line(line: str, headers: Headers, body: bytes) -> SipMessage:
    parts = line.split(" ", 2)
    if len(parts) != 3:
        raise SipParseError(f"bad start line {line[:80]!r}")
    if _VERSION_RE.match(parts[0]):
        version, code, reason = parts
        if version.upper() != SIP_VERSION:
            raise SipParseError(f"unsupported version {version!r}", status=505)
        if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 699:
            raise SipParseError(f"bad status code {code!r}")
        if any(ch in reason for ch in "\r\n"):
            raise SipParseError("bad reason phrase")
        return SipResponse(headers=headers, body=body, status=int(code), reason=reason)
    method, uri_text, version = parts
    if not is_token(method):
        raise SipParseError(f"bad method {method!r}")
    if " " in version or not _VERSION_RE.match(version):
        raise SipParseError(f"bad request line {line[:80]!r}")
    if version.upper() != SIP_VERSION:
        raise SipParseError(f"unsupported version {version!r}", status=505)
    uri = parse_uri(uri_text)
    return SipRequest(headers=headers, body=body, method=method, uri=uri)


def _check_core_headers(message: SipMessage) -> None:
    """RFC 3261 §8.1.1: every request and response carries these, well-formed.

    Checking here means the transaction layer and the dialogs can trust the typed
    accessors, and a server can answer a bad request with 400 before anything else.
    """
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if message.headers.get(name) is None:
            raise SipParseError(f"missing {name} header")
    cseq = parse_cseq(message.headers.get("CSeq") or "")
    for via in message.headers.get_all("Via"):
        parse_via(via)
    parse_name_addr(message.headers.get("From") or "")
    parse_name_addr(message.headers.get("To") or "")
    if not message.call_id:
        raise SipParseError("empty Call-ID")
    if isinstance(message, SipRequest) and cseq.method != message.method:
        raise SipParseError("CSeq method does not match the request method")


class StreamFramer:
    """Cuts a stream (TCP) into SIP messages by Content-Length (RFC 3261 §18.3).

    Feed it bytes as they arrive; it returns the complete messages. CRLF keep-alives
    between messages (RFC 5626 §3.5.1) are skipped. A framing error is fatal for the
    connection: the caller should close it, as there is no way to find the next message.
    """

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._buffer = bytearray()
        self._max_size = max_size
        self.keepalives = 0

    def feed(self, data: bytes) -> list[SipMessage]:
        self._buffer += data
        messages: list[SipMessage] = []
        while True:
            stripped = len(self._buffer) - len(self._buffer.lstrip(b"\r\n"))
            if stripped:
                if self._buffer[:stripped].count(b"\r\n\r\n") or stripped >= 4:
                    self.keepalives += 1
                del self._buffer[:stripped]
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > self._max_size:
                    raise SipParseError("header block too large", status=513)
                return messages
            head_end = end + 4
            length = _content_length(bytes(self._buffer[:end]))
            total = head_end + length
            if total > self._max_size:
                raise SipParseError("message too large", status=513)
            if len(self._buffer) < total:
                return messages
            raw = bytes(self._buffer[:total])
            del self._buffer[:total]
            messages.append(parse_message(raw))

    @property
    def pending(self) -> int:
        return len(self._buffer)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            text = value.strip()
            if not text.isdigit():
                raise SipParseError("bad Content-Length")
            return int(text)
    # RFC 3261 §18.3: Content-Length MUST be present on streams; absent means no body.
    return 0
