"""Tests for dialflow.sip.auth: RFC vectors, round trips, parser torture, UAC session logic."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialflow.sip.auth import (
    AuthError,
    ChallengeOutcome,
    DigestAlgorithm,
    DigestChallenge,
    DigestCredentials,
    DigestSession,
    UnsupportedChallenge,
    build_authorization,
    make_challenge,
    parse_challenge,
    parse_challenges,
    select_challenge,
    verify_authorization,
)

# RFC 7616 §3.9.1 (the challenge is written exactly as in the RFC, folded over lines).
RFC7616_CHALLENGE = """Digest
       realm="http-auth@example.org",
       qop="auth, auth-int",
       algorithm=SHA-256,
       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""""
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
MUFASA = DigestCredentials("Mufasa", "Circle of Life")


def _params(header: str) -> dict[str, str]:
    """Tiny independent reader for our own output (no commas inside our test values)."""
    scheme, _, rest = header.partition(" ")
    assert scheme == "Digest"
    out = {}
    for item in rest.split(", "):
        k, _, v = item.partition("=")
        out[k] = v.strip('"')
    return out


# --------------------------------------------------------------------------- RFC vectors


def test_rfc7616_sha256_vector() -> None:
    ch = parse_challenge(RFC7616_CHALLENGE)
    assert ch.algorithm is DigestAlgorithm.SHA256
    assert ch.qop == ("auth", "auth-int")
    value = build_authorization(ch, MUFASA, "GET", "/dir/index.html", cnonce=RFC7616_CNONCE)
    assert value == (
        'Digest username="Mufasa", realm="http-auth@example.org", '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", uri="/dir/index.html", '
        'response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", '
        f'algorithm=SHA-256, cnonce="{RFC7616_CNONCE}", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS", qop=auth, nc=00000001'
    )


def test_rfc7616_md5_vector() -> None:
    ch = parse_challenge(RFC7616_CHALLENGE.replace("SHA-256", "MD5"))
    value = build_authorization(ch, MUFASA, "GET", "/dir/index.html", cnonce=RFC7616_CNONCE)
    assert _params(value)["response"] == "8ca523f5e9506fed4657c9700eebdbec"
    assert _params(value)["algorithm"] == "MD5"


def test_rfc2617_vector() -> None:
    # RFC 2617 §3.5; note the capital O in the password there.
    ch = parse_challenge(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert ch.algorithm is DigestAlgorithm.MD5  # default when absent
    creds = DigestCredentials("Mufasa", "Circle Of Life")
    value = build_authorization(ch, creds, "GET", "/dir/index.html", cnonce="0a4f113b")
    p = _params(value)
    assert p["response"] == "6629fae49393a05397450978507c4ef1"
    assert (p["nc"], p["qop"], p["cnonce"]) == ("00000001", "auth", "0a4f113b")
    assert p["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"


def test_sha512_256_is_the_fips_function_not_truncated_sha512() -> None:
    # FIPS 180-4 example: SHA-512/256("abc").
    assert DigestAlgorithm.SHA512_256.hexdigest("abc") == (
        "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"
    )


def test_rfc2069_form_without_qop() -> None:
    ch = parse_challenge(
        'Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"'
    )
    value = build_authorization(
        ch, DigestCredentials("Mufasa", "CircleOfLife"), "GET", "/dir/index.html"
    )
    p = _params(value)
    # H(H(A1):nonce:H(A2)) with MD5, computed independently with hashlib.
    assert p["response"] == "1949323746fe6a43ef61f9606e7febea"
    assert "qop" not in p and "nc" not in p and "cnonce" not in p


def test_auth_int_covers_the_body() -> None:
    ch = DigestChallenge(realm="r", nonce="n", qop=("auth-int",))
    a = build_authorization(ch, MUFASA, "INVITE", "sip:bob@b", body=b"v=0\r\n", cnonce="c")
    b = build_authorization(ch, MUFASA, "INVITE", "sip:bob@b", body=b"v=1\r\n", cnonce="c")
    assert _params(a)["qop"] == "auth-int"
    assert _params(a)["response"] != _params(b)["response"]


def test_qop_auth_preferred_and_forcible() -> None:
    ch = DigestChallenge(realm="r", nonce="n", qop=("auth-int", "auth"))
    assert _params(build_authorization(ch, MUFASA, "GET", "/"))["qop"] == "auth"
    forced = build_authorization(ch, MUFASA, "GET", "/", qop="auth-int")
    assert _params(forced)["qop"] == "auth-int"
    with pytest.raises(AuthError):
        build_authorization(
            DigestChallenge("r", "n", qop=("auth",)), MUFASA, "GET", "/", qop="auth-int"
        )


def test_nc_is_eight_hex_digits_and_cnonce_random() -> None:
    ch = DigestChallenge(realm="r", nonce="n", qop=("auth",))
    p1 = _params(build_authorization(ch, MUFASA, "GET", "/", nc=255))
    p2 = _params(build_authorization(ch, MUFASA, "GET", "/", nc=255))
    assert p1["nc"] == "000000ff"
    assert p1["cnonce"] != p2["cnonce"] and len(p1["cnonce"]) >= 16
    with pytest.raises(AuthError):
        build_authorization(ch, MUFASA, "GET", "/", nc=0)


def test_userhash() -> None:
    ch = DigestChallenge(
        realm="api@example.org",
        nonce="n",
        algorithm=DigestAlgorithm.SHA256,
        qop=("auth",),
        userhash=True,
    )
    p = _params(build_authorization(ch, DigestCredentials("Jason", "pw"), "GET", "/", cnonce="c"))
    assert p["userhash"] == "true"
    assert p["username"] == DigestAlgorithm.SHA256.hexdigest("Jason:api@example.org")


def test_non_ascii_username_uses_username_star() -> None:
    ch = DigestChallenge(realm="r", nonce="n", qop=("auth",))
    value = build_authorization(ch, DigestCredentials("Jäsøn Doe", "pw"), "GET", "/")
    assert "username*=UTF-8''J%C3%A4s%C3%B8n%20Doe" in value
    assert verify_authorization(value, lambda u, r: "pw" if u == "Jäsøn Doe" else None, "GET")


def test_header_injection_is_impossible() -> None:
    ch = DigestChallenge(realm="r", nonce="n")
    # A control character in the name is percent-encoded in username* (RFC 7616 §3.4.4)...
    value = build_authorization(ch, DigestCredentials("a\r\nVia: x", "pw"), "GET", "/")
    assert "\r" not in value and "\n" not in value
    # ...and anywhere else it is refused.
    with pytest.raises(AuthError):
        build_authorization(ch, MUFASA, "GET", "sip:a\r\nVia: x")


def test_credentials_realm_must_match() -> None:
    ch = DigestChallenge(realm="other", nonce="n")
    with pytest.raises(AuthError):
        build_authorization(ch, DigestCredentials("u", "p", realm="mine"), "GET", "/")


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("algorithm", list(DigestAlgorithm))
@pytest.mark.parametrize("qop", ["auth", "auth-int", None])
def test_round_trip_every_algorithm(algorithm: DigestAlgorithm, qop: str | None) -> None:
    if qop is None and algorithm.is_session:
        with pytest.raises(UnsupportedChallenge):
            parse_challenge(make_challenge("sip.example.com", algorithm=algorithm, qop=None))
        return
    header = make_challenge("sip.example.com", algorithm=algorithm, qop=qop, opaque='op"q')
    ch = parse_challenge(header)
    assert (ch.algorithm, ch.opaque, ch.realm) == (algorithm, 'op"q', "sip.example.com")
    body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    creds = DigestCredentials("alice", 's3cr"et')
    value = build_authorization(ch, creds, "INVITE", "sip:bob@example.com", body=body)

    def lookup(user: str, realm: str) -> str | None:
        return 's3cr"et' if (user, realm) == ("alice", "sip.example.com") else None

    assert verify_authorization(value, lookup, "INVITE", body)
    assert verify_authorization(
        value,
        lookup,
        "INVITE",
        body,
        realm="sip.example.com",
        uri="sip:bob@example.com",
        nonce_ok=lambda n: n == ch.nonce,
    )
    assert not verify_authorization(value, lookup, "BYE", body)
    assert not verify_authorization(value, lambda u, r: "wrong", "INVITE", body)
    assert not verify_authorization(value, lookup, "INVITE", body, uri="sip:carol@example.com")
    assert not verify_authorization(value, lookup, "INVITE", body, nonce_ok=lambda n: False)
    if qop == "auth-int":
        assert not verify_authorization(value, lookup, "INVITE", body + b"x")


def test_round_trip_userhash() -> None:
    ch = parse_challenge(make_challenge("r", algorithm="SHA-256", userhash=True))
    assert ch.userhash
    value = build_authorization(ch, DigestCredentials("bob", "pw"), "REGISTER", "sip:r")
    assert "bob" not in value
    assert verify_authorization(value, lambda u, r: "pw", "REGISTER", usernames=["al", "bob"])
    assert not verify_authorization(value, lambda u, r: "pw", "REGISTER", usernames=["al"])


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "Basic dXNlcjpwYXNz",
        "Digest",
        'Digest username="a", realm="r"',  # no nonce/uri/response
        'Digest username="a", realm="r", nonce="n", uri="/", response="x", algorithm=MD7',
        'Digest username="a", realm="r", nonce="n", uri="/", response="x", qop=auth',  # no nc
        'Digest username="a", realm="r", nonce="n", uri="/", response="x", qop=auth, nc=1, '
        "cnonce=c",
        'Digest username="a, realm="r"',
    ],
)
def test_verify_rejects_garbage(garbage: str) -> None:
    assert verify_authorization(garbage, lambda u, r: "pw", "GET") is False


# --------------------------------------------------------------------------- parser torture


def test_odd_spacing_and_case() -> None:
    ch = parse_challenge(
        '  dIgEsT\tREALM = "a b" ,NONCE="x,y"  ,, Algorithm = sha-256-SESS ,QoP="AUTH-INT , auth"'
        ',stale=TRUE,opaque=""'
    )
    assert ch == DigestChallenge(
        realm="a b",
        nonce="x,y",
        algorithm=DigestAlgorithm.SHA256_SESS,
        qop=("auth-int", "auth"),
        opaque="",
        stale=True,
    )


def test_escapes_inside_quotes() -> None:
    ch = parse_challenge(r'Digest realm="a\"b\\c\d", nonce="n"')
    assert ch.realm == 'a"b\\cd'


def test_unquoted_values_seen_in_the_wild() -> None:
    ch = parse_challenge("Digest realm=asterisk, nonce=1a2b/3c==, qop=auth, algorithm=MD5")
    assert (ch.realm, ch.nonce, ch.qop) == ("asterisk", "1a2b/3c==", ("auth",))


def test_stale_and_domain() -> None:
    ch = parse_challenge('Digest realm="r", nonce="n", stale=false, domain="sip:a sip:b"')
    assert not ch.stale and ch.domain == "sip:a sip:b"


def test_several_challenges_in_one_value() -> None:
    value = (
        'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple", '
        "Negotiate a87421000492aa874209af8bc028==, "
        'Digest realm="x", nonce="1", algorithm=MD5, '
        'Digest realm="x", nonce="2", algorithm=SHA-256'
    )
    found = parse_challenges(value)
    assert [c.nonce for c in found] == ["1", "2"]
    assert parse_challenge(value).nonce == "1"


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("", AuthError),
        ('Basic realm="x"', UnsupportedChallenge),
        ('Digest realm="x"', AuthError),  # no nonce
        ('Digest nonce="x"', AuthError),  # no realm
        ('Digest realm="x", nonce="n", algorithm=SHA-1', UnsupportedChallenge),
        ('Digest realm="x", nonce="n", qop="auth-conf"', UnsupportedChallenge),
        ('Digest realm="x", nonce="n", algorithm=MD5-sess', UnsupportedChallenge),  # no qop
        ('Digest realm="x, nonce="n"', AuthError),  # unterminated quote
        ('Digest realm="x", realm="y", nonce="n"', AuthError),  # duplicate
        ('realm="x", Digest nonce="n"', AuthError),  # param before scheme
        ("Digest realm=", AuthError),
        ("Digest abc==", AuthError),  # token68 is not Digest syntax
        ('Digest realm="x", nonce=', AuthError),
        ("Digest @", AuthError),
    ],
)
def test_parse_errors(value: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_challenge(value)


@given(st.text(max_size=200))
def test_parse_challenge_raises_only_auth_error(text: str) -> None:
    try:
        parse_challenge(text)
    except AuthError:
        pass


@given(st.text(max_size=200))
def test_verify_authorization_never_raises(text: str) -> None:
    assert verify_authorization(text, lambda u, r: "pw", "GET", usernames=["a"]) in (True, False)


def test_verify_bad_username_star_encoding() -> None:
    value = "Digest username*=UTF-8''%ff, realm=r, nonce=n, uri=/, response=x"
    assert verify_authorization(value, lambda u, r: "pw", "GET") is False


_piece = st.sampled_from(
    [
        "Digest",
        " ",
        ",",
        "=",
        '"',
        "\\",
        "realm",
        "nonce",
        "qop",
        "algorithm",
        "MD5",
        "SHA-256",
        "auth",
        "x",
        "\t",
        "Basic",
        "abc==",
        "stale",
        "true",
        "\r\n",
    ]
)


@given(st.lists(_piece, max_size=30).map("".join))
def test_parse_challenge_structured_fuzz(text: str) -> None:
    try:
        ch = parse_challenge(text)
    except AuthError:
        return
    assert isinstance(ch.realm, str) and isinstance(ch.nonce, str)


@given(
    realm=st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=20),
    nonce=st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=20),
    opaque=st.none() | st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=20),
    algorithm=st.sampled_from(list(DigestAlgorithm)),
)
def test_make_challenge_parse_round_trip(
    realm: str, nonce: str, opaque: str | None, algorithm: DigestAlgorithm
) -> None:
    ch = parse_challenge(make_challenge(realm, algorithm=algorithm, nonce=nonce, opaque=opaque))
    assert (ch.realm, ch.nonce, ch.opaque, ch.algorithm) == (realm, nonce, opaque, algorithm)


# --------------------------------------------------------------------------- selection


def test_select_prefers_stronger_algorithm_then_topmost() -> None:
    values = [
        'Digest realm="a", nonce="md5", algorithm=MD5, qop="auth"',
        'Basic realm="a"',
        'Digest realm="a", nonce="sha1", algorithm=SHA-256, qop="auth"',
        'Digest realm="a", nonce="unsupported", algorithm=SHA-1, qop="auth"',
        'Digest realm="a", nonce="sha2", algorithm=SHA-256, qop="auth"',
        'this is not a challenge "',
    ]
    best = select_challenge(values)
    assert best is not None and best.nonce == "sha1"
    assert select_challenge(values[:2]) == parse_challenge(values[0])
    assert select_challenge(['Basic realm="a"']) is None
    assert select_challenge(values, realm="b") is None


def test_select_challenge_sha512_256_beats_sha256() -> None:
    values = [
        make_challenge("a", algorithm="SHA-256", nonce="1"),
        make_challenge("a", algorithm="SHA-512-256", nonce="2"),
    ]
    assert select_challenge(values) == parse_challenge(values[1])


# --------------------------------------------------------------------------- UAC session


def _verify_with(header: str, method: str, uri: str) -> bool:
    return verify_authorization(
        header, lambda u, r: "pw" if u == "alice" else None, method, uri=uri
    )


def test_session_happy_path_and_preauthorization() -> None:
    session = DigestSession(DigestCredentials("alice", "pw"))
    assert session.authorize("INVITE", "sip:bob@b") == []
    challenge = make_challenge("b", algorithm="SHA-256", nonce="n1")
    assert session.handle_challenge([challenge]) is ChallengeOutcome.RETRY
    [(name, value)] = session.authorize("INVITE", "sip:bob@b")
    assert name == "Authorization"
    assert _params(value)["nc"] == "00000001"
    assert _verify_with(value, "INVITE", "sip:bob@b")
    # Later request in the dialog: same nonce, nc incremented, same cnonce.
    [(_, later)] = session.authorize("BYE", "sip:bob@b")
    assert _params(later)["nc"] == "00000002"
    assert _params(later)["cnonce"] == _params(value)["cnonce"]
    assert _verify_with(later, "BYE", "sip:bob@b")
    assert session.realms == ("b",)
    assert "nc=2" in repr(session)


def test_session_same_nonce_again_means_wrong_password() -> None:
    session = DigestSession(DigestCredentials("alice", "wrong"))
    challenge = make_challenge("b", nonce="n1")
    assert session.handle_challenge([challenge]) is ChallengeOutcome.RETRY
    session.authorize("INVITE", "sip:bob@b")
    assert session.handle_challenge([challenge]) is ChallengeOutcome.REJECTED
    assert session.authorize("INVITE", "sip:bob@b") == []


def test_session_fresh_nonce_right_after_answering_is_rejection() -> None:
    session = DigestSession(DigestCredentials("alice", "wrong"))
    assert session.handle_challenge([make_challenge("b", nonce="n1")]) is ChallengeOutcome.RETRY
    session.authorize("INVITE", "sip:bob@b")
    # Servers that mint a new nonce per 401 must not make us loop forever.
    assert session.handle_challenge([make_challenge("b", nonce="n2")]) is ChallengeOutcome.REJECTED


def test_session_stale_nonce_is_retried() -> None:
    session = DigestSession(DigestCredentials("alice", "pw"))
    session.handle_challenge([make_challenge("b", nonce="n1")])
    session.authorize("INVITE", "sip:bob@b")
    stale = make_challenge("b", nonce="n2", stale=True)
    assert session.handle_challenge([stale]) is ChallengeOutcome.RETRY
    [(_, value)] = session.authorize("INVITE", "sip:bob@b")
    assert _params(value)["nonce"] == "n2" and _params(value)["nc"] == "00000001"


def test_session_endless_stale_gives_up() -> None:
    session = DigestSession(DigestCredentials("alice", "pw"))
    session.handle_challenge([make_challenge("b", nonce="n0")])
    outcomes = []
    for i in range(1, 6):
        session.authorize("INVITE", "sip:bob@b")
        outcomes.append(session.handle_challenge([make_challenge("b", nonce=f"n{i}", stale=True)]))
    assert outcomes[:2] == [ChallengeOutcome.RETRY, ChallengeOutcome.RETRY]
    assert ChallengeOutcome.REJECTED in outcomes


def test_session_expired_preauth_nonce_is_retried() -> None:
    session = DigestSession(DigestCredentials("alice", "pw"))
    session.handle_challenge([make_challenge("b", nonce="n1")])
    session.authorize("INVITE", "sip:bob@b")  # accepted
    session.authorize("BYE", "sip:bob@b")  # pre-authorized, nonce since expired
    # Server forgot the nonce but did not say stale=true: one fresh attempt is fair.
    assert session.handle_challenge([make_challenge("b", nonce="n2")]) is ChallengeOutcome.RETRY


def test_session_proxy_and_multiple_realms() -> None:
    session = DigestSession(
        [
            DigestCredentials("alice", "pw", realm="proxy"),
            DigestCredentials("al", "pw2", realm="uas"),
        ]
    )
    outcome = session.handle_challenge(
        [make_challenge("proxy", nonce="p"), make_challenge("nobody", nonce="x")], proxy=True
    )
    assert outcome is ChallengeOutcome.RETRY
    assert session.handle_challenge([make_challenge("uas", nonce="u")]) is ChallengeOutcome.RETRY
    headers = dict(session.authorize("INVITE", "sip:bob@b"))
    assert _params(headers["Proxy-Authorization"])["realm"] == "proxy"
    assert _params(headers["Authorization"])["username"] == "al"
    session.forget("proxy")
    assert [n for n, _ in session.authorize("INVITE", "sip:bob@b")] == ["Authorization"]
    session.forget()
    assert session.authorize("INVITE", "sip:bob@b") == []


def test_session_no_credentials_and_unsupported() -> None:
    session = DigestSession(DigestCredentials("alice", "pw", realm="mine"))
    assert session.handle_challenge([make_challenge("other")]) is ChallengeOutcome.NO_CREDENTIALS
    assert session.handle_challenge(['Basic realm="mine"']) is ChallengeOutcome.UNSUPPORTED
    assert session.handle_challenge(['garbage "']) is ChallengeOutcome.UNSUPPORTED


def test_session_picks_strongest_per_realm() -> None:
    session = DigestSession(DigestCredentials("alice", "pw"))
    session.handle_challenge(
        [
            make_challenge("b", algorithm="MD5", nonce="m"),
            make_challenge("b", algorithm="SHA-256", nonce="s"),
        ]
    )
    [(_, value)] = session.authorize("INVITE", "sip:bob@b")
    assert _params(value)["algorithm"] == "SHA-256"


def test_session_respond_one_step() -> None:
    session = DigestSession(DigestCredentials("alice", "pw"))
    challenge = make_challenge("b", nonce="n1")
    headers = session.respond([challenge], "INVITE", "sip:bob@b", body=b"sdp", proxy=True)
    assert headers is not None
    [(name, value)] = headers
    assert name == "Proxy-Authorization" and _verify_with(value, "INVITE", "sip:bob@b")
    assert session.respond([challenge], "INVITE", "sip:bob@b", proxy=True) is None


def test_challenge_is_frozen() -> None:
    ch = DigestChallenge(realm="r", nonce="n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ch.realm = "x"  # type: ignore[misc]
