"""Where an organization may call: destination parsing, allow-lists, and the server-wide deny rules.

Toll-fraud protection is the organization's ``allowedDestinations``; SSRF protection is
server-wide and not negotiable: link-local (cloud metadata lives there), multicast,
unspecified and broadcast addresses are never dialled, by literal or by name.
Loopback is allowed — calling the server's own SIP address is how flows test flows.
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import re
from dataclasses import dataclass

from ..sip.errors import SipParseError
from ..sip.uri import SipUri, parse_uri

_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
# Names that reach instance metadata services without a link-local literal.
_METADATA_NAMES = frozenset(
    {"metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal"}
)


class DestinationError(ValueError):
    """The destination is not a valid SIP URI or phone number."""


class DestinationNotAllowed(Exception):
    """Refused by policy (403 destination_not_allowed)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Destination:
    """A parsed ``to``: a SIP URI, or a phone number for a trunk."""

    kind: str  # "sip" | "pstn"
    text: str  # normalised: "sip:user@host[:port][;params]" or "+E164"
    sip_uri: SipUri | None = None
    number: str | None = None

    def patterns_forms(self) -> list[str]:
        """The strings allow-list patterns are matched against."""
        if self.kind == "pstn":
            assert self.number is not None
            return [self.number, f"tel:{self.number}"]
        uri = self.sip_uri
        assert uri is not None
        user = f"{uri.user}@" if uri.user else ""
        bare = f"{uri.scheme}:{user}{uri.host}"
        # A pattern without a port matches every port of that host.
        forms = [bare]
        if uri.port is not None:
            forms.append(f"{bare}:{uri.port}")
        return forms


def parse_destination(to: str) -> Destination:
    text = to.strip()
    if _E164.match(text):
        return Destination("pstn", text, number=text)
    if text.lower().startswith("tel:"):
        number = text[4:].split(";", 1)[0]
        if not _E164.match(number):
            raise DestinationError("tel: URIs must carry a global number, e.g. tel:+14155550100")
        return Destination("pstn", number, number=number)
    if text.lower().startswith("sips:"):
        raise DestinationError("sips: (TLS) is not supported; use sip:")
    if not text.lower().startswith("sip:"):
        raise DestinationError("use a SIP URI (sip:user@host) or an E.164 number (+14155550100)")
    try:
        uri = parse_uri(text)
    except SipParseError as exc:
        raise DestinationError(f"not a valid SIP URI: {exc}") from None
    if not isinstance(uri, SipUri):
        raise DestinationError("not a SIP URI")
    if uri.transport not in ("udp", "tcp"):
        raise DestinationError(f"unsupported transport {uri.transport!r} (udp or tcp)")
    return Destination("sip", str(uri), sip_uri=uri)


# A pure function of the text, asked on every call placed (ipaddress parsing and its
# is_* properties cost ~15 µs): a bounded memo.
@functools.lru_cache(maxsize=1024)
def address_denied(address: str) -> str | None:
    """Why an IP address may never be dialled (None when it may)."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_link_local:
        return "link-local addresses (cloud metadata) are never dialled"
    if ip.is_multicast:
        return "multicast addresses are never dialled"
    if ip.is_unspecified:
        return "unspecified addresses are never dialled"
    if isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255"):
        return "broadcast is never dialled"
    if ip == _EC2_METADATA_V6:
        return "cloud metadata addresses are never dialled"
    return None


_EC2_METADATA_V6 = ipaddress.ip_address("fd00:ec2::254")


def host_denied(host: str) -> str | None:
    """The server-wide rule for a SIP host given as a literal or a name."""
    name = host.strip("[]").lower().rstrip(".")
    if name in _METADATA_NAMES:
        return "cloud metadata hosts are never dialled"
    return address_denied(name)


def check_destination(destination: Destination, allowed: list[str]) -> None:
    """Raise :class:`DestinationNotAllowed` if ``destination`` is refused for the organization."""
    if destination.kind == "sip":
        assert destination.sip_uri is not None
        for host in (destination.sip_uri.host, destination.sip_uri.param("maddr") or ""):
            reason = host_denied(host) if host else None
            if reason:
                raise DestinationNotAllowed(reason)
    if not allowed:
        return
    forms = destination.patterns_forms()
    for pattern in allowed:
        normalised = pattern[4:] if pattern.lower().startswith("tel:") else pattern
        if any(fnmatch.fnmatchcase(form, normalised) for form in forms):
            return
    raise DestinationNotAllowed("the destination is not in the organization's allowedDestinations")
