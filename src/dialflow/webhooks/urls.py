"""SSRF guard for webhook URLs: which URLs may be given, and which addresses may be reached.

A webhook URL is user input that makes the server open a connection, the classic
server-side request forgery vector: ``http://169.254.169.254/`` reads cloud credentials,
``http://127.0.0.1:6379/`` talks to a local Redis. The rules (docs/webhooks.md):

- scheme ``http``/``https``, a host, no userinfo, a port in 1–65535, no whitespace;
- every address the host resolves to must be public. Loopback, private (RFC 1918),
  unique-local, CGNAT (100.64/10), documentation/benchmark/reserved ranges are refused
  unless ``allow_private`` (``DIALFLOW_WEBHOOK_ALLOW_PRIVATE=1``, for labs and tests);
  link-local, multicast/broadcast, unspecified and cloud-metadata addresses are refused
  always: nothing legitimate receives webhooks there.
- IPv4 embedded in IPv6 (IPv4-mapped, IPv4-compatible, NAT64 64:ff9b::/96, 6to4) is judged
  by its IPv4 address, and every IPv4 spelling ``inet_aton`` accepts (``2130706433``,
  ``0x7f.1``, ``0177.0.0.1``, ``127.1``) is normalised before judging.

The check runs twice: when the URL is given (the API answers 422 ``webhook_url_not_allowed``)
and again at send time on the addresses actually connected to (DNS rebinding: a name can
answer a public address to the first lookup and 127.0.0.1 to the next), see
:mod:`dialflow.webhooks.transport`.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port) -> addresses`` as strings; raises ``OSError`` when the name does not resolve.
Injectable so tests can play a rebinding DNS server."""

MAX_URL_LENGTH = 2048


class WebhookUrlNotAllowed(ValueError):
    """The URL (or an address it resolves to) may not receive webhooks; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AddressClass(enum.StrEnum):
    """Why an address is not public (the value is used in refusal messages)."""

    LOOPBACK = "loopback"
    PRIVATE = "private"
    UNIQUE_LOCAL = "unique-local"
    SHARED = "shared (CGNAT)"
    RESERVED = "reserved"
    LINK_LOCAL = "link-local"
    MULTICAST = "multicast"
    BROADCAST = "broadcast"
    UNSPECIFIED = "unspecified"
    METADATA = "cloud metadata"


ALWAYS_REFUSED = frozenset(
    {
        AddressClass.LINK_LOCAL,
        AddressClass.MULTICAST,
        AddressClass.BROADCAST,
        AddressClass.UNSPECIFIED,
        AddressClass.METADATA,
    }
)


def _nets(
    *entries: tuple[str, AddressClass],
) -> tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, AddressClass], ...]:
    return tuple((ipaddress.ip_network(net), cls) for net, cls in entries)


# First match wins: metadata endpoints come before the ranges that contain them.
_V4_TABLE = _nets(
    ("169.254.169.254/32", AddressClass.METADATA),  # AWS, GCP, Azure, OCI, DigitalOcean IMDS
    ("169.254.170.2/32", AddressClass.METADATA),  # AWS ECS task metadata
    ("100.100.100.200/32", AddressClass.METADATA),  # Alibaba Cloud metadata
    ("168.63.129.16/32", AddressClass.METADATA),  # Azure wireserver (a public-looking address)
    ("0.0.0.0/8", AddressClass.UNSPECIFIED),  # RFC 1122 "this network"; 0.0.0.0 reaches localhost
    ("127.0.0.0/8", AddressClass.LOOPBACK),
    ("10.0.0.0/8", AddressClass.PRIVATE),  # RFC 1918
    ("172.16.0.0/12", AddressClass.PRIVATE),
    ("192.168.0.0/16", AddressClass.PRIVATE),
    ("100.64.0.0/10", AddressClass.SHARED),  # RFC 6598 carrier-grade NAT
    ("169.254.0.0/16", AddressClass.LINK_LOCAL),  # RFC 3927
    ("224.0.0.0/4", AddressClass.MULTICAST),
    ("255.255.255.255/32", AddressClass.BROADCAST),
    ("240.0.0.0/4", AddressClass.RESERVED),  # RFC 1112 class E
    ("192.0.0.0/24", AddressClass.RESERVED),  # RFC 6890 IETF protocol assignments
    ("192.0.2.0/24", AddressClass.RESERVED),  # RFC 5737 documentation
    ("198.51.100.0/24", AddressClass.RESERVED),
    ("203.0.113.0/24", AddressClass.RESERVED),
    ("198.18.0.0/15", AddressClass.RESERVED),  # RFC 2544 benchmarking
    ("192.88.99.0/24", AddressClass.RESERVED),  # RFC 7526 deprecated 6to4 relay anycast
)

_V6_TABLE = _nets(
    # AWS instance services (IMDS fd00:ec2::254, DNS ::253, NTP ::123) live in this ULA block.
    ("fd00:ec2::/32", AddressClass.METADATA),
    ("::/128", AddressClass.UNSPECIFIED),
    ("::1/128", AddressClass.LOOPBACK),
    ("fe80::/10", AddressClass.LINK_LOCAL),
    ("ff00::/8", AddressClass.MULTICAST),
    ("fc00::/7", AddressClass.UNIQUE_LOCAL),  # RFC 4193
    ("fec0::/10", AddressClass.PRIVATE),  # RFC 3879 deprecated site-local
    ("100::/64", AddressClass.RESERVED),  # RFC 6666 discard-only
    ("2001:db8::/32", AddressClass.RESERVED),  # RFC 3849 documentation
    ("3fff::/20", AddressClass.RESERVED),  # RFC 9637 documentation
    ("2001::/23", AddressClass.RESERVED),  # RFC 2928 IETF protocol assignments (Teredo, ORCHID)
    ("64:ff9b:1::/48", AddressClass.RESERVED),  # RFC 8215 local-use NAT64
)

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291 §2.5.5.1 (deprecated)
_SIIT = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 IPv4-translated


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries to an IPv4 host, if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _NAT64 or ip in _SIIT:
        return low32
    # ::/96 minus :: and ::1, which the table names (unspecified, loopback).
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:
        return low32
    return None


def classify_address(ip: IPAddress) -> AddressClass | None:
    """The class that makes ``ip`` non-public, or None when it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return classify_address(embedded)
        table = _V6_TABLE
    else:
        table = _V4_TABLE
    for net, cls in table:
        if ip in net:
            return cls
    # Anything else IANA does not list as globally reachable (ranges added after this table).
    if not ip.is_global:
        return AddressClass.RESERVED
    return None


def check_address(ip: IPAddress, *, allow_private: bool, host: str | None = None) -> None:
    """Raise :class:`WebhookUrlNotAllowed` unless webhooks may be sent to ``ip``."""
    cls = classify_address(ip)
    if cls is None or (allow_private and cls not in ALWAYS_REFUSED):
        return
    subject = f"{host} resolves to" if host is not None and host != str(ip) else "address"
    raise WebhookUrlNotAllowed(f"{subject} {ip}, a {cls.value} address")


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """The parts of a webhook URL the checks need (``host`` is ASCII/IDNA, no brackets)."""

    scheme: str
    host: str
    port: int


_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
_NUMERIC_HOST = re.compile(r"[0-9a-fA-FxX.]+")


def parse_webhook_url(url: str) -> WebhookTarget:
    """Check the syntax rules (no DNS) and return scheme, host and port."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlNotAllowed(f"URL longer than {MAX_URL_LENGTH} characters")
    if _CONTROL_OR_SPACE.search(url):
        raise WebhookUrlNotAllowed("URL contains whitespace or control characters")
    # Parse with httpx, the client that will send: no parser differential between the
    # check and the request (e.g. "http://a.com\\@127.0.0.1/" is userinfo to both).
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise WebhookUrlNotAllowed(f"invalid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise WebhookUrlNotAllowed("scheme must be http or https")
    if parsed.userinfo:
        raise WebhookUrlNotAllowed("URL must not contain credentials (user:password@)")
    try:
        host = parsed.raw_host.decode("ascii")
    except UnicodeDecodeError:
        raise WebhookUrlNotAllowed("invalid host") from None
    if not host:
        raise WebhookUrlNotAllowed("URL has no host")
    port = parsed.port if parsed.port is not None else (443 if parsed.scheme == "https" else 80)
    if not 1 <= port <= 65535:
        raise WebhookUrlNotAllowed(f"port {port} out of range")
    return WebhookTarget(scheme=parsed.scheme, host=host, port=port)


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is one, in any spelling the OS resolver accepts.

    ``getaddrinfo`` (via ``inet_aton``) reads ``2130706433``, ``0x7f.1`` and ``0177.0.0.1``
    as 127.0.0.1; normalising here means the guard never relies on a resolver to do it.
    """
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(text) and text[-1:] != ".":
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def _is_localhost_name(host: str) -> bool:
    # RFC 6761 §6.3: "localhost" and "*.localhost" are loopback whatever DNS says.
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


async def system_resolver(host: str, port: int) -> list[str]:
    """The OS resolver through the event loop (``getaddrinfo`` in the default executor)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _judge(host: str, answers: Sequence[str], *, allow_private: bool) -> list[IPAddress]:
    addresses: list[IPAddress] = []
    for answer in answers:
        try:
            ip = ipaddress.ip_address(answer)
        except ValueError:
            raise WebhookUrlNotAllowed(f"{host} resolved to an unparsable address") from None
        # ANY refused answer refuses the host: the client may pick any of them.
        check_address(ip, allow_private=allow_private, host=host)
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise WebhookUrlNotAllowed(f"{host} does not resolve")
    return addresses


def _pre_resolve(host: str, *, allow_private: bool) -> IPAddress | None:
    """Checks that need no DNS; the literal address when ``host`` is one."""
    literal = literal_address(host)
    if literal is not None:
        check_address(literal, allow_private=allow_private, host=host)
        return literal
    if _is_localhost_name(host) and not allow_private:
        raise WebhookUrlNotAllowed(f"{host} is a loopback name")
    return None


async def resolve_checked(
    host: str, port: int, *, allow_private: bool, resolver: Resolver | None = None
) -> list[IPAddress]:
    """Resolve ``host`` once and return its addresses, all of them allowed.

    Raises :class:`WebhookUrlNotAllowed` when any answer is refused, and ``OSError`` (e.g.
    ``socket.gaierror``) when the name does not resolve: at send time that is a transient
    failure, not a policy refusal.
    """
    literal = _pre_resolve(host, allow_private=allow_private)
    if literal is not None:
        return [literal]
    answers = await (resolver or system_resolver)(host, port)
    return _judge(host, answers, allow_private=allow_private)


async def check_webhook_url_async(
    url: str, *, allow_private: bool, resolver: Resolver | None = None
) -> list[IPAddress]:
    """Refuse (raise :class:`WebhookUrlNotAllowed`) a URL that may not receive webhooks.

    For request handlers: resolves through the event loop. Returns the checked addresses.
    A name that does not resolve is refused too.
    """
    target = parse_webhook_url(url)
    try:
        return await resolve_checked(
            target.host, target.port, allow_private=allow_private, resolver=resolver
        )
    except OSError:
        raise WebhookUrlNotAllowed(f"{target.host} does not resolve") from None


def check_webhook_url(url: str, *, allow_private: bool) -> None:
    """Blocking variant of :func:`check_webhook_url_async` (system resolver)."""
    target = parse_webhook_url(url)
    if _pre_resolve(target.host, allow_private=allow_private) is not None:
        return
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError:
        raise WebhookUrlNotAllowed(f"{target.host} does not resolve") from None
    answers = [str(info[4][0]) for info in infos]
    _judge(target.host, answers, allow_private=allow_private)
