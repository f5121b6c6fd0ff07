"""The SSRF guard: URL syntax, address classes, numeric spellings, resolver answers."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

import pytest

from dialflow.webhooks.urls import (
    AddressClass,
    Resolver,
    WebhookUrlNotAllowed,
    check_webhook_url,
    check_webhook_url_async,
    classify_address,
    literal_address,
    parse_webhook_url,
)

# Every one of these is refused without allow_private. The expected class is what the
# refusal names; None marks names that go through the system resolver.
REFUSED = [
    ("http://127.0.0.1/", AddressClass.LOOPBACK),
    ("http://127.8.9.10:8080/x", AddressClass.LOOPBACK),
    ("http://10.1.2.3/", AddressClass.PRIVATE),
    ("http://172.16.0.1/", AddressClass.PRIVATE),
    ("http://172.31.255.254/", AddressClass.PRIVATE),
    ("http://192.168.1.1/", AddressClass.PRIVATE),
    ("http://100.64.0.1/", AddressClass.SHARED),
    ("http://100.127.255.254/", AddressClass.SHARED),
    ("http://169.254.169.254/latest/meta-data/", AddressClass.METADATA),
    ("http://169.254.1.1/", AddressClass.LINK_LOCAL),
    ("http://100.100.100.200/", AddressClass.METADATA),
    ("http://0.0.0.0/", AddressClass.UNSPECIFIED),
    ("http://224.0.0.1/", AddressClass.MULTICAST),
    ("http://255.255.255.255/", AddressClass.BROADCAST),
    ("http://240.0.0.1/", AddressClass.RESERVED),
    ("http://192.0.2.10/", AddressClass.RESERVED),
    ("http://[::1]/", AddressClass.LOOPBACK),
    ("http://[::]/", AddressClass.UNSPECIFIED),
    ("http://[fe80::1]/", AddressClass.LINK_LOCAL),
    ("http://[fc00::1]/", AddressClass.UNIQUE_LOCAL),
    ("http://[fd12:3456::1]/", AddressClass.UNIQUE_LOCAL),
    ("http://[fd00:ec2::254]/", AddressClass.METADATA),
    ("http://[ff02::1]/", AddressClass.MULTICAST),
    ("http://[::ffff:127.0.0.1]/", AddressClass.LOOPBACK),  # IPv4-mapped
    ("http://[::ffff:7f00:1]/", AddressClass.LOOPBACK),
    ("http://[::ffff:169.254.169.254]/", AddressClass.METADATA),
    ("http://[64:ff9b::7f00:1]/", AddressClass.LOOPBACK),  # NAT64 of 127.0.0.1
    ("http://[64:ff9b::a9fe:a9fe]/", AddressClass.METADATA),  # NAT64 of 169.254.169.254
    ("http://[2002:7f00:1::]/", AddressClass.LOOPBACK),  # 6to4 of 127.0.0.1
    ("http://[::127.0.0.1]/", AddressClass.LOOPBACK),  # IPv4-compatible
    ("http://[2001:db8::1]/", AddressClass.RESERVED),
    ("http://2130706433/", AddressClass.LOOPBACK),  # decimal
    ("http://0x7f.1/", AddressClass.LOOPBACK),  # hex
    ("http://0x7f000001/", AddressClass.LOOPBACK),
    ("http://127.1/", AddressClass.LOOPBACK),
    ("http://0xa9fea9fe/", AddressClass.METADATA),  # hex 169.254.169.254
]


@pytest.mark.parametrize(("url", "cls"), REFUSED)
async def test_refused_without_allow_private(url: str, cls: AddressClass) -> None:
    with pytest.raises(WebhookUrlNotAllowed) as err:
        await check_webhook_url_async(url, allow_private=False)
    assert cls.value in err.value.reason
    with pytest.raises(WebhookUrlNotAllowed):
        check_webhook_url(url, allow_private=False)


ALWAYS = {
    AddressClass.LINK_LOCAL,
    AddressClass.MULTICAST,
    AddressClass.BROADCAST,
    AddressClass.UNSPECIFIED,
    AddressClass.METADATA,
}


@pytest.mark.parametrize(("url", "cls"), REFUSED)
async def test_allow_private_opens_only_private_classes(url: str, cls: AddressClass) -> None:
    if cls in ALWAYS:
        with pytest.raises(WebhookUrlNotAllowed):
            await check_webhook_url_async(url, allow_private=True)
        with pytest.raises(WebhookUrlNotAllowed):
            check_webhook_url(url, allow_private=True)
    else:
        await check_webhook_url_async(url, allow_private=True)
        check_webhook_url(url, allow_private=True)


async def test_octal_dotted_quads_are_refused_as_invalid() -> None:
    # httpx (the sender) refuses leading-zero dotted quads, which inet_aton reads as octal
    # (0177.0.0.1 = 127.0.0.1): refused whatever allow_private says.
    for url in ["http://0177.0.0.1/", "http://012.1.2.3/"]:
        for allow_private in (False, True):
            with pytest.raises(WebhookUrlNotAllowed, match="invalid"):
                await check_webhook_url_async(url, allow_private=allow_private)


async def test_localhost_names_are_loopback_without_dns() -> None:
    for url in ["http://localhost/", "http://LOCALHOST.:8080/", "http://api.localhost/"]:
        with pytest.raises(WebhookUrlNotAllowed, match="loopback"):
            await check_webhook_url_async(url, allow_private=False)
        with pytest.raises(WebhookUrlNotAllowed, match="loopback"):
            check_webhook_url(url, allow_private=False)
    # With allow_private, localhost resolves (through the system resolver) and is allowed.
    await check_webhook_url_async("http://localhost:9/", allow_private=True)


async def test_metadata_google_internal_is_refused_even_with_allow_private() -> None:
    # Off GCP the name does not resolve (refused: "does not resolve"); on GCP it resolves
    # to 169.254.169.254 (refused: metadata). Either way, never allowed.
    for allow_private in (False, True):
        with pytest.raises(WebhookUrlNotAllowed):
            await check_webhook_url_async(
                "http://metadata.google.internal/computeMetadata/v1/", allow_private=allow_private
            )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://127.0.0.1:6379/", "scheme"),
        ("example.com/hook", "scheme"),
        ("http:///path", "host"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://example.com\\@127.0.0.1/", "credentials"),
        ("http://example.com:0/", "port"),
        ("http://example.com:99999/", "port"),
        ("http://exa mple.com/", "whitespace"),
        ("http://example.com/\r\nX-Injected: 1", "whitespace"),
        ("http://example.com/" + "a" * 2100, "longer"),
    ],
)
def test_syntax_rules(url: str, reason: str) -> None:
    with pytest.raises(WebhookUrlNotAllowed, match=reason):
        parse_webhook_url(url)


def test_parse_gives_idna_host_and_default_ports() -> None:
    t = parse_webhook_url("https://Bücher.example/hook?x=1")
    assert (t.scheme, t.host, t.port) == ("https", "xn--bcher-kva.example", 443)
    assert parse_webhook_url("http://[2606:4700::1111]:8080/").host == "2606:4700::1111"
    assert parse_webhook_url("http://example.com/").port == 80


async def test_public_literals_are_allowed() -> None:
    for url in ["https://93.184.216.34/hook", "http://8.8.8.8:8080/", "https://[2606:4700::1111]/"]:
        await check_webhook_url_async(url, allow_private=False)
        check_webhook_url(url, allow_private=False)
    # NAT64 / mapped forms of a public address are public.
    assert classify_address(ipaddress.ip_address("64:ff9b::808:808")) is None
    assert classify_address(ipaddress.ip_address("::ffff:8.8.8.8")) is None


def test_literal_address_normalises_every_ipv4_spelling() -> None:
    loopback = ipaddress.IPv4Address("127.0.0.1")
    for host in ["2130706433", "0x7f.1", "0x7F000001", "0177.0.0.1", "127.1", "127.0.0.1"]:
        assert literal_address(host) == loopback, host
    assert literal_address("[::1]") == ipaddress.IPv6Address("::1")
    assert literal_address("cafe.example") is None
    assert literal_address("deadbeef") is None  # hex without 0x is a name, as for inet_aton
    assert literal_address("1.2.3.4.5") is None


def _stub(answers: Sequence[str]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return list(answers)

    return resolve


async def test_any_refused_answer_refuses_the_name() -> None:
    resolver = _stub(["93.184.216.34", "10.0.0.7"])
    with pytest.raises(WebhookUrlNotAllowed, match=r"hooks\.example\.com resolves to 10\.0\.0\.7"):
        await check_webhook_url_async(
            "https://hooks.example.com/x", allow_private=False, resolver=resolver
        )
    ok = await check_webhook_url_async(
        "https://hooks.example.com/x", allow_private=False, resolver=_stub(["93.184.216.34"])
    )
    assert ok == [ipaddress.ip_address("93.184.216.34")]


async def test_resolver_answers_are_judged_like_literals() -> None:
    cases = [
        (["::ffff:10.0.0.1"], False, "private"),
        (["fe80::1%eth0"], True, "link-local"),
        (["0.0.0.0"], True, "unspecified"),
        (["93.184.216.34", "::ffff:169.254.169.254"], True, "metadata"),
    ]
    for answers, allow_private, reason in cases:
        with pytest.raises(WebhookUrlNotAllowed, match=reason):
            await check_webhook_url_async(
                "http://x.example/", allow_private=allow_private, resolver=_stub(answers)
            )


async def test_names_that_do_not_resolve_are_refused() -> None:
    async def nx(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(WebhookUrlNotAllowed, match="does not resolve"):
        await check_webhook_url_async("https://nx.example/", allow_private=False, resolver=nx)
    with pytest.raises(WebhookUrlNotAllowed, match="does not resolve"):
        await check_webhook_url_async("https://x.example/", allow_private=False, resolver=_stub([]))
    with pytest.raises(WebhookUrlNotAllowed, match="does not resolve"):
        check_webhook_url("https://does-not-exist.invalid/", allow_private=False)
