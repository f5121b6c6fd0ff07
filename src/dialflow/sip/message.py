"""The SIP message model: requests, responses and their headers (RFC 3261 §7, §20).

Messages are plain mutable objects with typed accessors for the headers the stack
reads (Via, From, To, Call-ID, CSeq, Contact …). Header names are canonicalized on the
way in (compact forms expanded, known names spelled as in the RFC) and compared
case-insensitively; values are stored as received so serialization is faithful.
"""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .errors import SipParseError
from .uri import BRANCH_MAGIC_COOKIE, NameAddr, Uri, Via, parse_name_addr, parse_via, split_quoted

SIP_VERSION = "SIP/2.0"

# RFC 3261 §7.3.3 and the IANA registry: compact forms.
COMPACT_FORMS = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "r": "Refer-To",
    "b": "Referred-By",
    "u": "Allow-Events",
    "x": "Session-Expires",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "y": "Identity",
}

_CANONICAL = {
    name.lower(): name
    for name in (
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Authentication-Info",
        "Authorization",
        "Call-ID",
        "Call-Info",
        "Contact",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "Date",
        "Error-Info",
        "Event",
        "Expires",
        "From",
        "In-Reply-To",
        "Max-Forwards",
        "Min-Expires",
        "MIME-Version",
        "Organization",
        "P-Asserted-Identity",
        "Priority",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Refer-To",
        "Referred-By",
        "Reply-To",
        "Require",
        "Retry-After",
        "Route",
        "RSeq",
        "RAck",
        "Server",
        "Session-Expires",
        "Subject",
        "Subscription-State",
        "Supported",
        "Timestamp",
        "To",
        "Unsupported",
        "User-Agent",
        "Via",
        "Warning",
        "WWW-Authenticate",
    )
}

# Headers whose values are comma-separated lists (RFC 3261 §7.3.1); others, such as
# WWW-Authenticate or Date, contain commas that are not separators.
LIST_HEADERS = frozenset(
    {
        "via",
        "contact",
        "route",
        "record-route",
        "allow",
        "supported",
        "require",
        "proxy-require",
        "unsupported",
        "accept",
        "accept-encoding",
        "accept-language",
        "content-encoding",
        "content-language",
        "allow-events",
        "path",
        "service-route",
        "in-reply-to",
    }
)

REASON_PHRASES = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


# Names the stack looks up, by the spelling it uses, mapped to their canonical form
# (only names whose canonical form is the one stored for every spelling).
_KNOWN_LOOKUP = {name: name for name in _CANONICAL.values()}


def canonical_name(name: str) -> str:
    """Expand compact forms and spell known header names as the RFC does."""
    if len(name) == 1:
        expanded = COMPACT_FORMS.get(name.lower())
        if expanded:
            return expanded
    return _CANONICAL.get(name.lower(), name)


def new_branch() -> str:
    """A globally unique Via branch (RFC 3261 §8.1.1.7)."""
    return BRANCH_MAGIC_COOKIE + secrets.token_hex(8)


def new_tag() -> str:
    """A From/To tag with at least 32 bits of randomness (RFC 3261 §19.3)."""
    return secrets.token_hex(6)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(12)}@{host}"


class Headers:
    """An ordered multi-map of header fields with case-insensitive names."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(canonical_name(n), v) for n, v in items]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    @classmethod
    def from_canonical(cls, items: list[tuple[str, str]]) -> Headers:
        """Headers over ``items`` as they are: names already canonical (the parser's)."""
        headers = cls()
        headers._items = items
        return headers

    def copy(self) -> Headers:
        copy = Headers()
        copy._items = list(self._items)
        return copy

    def get(self, name: str) -> str | None:
        """The first field of that name, as received (not split on commas)."""
        known = _KNOWN_LOOKUP.get(name)
        if known is not None:
            # Stored names are canonical, and every spelling of a known name has one
            # canonical form: an exact comparison is enough.
            for n, v in self._items:
                if n == known:
                    return v
            return None
        lname = canonical_name(name).lower()
        for n, v in self._items:
            if n.lower() == lname:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        """Every value of that name; list headers are split on their commas."""
        known = _KNOWN_LOOKUP.get(name)
        if known is not None:
            lname = known.lower()
            values = [v for n, v in self._items if n == known]
        else:
            lname = canonical_name(name).lower()
            values = [v for n, v in self._items if n.lower() == lname]
        if lname in LIST_HEADERS:
            return [part.strip() for v in values for part in split_quoted(v, ",") if part.strip()]
        return values

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        item = (canonical_name(name), value)
        if first:
            self._items.insert(0, item)
        else:
            self._items.append(item)

    def set(self, name: str, value: str) -> None:
        """Replace every field of that name by one, in the place of the first."""
        cname = canonical_name(name)
        lname = cname.lower()
        for i, (n, _) in enumerate(self._items):
            if n.lower() == lname:
                self._items[i] = (cname, value)
                self._items = [
                    it for j, it in enumerate(self._items) if j <= i or it[0].lower() != lname
                ]
                return
        self._items.append((cname, value))

    def remove(self, name: str) -> None:
        lname = canonical_name(name).lower()
        self._items = [it for it in self._items if it[0].lower() != lname]

    def names(self) -> builtins.set[str]:
        return {n.lower() for n, _ in self._items}


@dataclass(slots=True, frozen=True)
class CSeq:
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_cseq(value: str) -> CSeq:
    parts = value.split()
    # RFC 3261 §8.1.1.5: the sequence number is a 32-bit unsigned integer below 2**31.
    # isascii() and the length cap: "²".isdigit() is true but int() refuses it, and
    # int() refuses digit strings over 4300 long; both must be SipParseError.
    if (
        len(parts) != 2
        or not (parts[0].isascii() and parts[0].isdigit() and len(parts[0]) <= 10)
        or int(parts[0]) >= 2**31
    ):
        raise SipParseError(f"bad CSeq {value[:40]!r}")
    return CSeq(int(parts[0]), parts[1])


@dataclass(slots=True, eq=False)
class _Message:
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    # -- typed accessors (parsed on demand; they raise SipParseError on bad values)

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"missing {name} header")
        return value

    @property
    def call_id(self) -> str:
        return self._required("Call-ID").strip()

    @property
    def cseq(self) -> CSeq:
        return parse_cseq(self._required("CSeq"))

    @property
    def vias(self) -> list[Via]:
        return [parse_via(v) for v in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        values = self.headers.get_all("Via")
        if not values:
            raise SipParseError("missing Via header")
        return parse_via(values[0])

    @property
    def from_(self) -> NameAddr:
        return parse_name_addr(self._required("From"))

    @property
    def to(self) -> NameAddr:
        return parse_name_addr(self._required("To"))

    @property
    def contacts(self) -> list[NameAddr]:
        return [parse_name_addr(v) for v in self.headers.get_all("Contact")]

    @property
    def record_route(self) -> list[NameAddr]:
        return [parse_name_addr(v) for v in self.headers.get_all("Record-Route")]

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return value.split(";", 1)[0].strip().lower() if value else None

    def header_bytes(self) -> bytes:
        lines = [f"{n}: {v}\r\n" for n, v in self.headers if n != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}\r\n\r\n")
        return "".join(lines).encode("utf-8", "surrogateescape")


@dataclass(slots=True, eq=False)
class SipRequest(_Message):
    """A SIP request. ``uri`` is the Request-URI."""

    method: str = "OPTIONS"
    uri: Uri | None = None
    version: str = SIP_VERSION

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SipRequest) and (
            self.method,
            str(self.uri),
            self.version,
            self.headers,
            self.body,
        ) == (other.method, str(other.uri), other.version, other.headers, other.body)

    def __repr__(self) -> str:
        return f"<SipRequest {self.method} {self.uri}>"

    def serialize(self) -> bytes:
        """Wire bytes; Content-Length is always written from the body (RFC 3261 §20.14)."""
        start = f"{self.method} {self.uri} {self.version}\r\n".encode()
        return start + self.header_bytes() + self.body


@dataclass(slots=True, eq=False)
class SipResponse(_Message):
    """A SIP response."""

    status: int = 200
    reason: str = "OK"
    version: str = SIP_VERSION

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SipResponse) and (
            self.status,
            self.reason,
            self.version,
            self.headers,
            self.body,
        ) == (other.status, other.reason, other.version, other.headers, other.body)

    def __repr__(self) -> str:
        return f"<SipResponse {self.status} {self.reason}>"

    @property
    def is_provisional(self) -> bool:
        return self.status < 200

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def serialize(self) -> bytes:
        start = f"{self.version} {self.status} {self.reason}\r\n".encode()
        return start + self.header_bytes() + self.body


SipMessage = SipRequest | SipResponse


def make_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> SipResponse:
    """Build a response to ``request`` (RFC 3261 §8.2.6.2).

    Via, From, Call-ID and CSeq are copied; To is copied and given ``to_tag`` when it has
    none yet; Record-Route is copied on dialog-forming responses (§12.1.1).
    """
    out = Headers()
    for value in request.headers.get_all("Via"):
        out.add("Via", value)
    from_value = request.headers.get("From")
    if from_value is not None:
        out.add("From", from_value)
    to_value = request.headers.get("To")
    if to_value is not None:
        if to_tag and status > 100:
            to = parse_name_addr(to_value)
            if to.tag is None:
                to_value = str(to.with_tag(to_tag))
        out.add("To", to_value)
    for name in ("Call-ID", "CSeq"):
        copied = request.headers.get(name)
        if copied is not None:
            out.add(name, copied)
    if request.method in ("INVITE", "SUBSCRIBE", "REFER") and 100 < status < 300:
        for value in request.headers.get_all("Record-Route"):
            out.add("Record-Route", value)
    for name, value in headers:
        out.add(name, value)
    return SipResponse(
        headers=out,
        body=body,
        status=status,
        reason=reason if reason is not None else REASON_PHRASES.get(status, "Unknown"),
    )
