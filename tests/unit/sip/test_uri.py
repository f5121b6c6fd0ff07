"""SIP URIs, name-addr and Via values (RFC 3261 §19.1, §20.10, §20.42, §25.1)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialflow.sip.errors import SipParseError
from dialflow.sip.uri import (
    AbsoluteUri,
    NameAddr,
    SipUri,
    Via,
    format_params,
    get_param,
    has_param,
    is_token,
    parse_name_addr,
    parse_params,
    parse_sip_uri,
    parse_uri,
    parse_via,
    split_quoted,
    without_param,
)

# -- SIP URIs


def test_uri_with_params_and_headers_rfc3261_example() -> None:
    # RFC 3261 §19.1.3's example, kept byte for byte (escapes are not decoded).
    text = "sip:alice@atlanta.com;maddr=239.255.255.1;ttl=15?subject=project%20x&priority=urgent"
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    assert uri.scheme == "sip"
    assert uri.user == "alice"
    assert uri.password is None
    assert uri.host == "atlanta.com"
    assert uri.port is None
    assert uri.params == {"maddr": "239.255.255.1", "ttl": "15"}
    assert uri.headers == {"subject": "project%20x", "priority": "urgent"}
    assert uri.param("MADDR") == "239.255.255.1"
    assert str(uri) == text


def test_sips_uri_with_password_port_and_transport() -> None:
    uri = parse_sip_uri("sips:alice:secretword@atlanta.com:5071;transport=TCP;lr")
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips",
        "alice",
        "secretword",
        "atlanta.com",
        5071,
    )
    assert uri.transport == "tcp"
    assert uri.params == {"transport": "TCP", "lr": None}
    assert uri.param("lr") == ""
    assert str(uri) == "sips:alice:secretword@atlanta.com:5071;transport=TCP;lr"


def test_default_ports_and_transports() -> None:
    assert parse_sip_uri("sip:a@b").effective_port == 5060
    assert parse_sip_uri("sips:a@b").effective_port == 5061
    assert parse_sip_uri("sip:a@b").transport == "udp"
    assert parse_sip_uri("sips:a@b").transport == "tls"


def test_scheme_is_case_insensitive_and_host_kept_as_written() -> None:
    uri = parse_sip_uri("SIP:Alice@Atlanta.COM")
    assert uri.scheme == "sip"
    assert uri.user == "Alice"
    assert uri.host == "Atlanta.COM"
    assert str(uri) == "sip:Alice@Atlanta.COM"


@pytest.mark.parametrize(
    ("text", "host", "port", "bare"),
    [
        ("sip:[::1]:5060", "[::1]", 5060, "::1"),
        ("sip:alice@[2001:db8::10]", "[2001:db8::10]", None, "2001:db8::10"),
        ("sip:bob@[::ffff:192.0.2.1]:5070;transport=tcp", "[::ffff:192.0.2.1]", 5070, None),
    ],
)
def test_ipv6_hosts(text: str, host: str, port: int | None, bare: str | None) -> None:
    uri = parse_sip_uri(text)
    assert uri.host == host
    assert uri.port == port
    if bare is not None:
        assert uri.host_no_brackets == bare
    assert str(uri) == text


def test_tel_uris_are_absolute_uris() -> None:
    uri = parse_uri("tel:+1-201-555-0123")
    assert isinstance(uri, AbsoluteUri)
    assert (uri.scheme, uri.rest, uri.user) == ("tel", "+1-201-555-0123", "+1-201-555-0123")
    local = parse_uri("tel:7042;phone-context=example.com")
    assert isinstance(local, AbsoluteUri)
    assert local.user == "7042"
    assert str(local) == "tel:7042;phone-context=example.com"
    with pytest.raises(SipParseError):
        parse_sip_uri("tel:+1-201-555-0123")


def test_other_schemes_kept_opaque() -> None:
    # RFC 4475 §3.3.2 / §3.3.3: unknown schemes parse; the UA answers 416 later.
    assert parse_uri("soap.beep://192.0.2.103:3002") == AbsoluteUri(
        "soap.beep", "//192.0.2.103:3002"
    )
    assert parse_uri("nobodyKnowsThisScheme:totallyopaquecontent").user is None
    assert isinstance(parse_uri("urn:service:sos"), AbsoluteUri)


def test_user_part_may_hold_question_mark_semicolon_and_colon_before_at() -> None:
    # Regression: "?" was split off as URI headers before "@" was looked for, so the
    # RFC 4475 §3.1.1.2 Request-URI failed with "bad URI header".
    uri = parse_sip_uri(
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,"
        "weird!*pas$wo~d_too.(doesn't-it)@example.com"
    )
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert uri.params == {}
    assert uri.headers == {}


def test_semicolon_in_user_part_is_not_a_parameter() -> None:
    # RFC 4475 §3.1.1.9.
    uri = parse_sip_uri("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u%40example.net"
    assert uri.host == "example.com"
    assert uri.params == {}


def test_escapes_are_kept_verbatim() -> None:
    # RFC 4475 §3.1.1.3 / §3.1.1.4: never decode %00 into a raw NUL.
    uri = parse_sip_uri("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
    assert uri.user == "cal%6Cer"
    assert uri.params == {"%6C%72": None, "n%61me": "v%61lue%25%34%31"}
    assert parse_sip_uri("sip:null-%00-null@example.com").user == "null-%00-null"
    assert str(parse_uri("sip:%00%00@host5.example.com")) == "sip:%00%00@host5.example.com"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip",
        "sip:",
        "sip:@example.com",
        "sip:user@",
        "sip:a b@example.com",
        "<sip:a@example.com>",
        'sip:"a"@example.com',
        "sip:a@example.com\x00",
        "sip:a@example.com?subject",
        "sip:a@example.com?",
        "sip:a@example.com;;lr",
        "sip:a@example.com:0",
        "sip:a@example.com:65536",
        "sip:a@example.com:50a",
        "sip:a@example.com:",
        "sip:a@[::1",
        "sip:a@[::1]x",
        "sip:a@exa$mple.com",
        "1sip:a@b",
    ],
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_uri(text)


def test_port_digits_must_be_ascii_and_short() -> None:
    # Regression: "²".isdigit() is true and int("5²") raised ValueError, not SipParseError;
    # 5000 digits hit int()'s digit limit (ValueError) as well.
    for port in ("5²", "٥٠٦٠", "1" * 5000):
        with pytest.raises(SipParseError):
            parse_uri(f"sip:a@example.com:{port}")


def test_with_params_returns_a_copy() -> None:
    uri = parse_sip_uri("sip:a@b;lr")
    other = uri.with_params(transport="tcp")
    assert str(other) == "sip:a@b;lr;transport=tcp"
    assert str(uri) == "sip:a@b;lr"


# -- name-addr


def test_quoted_display_name_with_escapes() -> None:
    # RFC 4475 §3.1.1.1 (wsinv) From: the quoted-pairs \\ and \" are unescaped.
    na = parse_name_addr('"J Rosenberg \\\\\\""       <sip:jdrosen@example.com> ; tag = 98asjd8')
    assert na.display_name == 'J Rosenberg \\"'
    assert na.uri == SipUri(host="example.com", user="jdrosen")
    assert na.tag == "98asjd8"


def test_token_display_name_with_and_without_space_before_bracket() -> None:
    assert parse_name_addr("Alice <sip:a@b>").display_name == "Alice"
    # RFC 4475 §3.1.1.6: no LWS between display name and "<" is accepted.
    na = parse_name_addr("caller<sip:caller@example.com>;tag=323")
    assert (na.display_name, na.tag) == ("caller", "323")
    multi = parse_name_addr("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>")
    assert multi.display_name == "token1~` token2'+_ token3*%!.-"


def test_unquoted_display_name_with_separators_is_refused() -> None:
    # RFC 4475 §3.1.2.15 (baddn).
    with pytest.raises(SipParseError):
        parse_name_addr("Bell, Alexander <sip:a.g.bell@example.com>;tag=43")
    with pytest.raises(SipParseError):
        parse_name_addr("Smith (work) <sip:a@b>")
    # ...but an unquoted UTF-8 name is tolerated.
    assert parse_name_addr("José Núñez <sip:a@b>").display_name == "José Núñez"


def test_name_addr_without_brackets_params_belong_to_the_header() -> None:
    # RFC 3261 §20.10.
    na = parse_name_addr("sip:watson@example.com;tag=DkfVgjkrtMwaerKKpe")
    assert na.uri == SipUri(host="example.com", user="watson")
    assert na.params == {"tag": "DkfVgjkrtMwaerKKpe"}
    assert na.display_name is None
    tel = parse_name_addr("tel:+15551234567;tag=1")
    assert tel.uri == AbsoluteUri("tel", "+15551234567")
    assert tel.tag == "1"
    cparam = parse_name_addr("sip:+19725552222@gw1.example.net;unknownparam")
    assert cparam.params == {"unknownparam": None}
    assert isinstance(cparam.uri, SipUri)
    assert cparam.uri.params == {}


def test_name_addr_with_brackets_params_belong_to_the_uri() -> None:
    na = parse_name_addr("<sip:+19725552222@gw1.example.net;unknownparam>;expires=60")
    assert isinstance(na.uri, SipUri)
    assert na.uri.params == {"unknownparam": None}
    assert na.params == {"expires": "60"}


def test_angle_bracket_inside_quoted_header_param() -> None:
    # Regression: the "<" of +sip.instance="<urn:…>" was taken for the URI's "<",
    # failing on a valid addr-spec Contact.
    na = parse_name_addr('sip:alice@192.0.2.4;+sip.instance="<urn:uuid:00000000-1>";reg-id=1')
    assert na.uri == SipUri(host="192.0.2.4", user="alice")
    assert na.params == {"+sip.instance": '"<urn:uuid:00000000-1>"', "reg-id": "1"}
    bracketed = parse_name_addr('<sip:alice@192.0.2.4>;+sip.instance="<urn:uuid:1>"')
    assert bracketed.params == {"+sip.instance": '"<urn:uuid:1>"'}


def test_uri_headers_need_brackets_in_name_addr() -> None:
    # RFC 4475 §3.1.2.13 (regbadct) and §3.3.14 (regescrt).
    with pytest.raises(SipParseError):
        parse_name_addr("sip:user@example.com?Route=%3Csip:sip.example.com%3E")
    na = parse_name_addr("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>")
    assert isinstance(na.uri, SipUri)
    assert na.uri.headers == {"Route": "%3Csip:sip.example.com%3E"}


def test_wildcard_contact() -> None:
    na = parse_name_addr(" * ")
    assert na.wildcard
    assert str(na) == "*"


@pytest.mark.parametrize(
    "text",
    [
        '"Mr. J. User <sip:j.user@example.com>',
        '"Alice" sip:a@b',
        "<sip:a@b",
        "<sip:a@b> junk",
        "Alice <sip:a@b>;;tag=1",
        "",
        "<>",
    ],
)
def test_bad_name_addrs(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_name_addr(text)


def test_spaces_inside_brackets_are_tolerated() -> None:
    # RFC 4475 §3.1.2.14 (badaspec) lets a liberal element ignore them.
    na = parse_name_addr('"Watson, Thomas" < sip:t.watson@example.org >')
    assert na.display_name == "Watson, Thomas"
    assert str(na.uri) == "sip:t.watson@example.org"


def test_with_tag_replaces_an_existing_tag() -> None:
    na = parse_name_addr("<sip:a@b>;TAG=1;x=y")
    assert str(na.with_tag("2")) == "<sip:a@b>;x=y;tag=2"
    assert na.tag == "1"


@pytest.mark.parametrize(
    ("display", "wire"),
    [
        ("Alice", "Alice <sip:a@b>"),
        ("Alice Smith", "Alice Smith <sip:a@b>"),
        ("Doe, John", '"Doe, John" <sip:a@b>'),
        ('say "hi"', '"say \\"hi\\"" <sip:a@b>'),
        ("back\\slash", '"back\\\\slash" <sip:a@b>'),
        (" padded", '" padded" <sip:a@b>'),
        ("José", '"José" <sip:a@b>'),
        ("bel\x07nul\x00", '"bel\\\x07nul\\\x00" <sip:a@b>'),
        # CR/LF cannot be escaped (quoted-pair excludes them): they become spaces.
        ("evil\r\nVia: x", '"evil  Via: x" <sip:a@b>'),
    ],
)
def test_display_name_serialization(display: str, wire: str) -> None:
    na = NameAddr(uri=SipUri(host="b", user="a"), display_name=display)
    assert str(na) == wire
    assert "\r" not in str(na) and "\n" not in str(na)
    if "\r" not in display:
        assert parse_name_addr(wire).display_name == display


_display_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    min_size=1,
    max_size=20,
)


@settings(max_examples=300, deadline=None)
@given(display=_display_text, tag=st.from_regex(r"[A-Za-z0-9.~-]{1,12}", fullmatch=True))
def test_name_addr_round_trip(display: str, tag: str) -> None:
    na = NameAddr(
        uri=SipUri(host="example.com", user="u"), display_name=display, params={"tag": tag}
    )
    back = parse_name_addr(str(na))
    # A display name of blanks only cannot be told from none (RFC 3261 §25.1 LWS).
    assert back.display_name == (display if display.strip(" \t") or '"' in str(na) else None)
    assert back.tag == tag
    assert back.uri == na.uri
    assert str(back) == str(na)


# -- Via


def test_via_parts_and_helpers() -> None:
    via = parse_via("SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bK776asdhds;rport;received=192.0.2.9")
    assert via.protocol == "SIP/2.0"
    assert via.transport == "UDP"
    assert (via.host, via.port) == ("192.0.2.4", 5062)
    assert via.branch == "z9hG4bK776asdhds"
    assert via.received == "192.0.2.9"
    assert via.wants_rport
    assert via.rport is None
    assert via.sent_by == ("192.0.2.4", 5062)
    assert str(via) == "SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bK776asdhds;rport;received=192.0.2.9"


def test_via_with_blanks_around_slashes_and_params() -> None:
    # RFC 4475 §3.1.1.1: SLASH = SWS "/" SWS; SEMI and EQUAL allow blanks too.
    via = parse_via("SIP  /   2.0 /UDP 192.0.2.2;rport;branch=390skdjuw")
    assert (via.protocol, via.transport, via.host, via.branch) == (
        "SIP/2.0",
        "UDP",
        "192.0.2.2",
        "390skdjuw",
    )
    spaced = parse_via("SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8")
    assert (spaced.transport, spaced.host, spaced.branch) == (
        "TCP",
        "spindle.example.com",
        "z9hG4bK9ikj8",
    )


def test_via_ipv6_and_default_ports() -> None:
    via = parse_via("SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bKx")
    assert (via.host, via.port, via.sent_by) == ("[2001:db8::1]", 5070, ("2001:db8::1", 5070))
    assert parse_via("SIP/2.0/tls example.com").sent_by == ("example.com", 5061)
    assert parse_via("SIP/2.0/UDP example.com").transport == "UDP"
    assert parse_via("SIP/2.0/udp example.com").transport == "UDP"


def test_via_rport_value() -> None:
    assert parse_via("SIP/2.0/UDP h;rport=5070").rport == 5070
    # Regression: "²".isdigit() is true, and int() then raised ValueError.
    assert parse_via("SIP/2.0/UDP h;rport=5²").rport is None
    assert parse_via("SIP/2.0/UDP h;rport=" + "1" * 5000).rport is None


@pytest.mark.parametrize(
    "text",
    ["", "SIP/2.0/UDP", "SIP/2.0 host", "SIP/2.0/UDP host;;", ";", "SIP/2.0/UDP ::1", "garbage"],
)
def test_bad_vias(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_via(text)


def test_via_parsing_is_linear_on_slash_floods() -> None:
    # Regression: the liberal protocol regex used three greedy \S+ groups and
    # backtracked cubically; a 12 KB Via line hung the parser (a remote DoS).
    for text in ("a" + "/a" * 20000, "/" * 60000, "a/" * 20000 + " x", "a" + " /a" * 20000):
        started = time.perf_counter()
        with pytest.raises(SipParseError):
            parse_via(text)
        assert time.perf_counter() - started < 0.5


def test_via_dataclass_str() -> None:
    via = Via(transport="TCP", host="[::1]", port=5060, params={"branch": "z9hG4bK1"})
    assert str(via) == "SIP/2.0/TCP [::1]:5060;branch=z9hG4bK1"
    assert parse_via(str(via)) == via


# -- parameters and splitting


def test_param_helpers() -> None:
    params = parse_params(" lr ; Transport = TCP;maddr=239.255.255.1")
    assert params == {"lr": None, "Transport": "TCP", "maddr": "239.255.255.1"}
    assert get_param(params, "transport") == "TCP"
    assert get_param(params, "LR") == ""
    assert get_param(params, "ttl") is None
    assert has_param(params, "MADDR")
    assert without_param(params, "transport") == {"lr": None, "maddr": "239.255.255.1"}
    assert format_params(params) == ";lr;Transport=TCP;maddr=239.255.255.1"
    assert parse_params("") == {}
    with pytest.raises(SipParseError):
        parse_params("a;;b")
    with pytest.raises(SipParseError):
        parse_params("a b=c")


def test_is_token() -> None:
    assert is_token("!interesting-Method0123456789_*+`.%indeed'~")
    assert not is_token("")
    assert not is_token("a b")
    assert not is_token("a,b")


def test_split_quoted_cases() -> None:
    assert split_quoted('"Doe, John" <sip:a@b>, <sip:c@d;x=1,2>', ",") == [
        '"Doe, John" <sip:a@b>',
        " <sip:c@d;x=1,2>",
    ]
    assert split_quoted('"a \\" , b", c', ",") == ['"a \\" , b"', " c"]
    assert split_quoted("a>,b", ",") == ["a>", "b"]
    assert split_quoted("", ",") == [""]
    with pytest.raises(SipParseError):
        split_quoted('"unterminated, x', ",")
    with pytest.raises(SipParseError):
        split_quoted('"ends with backslash\\', ",")


def _reference_split(text: str, sep: str) -> list[str]:
    """The original character-by-character implementation, kept as an oracle."""
    parts: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    start = 0
    for i, ch in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            continue
        if ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if quoted:
        raise SipParseError("unterminated quoted string")
    parts.append(text[start:])
    return parts


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet='ab ,;"<>\\', max_size=30), sep=st.sampled_from([",", ";"]))
def test_split_quoted_matches_reference(text: str, sep: str) -> None:
    try:
        expected: list[str] | None = _reference_split(text, sep)
    except SipParseError:
        expected = None
    if expected is None:
        with pytest.raises(SipParseError):
            split_quoted(text, sep)
    else:
        assert split_quoted(text, sep) == expected


def test_repeated_parses_are_equal_and_independent() -> None:
    # Results are remembered by text; each caller must still own what it got.
    text = '"Bob" <sip:bob@example.com:5070;transport=udp?subject=x>;tag=abc'
    first = parse_name_addr(text)
    first.params["tag"] = "changed"
    assert isinstance(first.uri, SipUri)
    first.uri.params["transport"] = "tcp"
    first.uri.headers.clear()
    second = parse_name_addr(text)
    assert second.tag == "abc"
    assert second == NameAddr(
        uri=SipUri(
            host="example.com",
            user="bob",
            port=5070,
            params={"transport": "udp"},
            headers={"subject": "x"},
        ),
        display_name="Bob",
        params={"tag": "abc"},
    )
    tel = parse_name_addr("<tel:+15550001111>")
    assert tel == parse_name_addr("<tel:+15550001111>") and tel is not parse_name_addr(
        "<tel:+15550001111>"
    )

    via_text = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport"
    via = parse_via(via_text)
    via.params["received"] = "198.51.100.1"
    again = parse_via(via_text)
    assert again == Via("UDP", "192.0.2.1", 5060, {"branch": "z9hG4bK1", "rport": None})
