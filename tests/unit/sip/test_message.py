"""The message model: headers, requests, responses, make_response (RFC 3261 §7, §8.2.6, §20)."""

from __future__ import annotations

import pytest

from dialflow.sip.errors import SipParseError
from dialflow.sip.message import (
    COMPACT_FORMS,
    CSeq,
    Headers,
    SipRequest,
    SipResponse,
    canonical_name,
    make_response,
    parse_cseq,
)
from dialflow.sip.parser import parse_message
from dialflow.sip.uri import SipUri, Via, parse_uri

# -- header names

# RFC 3261 §7.3.3 and the IANA "Header Fields" registry's compact forms.
ALL_COMPACT_FORMS = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}


@pytest.mark.parametrize(("short", "full"), sorted(ALL_COMPACT_FORMS.items()))
def test_every_compact_form_expands(short: str, full: str) -> None:
    assert canonical_name(short) == full
    assert canonical_name(short.upper()) == full
    assert COMPACT_FORMS[short] == full


def test_single_letters_that_are_not_compact_forms_stay() -> None:
    assert canonical_name("q") == "q"
    assert canonical_name("Z") == "Z"


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("call-id", "Call-ID"),
        ("CALL-ID", "Call-ID"),
        ("cseq", "CSeq"),
        ("www-authenticate", "WWW-Authenticate"),
        ("MaX-fOrWaRdS", "Max-Forwards"),
        ("X-Custom-Thing", "X-Custom-Thing"),
        ("x-custom-thing", "x-custom-thing"),
    ],
)
def test_known_names_are_spelled_as_the_rfc(name: str, canonical: str) -> None:
    assert canonical_name(name) == canonical


# -- Headers


def test_headers_lookup_is_case_insensitive_and_compact_aware() -> None:
    headers = Headers([("v", "SIP/2.0/UDP a"), ("CALL-ID", "x@y"), ("X-Foo", "1")])
    assert list(headers) == [("Via", "SIP/2.0/UDP a"), ("Call-ID", "x@y"), ("X-Foo", "1")]
    assert headers.get("via") == "SIP/2.0/UDP a"
    assert headers.get("V") == "SIP/2.0/UDP a"
    assert headers.get("i") == "x@y"
    assert headers.get("x-foo") == "1"
    assert headers.get("X-Bar") is None
    assert "call-id" in headers
    assert "To" not in headers
    assert 42 not in headers
    assert headers.names() == {"via", "call-id", "x-foo"}
    assert len(headers) == 3


def test_headers_get_returns_first_field_unsplit() -> None:
    headers = Headers([("Via", "SIP/2.0/UDP a, SIP/2.0/UDP b"), ("Via", "SIP/2.0/UDP c")])
    assert headers.get("Via") == "SIP/2.0/UDP a, SIP/2.0/UDP b"


def test_get_all_splits_list_headers_and_keeps_order() -> None:
    headers = Headers(
        [
            ("Via", "SIP/2.0/UDP a;branch=1 , SIP/2.0/UDP b;branch=2"),
            ("X-Other", "between"),
            ("v", "SIP/2.0/UDP c;branch=3"),
        ]
    )
    assert headers.get_all("Via") == [
        "SIP/2.0/UDP a;branch=1",
        "SIP/2.0/UDP b;branch=2",
        "SIP/2.0/UDP c;branch=3",
    ]


def test_get_all_does_not_split_on_quoted_or_bracketed_commas() -> None:
    headers = Headers([("Contact", '"Doe, John" <sip:j@a;x=1,2>, <sip:k@b>;q=0.5')])
    assert headers.get_all("m") == ['"Doe, John" <sip:j@a;x=1,2>', "<sip:k@b>;q=0.5"]


def test_get_all_leaves_non_list_headers_whole() -> None:
    challenge = 'Digest realm="a, b", nonce="x", qop="auth,auth-int"'
    headers = Headers(
        [
            ("WWW-Authenticate", challenge),
            ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
            ("Subject", "a, b"),
        ]
    )
    assert headers.get_all("www-authenticate") == [challenge]
    assert headers.get_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert headers.get_all("s") == ["a, b"]
    assert headers.get_all("Missing") == []


def test_headers_add_first_and_set_and_remove() -> None:
    headers = Headers([("Route", "<sip:a>"), ("X-A", "1"), ("route", "<sip:b>"), ("X-B", "2")])
    headers.add("Via", "SIP/2.0/UDP top", first=True)
    assert list(headers)[0] == ("Via", "SIP/2.0/UDP top")

    # set: one field, in the place of the first, spelled canonically; others removed.
    headers.set("ROUTE", "<sip:c>")
    assert list(headers) == [
        ("Via", "SIP/2.0/UDP top"),
        ("Route", "<sip:c>"),
        ("X-A", "1"),
        ("X-B", "2"),
    ]
    headers.set("Max-Forwards", "70")  # absent: appended
    assert list(headers)[-1] == ("Max-Forwards", "70")

    headers.remove("x-a")
    headers.remove("Not-There")
    assert [n for n, _ in headers] == ["Via", "Route", "X-B", "Max-Forwards"]
    headers.remove("v")
    assert headers.get("Via") is None


def test_single_letter_names_are_compact_forms() -> None:
    # "X" and "Y" are Session-Expires and Identity, not extension headers.
    headers = Headers([("X", "1800"), ("y", "sig")])
    assert list(headers) == [("Session-Expires", "1800"), ("Identity", "sig")]


def test_headers_copy_is_independent_and_equality_is_ordered() -> None:
    headers = Headers([("To", "<sip:a@b>"), ("From", "<sip:c@d>")])
    copy = headers.copy()
    copy.add("X", "1")
    assert len(headers) == 2
    assert headers == Headers([("t", "<sip:a@b>"), ("f", "<sip:c@d>")])
    assert headers != Headers([("From", "<sip:c@d>"), ("To", "<sip:a@b>")])
    assert headers != [("To", "<sip:a@b>")]


# -- CSeq


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 INVITE", CSeq(1, "INVITE")),
        ("0009   INVITE", CSeq(9, "INVITE")),
        ("2147483647 BYE", CSeq(2**31 - 1, "BYE")),
        ("0 RE%47IST%45R", CSeq(0, "RE%47IST%45R")),
    ],
)
def test_parse_cseq(text: str, expected: CSeq) -> None:
    assert parse_cseq(text) == expected
    assert str(expected) == f"{expected.seq} {expected.method}"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "INVITE",
        "1",
        "1 INVITE extra",
        "-1 INVITE",
        "2147483648 INVITE",  # RFC 3261 §8.1.1.5: below 2**31
        "36893488147419103232 REGISTER",  # RFC 4475 §3.1.2.4
        "²1 INVITE",  # regression: "²".isdigit() is true, int() raised ValueError
        "١٢ INVITE",  # regression: Arabic-Indic digits were accepted as 12
        "9" * 5000 + " INVITE",  # regression: int() digit limit raised ValueError
    ],
)
def test_parse_cseq_rejects(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_cseq(text)


# -- requests and responses

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"Via: SIP/2.0/UDP bigbox3.site3.atlanta.example.com;branch=z9hG4bK77ef4c2312983.1;"
    b"received=192.0.2.2\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def test_typed_accessors() -> None:
    request = parse_message(INVITE)
    assert isinstance(request, SipRequest)
    assert request.method == "INVITE"
    assert request.uri == parse_uri("sip:bob@biloxi.example.com")
    assert request.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert request.cseq == CSeq(314159, "INVITE")
    assert [v.host for v in request.vias] == [
        "pc33.atlanta.example.com",
        "bigbox3.site3.atlanta.example.com",
    ]
    assert request.top_via.branch == "z9hG4bK776asdhds"
    assert request.from_.display_name == "Alice"
    assert request.from_.tag == "1928301774"
    assert request.to.tag is None
    assert [str(c.uri) for c in request.contacts] == ["sip:alice@pc33.atlanta.example.com"]
    assert [str(r.uri) for r in request.record_route] == [
        "sip:p2.example.com;lr",
        "sip:p1.example.com;lr",
    ]
    assert request.content_type == "application/sdp"
    assert request.body == b"v=0\n"


def test_missing_header_accessors_raise_parse_errors() -> None:
    request = SipRequest(method="OPTIONS", uri=parse_uri("sip:a@b"))
    for accessor in ("call_id", "cseq", "top_via", "from_", "to"):
        with pytest.raises(SipParseError):
            getattr(request, accessor)
    assert request.vias == []
    assert request.contacts == []
    assert request.content_type is None


def test_request_serialization_is_exact() -> None:
    request = SipRequest(
        method="OPTIONS",
        uri=SipUri(host="example.com", user="bob"),
        headers=Headers(
            [
                ("v", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"),
                ("f", "<sip:a@example.com>;tag=1"),
                ("t", "<sip:bob@example.com>"),
                ("i", "abc"),
                ("CSeq", "1 OPTIONS"),
                ("Content-Length", "999"),  # stale: never written
            ]
        ),
        body=b"hello",
    )
    assert request.serialize() == (
        b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        b"From: <sip:a@example.com>;tag=1\r\n"
        b"To: <sip:bob@example.com>\r\n"
        b"Call-ID: abc\r\n"
        b"CSeq: 1 OPTIONS\r\n"
        b"Content-Length: 5\r\n"
        b"\r\n"
        b"hello"
    )


def test_response_serialization_and_properties() -> None:
    response = SipResponse(status=180, reason="Ringing", headers=Headers([("CSeq", "1 INVITE")]))
    assert response.serialize() == (
        b"SIP/2.0 180 Ringing\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    assert response.is_provisional and not response.is_success
    assert SipResponse(status=200).is_success
    assert not SipResponse(status=404).is_success
    assert repr(response) == "<SipResponse 180 Ringing>"


def test_message_equality() -> None:
    a = parse_message(INVITE)
    b = parse_message(INVITE)
    assert a == b
    b.headers.add("X", "1")
    assert a != b
    assert a != SipResponse()
    assert SipResponse(status=200) == SipResponse(status=200)


# -- make_response (RFC 3261 §8.2.6.2)


def _request(extra: bytes = b"", method: bytes = b"INVITE") -> SipRequest:
    raw = INVITE.replace(b"INVITE", method)
    if extra:
        raw = raw.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\n" + extra)
    request = parse_message(raw)
    assert isinstance(request, SipRequest)
    return request


def test_make_response_copies_vias_in_order_and_core_headers() -> None:
    request = _request()
    response = make_response(request, 486, to_tag="as9f")
    assert (response.status, response.reason) == (486, "Busy Here")
    assert response.headers.get_all("Via") == request.headers.get_all("Via")
    assert response.headers.get("From") == request.headers.get("From")
    assert response.headers.get("Call-ID") == request.headers.get("Call-ID")
    assert response.headers.get("CSeq") == "314159 INVITE"
    assert response.to.tag == "as9f"
    assert response.to.display_name == "Bob"
    assert response.headers.get("Contact") is None
    assert response.headers.get("Max-Forwards") is None
    # Combined Via values come out as one field per value, same order.
    combined = _request(b"")
    combined.headers.remove("Via")
    combined.headers.add("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2")
    assert [v.host for v in make_response(combined, 200).vias] == ["a", "b"]


def test_make_response_adds_the_to_tag_only_once() -> None:
    request = _request()
    request.headers.set("To", '"Bob" <sip:bob@biloxi.example.com>;tag=existing')
    response = make_response(request, 200, to_tag="new")
    assert response.headers.get("To") == '"Bob" <sip:bob@biloxi.example.com>;tag=existing'
    again = make_response(make_response_request(response), 200, to_tag="other")
    assert again.to.tag == "existing"


def make_response_request(response: SipResponse) -> SipRequest:
    """A request carrying a response's headers (as a retransmission would)."""
    return SipRequest(method="INVITE", uri=parse_uri("sip:a@b"), headers=response.headers.copy())


def test_100_trying_gets_no_to_tag() -> None:
    request = _request()
    trying = make_response(request, 100, to_tag="abc")
    assert trying.headers.get("To") == '"Bob" <sip:bob@biloxi.example.com>'
    assert trying.reason == "Trying"
    assert make_response(request, 180, to_tag="abc").to.tag == "abc"


def test_record_route_copied_on_dialog_forming_responses_only() -> None:
    request = _request()
    rr = ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    assert make_response(request, 200, to_tag="x").headers.get_all("Record-Route") == rr
    assert make_response(request, 183, to_tag="x").headers.get_all("Record-Route") == rr
    assert make_response(request, 100).headers.get_all("Record-Route") == []
    assert make_response(request, 486, to_tag="x").headers.get_all("Record-Route") == []
    options = _request(method=b"OPTIONS")
    assert make_response(options, 200, to_tag="x").headers.get_all("Record-Route") == []


def test_make_response_reason_extra_headers_and_body() -> None:
    request = _request()
    response = make_response(
        request,
        200,
        "Fine",
        to_tag="t",
        headers=[("Contact", "<sip:bob@192.0.2.4>"), ("c", "application/sdp")],
        body=b"v=0\r\n",
    )
    assert response.reason == "Fine"
    assert response.headers.get("Content-Type") == "application/sdp"
    assert response.contacts[0].uri == SipUri(host="192.0.2.4", user="bob")
    wire = response.serialize()
    assert wire.startswith(b"SIP/2.0 200 Fine\r\nVia: ")
    assert wire.endswith(b"Content-Length: 5\r\n\r\nv=0\r\n")
    assert make_response(request, 299).reason == "Unknown"
    assert parse_message(wire) == response


def test_make_response_without_optional_headers() -> None:
    bare = SipRequest(
        method="OPTIONS",
        uri=parse_uri("sip:a@b"),
        headers=Headers([("Via", str(Via(transport="UDP", host="h", params={"branch": "z9"})))]),
    )
    response = make_response(bare, 400, to_tag="x")
    assert list(response.headers) == [("Via", "SIP/2.0/UDP h;branch=z9")]
