"""SIP URIs, name-addr values and Via values (RFC 3261 §19.1, §20.10, §20.42, §25.1).

Values keep the spelling they arrived with (parameter names, escapes, case) so that a
message can be serialized again byte for byte; look-ups are case-insensitive where the
RFC says comparison is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .errors import SipParseError

Params = dict[str, str | None]

# RFC 3261 §8.1.1.7: branch ids that start with this cookie are globally unique.
BRANCH_MAGIC_COOKIE = "z9hG4bK"

_DEFAULT_PORTS = {"sip": 5060, "sips": 5061}
_TOKEN_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_HOST_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._]+)$")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+\-.]*$")
# RFC 3986 / RFC 3261 §25.1: a URI never holds raw whitespace, controls, quotes or <>.
_URI_FORBIDDEN_RE = re.compile(r'[\s<>"\x00-\x1f\x7f]')
_TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"
# An unquoted display-name is *(token LWS) (RFC 3261 §25.1). Being liberal, non-ASCII
# letters are allowed too (some phones send unquoted UTF-8 names), but separators such
# as "," ";" "(" are not: RFC 4475 §3.1.2.15 (baddn) rejects "Bell, Alexander <...>".
_DISPLAY_WORDS_RE = re.compile(
    rf"^[{_TOKEN_CHARS}\u0080-\U0010ffff]+(?:[ \t]+[{_TOKEN_CHARS}\u0080-\U0010ffff]+)*$"
)
# What may be written without quotes: ASCII tokens separated by spaces.
_PLAIN_DISPLAY_RE = re.compile(rf"^[{_TOKEN_CHARS}]+(?: +[{_TOKEN_CHARS}]+)*$")
# qdtext excludes these; they go out as quoted-pairs (RFC 3261 §25.1).
_QUOTE_ESCAPE_RE = re.compile(r'[\\"\x00-\x08\x0b\x0c\x0e-\x1f\x7f]')
# RFC 3261 §20.42: sent-protocol = protocol-name SLASH protocol-version SLASH transport,
# SLASH = SWS "/" SWS. The groups exclude "/" so that matching stays linear: a greedy
# \S+ here backtracked cubically on a long run of slashes (a remote DoS).
_VIA_PROTOCOL_RE = re.compile(r"^([^/\s]+)\s*/\s*([^/\s]+)\s*/\s*([^/\s]+)\s+(.*)$")


def is_token(value: str) -> bool:
    """Whether ``value`` is an RFC 3261 §25.1 token."""
    return bool(_TOKEN_RE.match(value))


def split_quoted(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` outside double quotes and angle brackets.

    RFC 3261 §7.3.1: header values such as Via and Contact may be combined with commas,
    but commas inside a quoted display name or a ``<URI>`` do not separate values.
    Raises :class:`SipParseError` on an unterminated quoted string.
    """
    # Most values have neither quotes nor brackets: str.split is then exact and ~50x
    # faster than walking the characters (this runs for every Via/Contact/param list).
    if '"' not in text and "<" not in text:
        return text.split(sep)
    special = _SPLIT_SPECIAL.get(sep)
    if special is None:
        special = _SPLIT_SPECIAL[sep] = re.compile('["<>' + re.escape(sep) + "]")
    parts: list[str] = []
    depth = 0
    start = 0
    pos = 0
    while True:
        match = special.search(text, pos)
        if match is None:
            break
        i = match.start()
        ch = text[i]
        if ch == '"':
            pos = _skip_quoted(text, i)
            continue
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif depth == 0:
            parts.append(text[start:i])
            start = i + 1
        pos = i + 1
    parts.append(text[start:])
    return parts


_SPLIT_SPECIAL: dict[str, re.Pattern[str]] = {}
_QUOTED_STOP = re.compile(r'[\\"]')


def _skip_quoted(text: str, i: int) -> int:
    """Index just past the quoted string that opens at ``text[i]`` (RFC 3261 §25.1)."""
    pos = i + 1
    while True:
        match = _QUOTED_STOP.search(text, pos)
        if match is None:
            raise SipParseError("unterminated quoted string")
        if text[match.start()] == "\\":
            # quoted-pair: the backslash escapes whatever follows, even a quote.
            pos = match.start() + 2
            continue
        return match.start() + 1


def parse_params(text: str) -> Params:
    """Parse ``;a=b;c`` (the leading ``;`` already removed) into an ordered dict."""
    params: Params = {}
    if not text.strip():
        return params
    for raw in split_quoted(text, ";"):
        item = raw.strip()
        if not item:
            raise SipParseError("empty parameter")
        name, eq, value = item.partition("=")
        name = name.strip()
        if not is_token(name):
            raise SipParseError(f"bad parameter name {name!r}")
        params[name] = value.strip() if eq else None
    return params


def format_params(params: Params) -> str:
    """Serialize parameters with their leading semicolons."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def get_param(params: Params, name: str) -> str | None:
    """Case-insensitive parameter look-up; a flag parameter gives ``""``."""
    lname = name.lower()
    for key, value in params.items():
        if key.lower() == lname:
            return "" if value is None else value
    return None


def has_param(params: Params, name: str) -> bool:
    lname = name.lower()
    return any(key.lower() == lname for key in params)


def without_param(params: Params, name: str) -> Params:
    lname = name.lower()
    return {k: v for k, v in params.items() if k.lower() != lname}


def _parse_hostport(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError(f"bad IPv6 reference in {text!r}")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise SipParseError(f"bad host:port {text!r}")
        colon, port_text = rest[:1], rest[1:]
    else:
        host, colon, port_text = text.partition(":")
    if not host or not _HOST_RE.match(host):
        raise SipParseError(f"bad host {host!r}")
    port: int | None = None
    if colon:
        # RFC 3261 §25.1 hostport = host [ ":" port ], port = 1*DIGIT: "host:" is bad.
        # isascii(): str.isdigit() accepts "²" and other digits int() refuses.
        if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
            raise SipParseError(f"bad port {port_text!r}")
        if not 0 < int(port_text) < 65536:
            raise SipParseError(f"bad port {port_text!r}")
        port = int(port_text)
    return host, port


def _format_hostport(host: str, port: int | None) -> str:
    return host if port is None else f"{host}:{port}"


@dataclass(slots=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI (RFC 3261 §19.1.1)."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    scheme: str = "sip"

    @property
    def transport(self) -> str:
        """The ``transport`` parameter in lower case (``udp`` when absent for ``sip:``)."""
        value = get_param(self.params, "transport")
        if value:
            return value.lower()
        return "tls" if self.scheme == "sips" else "udp"

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else _DEFAULT_PORTS.get(self.scheme, 5060)

    @property
    def host_no_brackets(self) -> str:
        """The host as a socket address wants it (IPv6 without brackets)."""
        return self.host[1:-1] if self.host.startswith("[") else self.host

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    def with_params(self, **params: str | None) -> SipUri:
        merged = dict(self.params)
        merged.update(params)
        return replace(self, params=merged)

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = self.user
            if self.password is not None:
                userinfo += ":" + self.password
            userinfo += "@"
        text = f"{self.scheme}:{userinfo}{_format_hostport(self.host, self.port)}"
        text += format_params(self.params)
        if self.headers:
            text += "?" + "&".join(f"{k}={v}" for k, v in self.headers.items())
        return text


@dataclass(slots=True)
class AbsoluteUri:
    """Any non-SIP URI (``tel:``, ``urn:``, ``mailto:`` …), kept as text (RFC 3261 §19.1.6)."""

    scheme: str
    rest: str

    @property
    def user(self) -> str | None:
        """For ``tel:`` URIs the subscriber number, so callers can treat it like a SIP user."""
        if self.scheme.lower() == "tel":
            return self.rest.split(";", 1)[0]
        return None

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | AbsoluteUri


def parse_uri(text: str) -> Uri:
    """Parse a Request-URI or addr-spec. Raises :class:`SipParseError`.

    Escapes (``%40``) are kept as they arrived: RFC 4475 §3.1.1.3/§3.1.1.4 messages
    must survive a round trip unchanged, and ``%00`` must never become a raw NUL.
    """
    text = text.strip()
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME_RE.match(scheme) or not rest:
        raise SipParseError(f"bad URI {text!r}")
    if _URI_FORBIDDEN_RE.search(text):
        raise SipParseError(f"bad character in URI {text!r}")
    lscheme = scheme.lower()
    if lscheme != "sip" and lscheme != "sips":
        return AbsoluteUri(scheme, rest)
    # RFC 3261 §19.1.1/§25.1: the user part may hold ";", "?", "&", "=" … (user-unreserved,
    # RFC 4475 §3.1.1.2 and §3.1.1.9) but never a raw "@", so userinfo ends at the first
    # "@"; only then can ";" (parameters) and "?" (headers) be looked for.
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        if not userinfo:
            raise SipParseError(f"empty user in {text!r}")
        user, pcolon, pw = userinfo.partition(":")
        password = pw if pcolon else None
    rest, qmark, header_text = rest.partition("?")
    headers: dict[str, str] = {}
    if qmark:
        for item in header_text.split("&"):
            name, eq, value = item.partition("=")
            if not name or not eq:
                raise SipParseError(f"bad URI header {item!r}")
            headers[name] = value
    hostport, semi, param_text = rest.partition(";")
    host, port = _parse_hostport(hostport)
    params = parse_params(param_text) if semi else {}
    return SipUri(
        host=host,
        user=user,
        password=password,
        port=port,
        params=params,
        headers=headers,
        scheme=lscheme,
    )


def parse_sip_uri(text: str) -> SipUri:
    """Parse a URI that must be ``sip:``/``sips:``."""
    uri = parse_uri(text)
    if not isinstance(uri, SipUri):
        raise SipParseError(f"not a SIP URI: {text!r}")
    return uri


def _quote(display: str) -> str:
    """A display-name as it goes on the wire: bare tokens, or a quoted-string.

    Control characters become quoted-pairs (RFC 3261 §25.1); CR and LF cannot be
    escaped at all, so they become spaces rather than end the header line early.
    """
    if _PLAIN_DISPLAY_RE.match(display):
        return display
    text = display.replace("\r", " ").replace("\n", " ")
    return '"' + _QUOTE_ESCAPE_RE.sub(lambda m: "\\" + m.group(), text) + '"'


@dataclass(slots=True)
class NameAddr:
    """A From/To/Contact/Route value: display name, URI and header parameters (RFC 3261 §20.10)."""

    uri: Uri
    display_name: str | None = None
    params: Params = field(default_factory=dict)
    # Contact: * (RFC 3261 §10.2.2) has no URI at all; kept as a flag.
    wildcard: bool = False

    @property
    def tag(self) -> str | None:
        return get_param(self.params, "tag")

    def with_tag(self, tag: str) -> NameAddr:
        params = without_param(self.params, "tag")
        params["tag"] = tag
        return replace(self, params=params)

    def __str__(self) -> str:
        if self.wildcard:
            return "*"
        display = f"{_quote(self.display_name)} " if self.display_name else ""
        return f"{display}<{self.uri}>{format_params(self.params)}"


# Parsing is a pure function of the text, and a dialog's From, To, Contact and Via values
# come back in every message of it (and are read several times per message): results are
# kept here and handed out as copies (callers own what they get; the values are mutable).
_MEMO_MAX = 4096
_NAME_ADDR_MEMO: dict[str, NameAddr] = {}
_VIA_MEMO: dict[str, Via] = {}


def _copy_uri(uri: Uri) -> Uri:
    if isinstance(uri, SipUri):
        return SipUri(
            uri.host,
            uri.user,
            uri.password,
            uri.port,
            dict(uri.params),
            dict(uri.headers),
            uri.scheme,
        )
    return AbsoluteUri(uri.scheme, uri.rest)


def _copy_name_addr(value: NameAddr) -> NameAddr:
    return NameAddr(_copy_uri(value.uri), value.display_name, dict(value.params), value.wildcard)


def parse_name_addr(text: str) -> NameAddr:
    """Parse ``"Name" <sip:a@b>;tag=x``, ``Name <sip:a@b>`` or ``sip:a@b;tag=x``."""
    known = _NAME_ADDR_MEMO.get(text)
    if known is not None:
        return _copy_name_addr(known)
    value = _parse_name_addr(text)
    if len(_NAME_ADDR_MEMO) >= _MEMO_MAX:
        _NAME_ADDR_MEMO.clear()
    _NAME_ADDR_MEMO[text] = _copy_name_addr(value)
    return value


def _parse_name_addr(text: str) -> NameAddr:
    text = text.strip()
    if text == "*":
        return NameAddr(uri=AbsoluteUri("*", ""), wildcard=True)
    display: str | None = None
    if text.startswith('"'):
        i, chars = 1, []
        while i < len(text):
            ch = text[i]
            if ch == "\\" and i + 1 < len(text):
                chars.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                break
            chars.append(ch)
            i += 1
        else:
            raise SipParseError(f"unterminated display name in {text!r}")
        display = "".join(chars)
        text = text[i + 1 :].lstrip()
        if not text.startswith("<"):
            raise SipParseError("quoted display name without <URI>")
    lt = text.find("<")
    semi = text.find(";")
    # A "<" after the first ";" is inside a header parameter (e.g. a quoted
    # +sip.instance="<urn:uuid:…>"), so the value is then the addr-spec form.
    if lt >= 0 and (semi < 0 or lt < semi):
        gt = text.find(">", lt)
        if gt < 0:
            raise SipParseError(f"missing '>' in {text!r}")
        before = text[:lt].strip()
        if before:
            if not _DISPLAY_WORDS_RE.match(before):
                raise SipParseError(f"display name must be tokens or quoted: {before!r}")
            display = before
        uri = parse_uri(text[lt + 1 : gt])
        after = text[gt + 1 :].strip()
        if after and not after.startswith(";"):
            raise SipParseError(f"junk after URI in {text!r}")
        params = parse_params(after[1:]) if after else {}
    else:
        # RFC 3261 §20.10: without angle brackets, parameters belong to the header,
        # and the URI can have neither parameters nor headers of its own.
        uri_text, semi_found, param_text = text.partition(";")
        if "?" in uri_text or "," in uri_text:
            raise SipParseError(f"addr-spec needs <> in {text!r}")
        uri = parse_uri(uri_text)
        params = parse_params(param_text) if semi_found else {}
    return NameAddr(uri=uri, display_name=display, params=params)


@dataclass(slots=True)
class Via:
    """One Via value (RFC 3261 §20.42), with RFC 3581 ``rport``/``received`` helpers."""

    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        return get_param(self.params, "branch")

    @property
    def received(self) -> str | None:
        return get_param(self.params, "received")

    @property
    def rport(self) -> int | None:
        """The filled-in rport value, or None when absent or an empty request flag."""
        value = get_param(self.params, "rport")
        if value and value.isascii() and value.isdigit() and len(value) <= 5:
            return int(value)
        return None

    @property
    def wants_rport(self) -> bool:
        return has_param(self.params, "rport")

    @property
    def sent_by(self) -> tuple[str, int]:
        default = 5061 if self.transport.upper() == "TLS" else 5060
        host = self.host[1:-1] if self.host.startswith("[") else self.host
        return host, self.port if self.port is not None else default

    def __str__(self) -> str:
        return (
            f"{self.protocol}/{self.transport} {_format_hostport(self.host, self.port)}"
            f"{format_params(self.params)}"
        )


def parse_via(text: str) -> Via:
    """Parse a single Via value (not a comma-separated list)."""
    known = _VIA_MEMO.get(text)
    if known is not None:
        return Via(known.transport, known.host, known.port, dict(known.params), known.protocol)
    value = _parse_via(text)
    if len(_VIA_MEMO) >= _MEMO_MAX:
        _VIA_MEMO.clear()
    _VIA_MEMO[text] = Via(
        value.transport, value.host, value.port, dict(value.params), value.protocol
    )
    return value


def _parse_via(text: str) -> Via:
    text = text.strip()
    proto, space, rest = text.partition(" ")
    parts = proto.split("/")
    if not space or len(parts) != 3 or not all(is_token(p.strip()) for p in parts):
        # Tolerate spaces around the slashes (RFC 3261 §25.1 SLASH = SWS "/" SWS).
        match = _VIA_PROTOCOL_RE.match(text)
        if not match:
            raise SipParseError(f"bad Via {text!r}")
        parts = [match.group(1), match.group(2), match.group(3)]
        rest = match.group(4)
    sent_by, semi, param_text = rest.strip().partition(";")
    host, port = _parse_hostport(sent_by.strip().replace(" ", ""))
    params = parse_params(param_text) if semi else {}
    return Via(
        transport=parts[2].strip().upper(),
        host=host,
        port=port,
        params=params,
        protocol=f"{parts[0].strip()}/{parts[1].strip()}",
    )
