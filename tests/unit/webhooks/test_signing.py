"""Dialflow-Signature: known-answer vector (computed with `openssl dgst -hmac`) and verify()."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from hypothesis import given
from hypothesis import strategies as st

from dialflow.webhooks.signing import parse_signature, sign, verify

SECRET = "whsec_test"
BODY = b'{"id":"evt_1","type":"call.answered"}'
T = 1_700_000_000
# printf '%s' '1700000000.{"id":"evt_1","type":"call.answered"}' \
#   | openssl dgst -sha256 -hmac whsec_test
V1 = "cab9a3ede475bb777e0138faf273c49f940feae37587af595e31b087438cd03a"


def test_known_answer_vector() -> None:
    assert sign(SECRET, BODY, T) == f"t={T},v1={V1}"


def test_verify_accepts_the_signature_within_tolerance() -> None:
    header = sign(SECRET, BODY, T)
    assert verify(SECRET, BODY, header, now=T)
    assert verify(SECRET, BODY, header, now=T + 300)
    assert verify(SECRET, BODY, header, now=T - 300)  # receiver's clock a little behind


def test_verify_refuses_old_or_future_timestamps() -> None:
    header = sign(SECRET, BODY, T)
    assert not verify(SECRET, BODY, header, now=T + 301)
    assert not verify(SECRET, BODY, header, now=T - 301)
    assert verify(SECRET, BODY, header, now=T + 1000, tolerance_s=1000)


def test_verify_refuses_wrong_secret_body_or_timestamp() -> None:
    header = sign(SECRET, BODY, T)
    assert not verify("whsec_other", BODY, header, now=T)
    assert not verify(SECRET, BODY + b" ", header, now=T)
    assert not verify(SECRET, BODY, f"t={T + 1},v1={V1}", now=T)  # t is inside the MAC


def test_verify_accepts_any_of_several_v1_and_ignores_other_schemes() -> None:
    header = f"t={T},v0=abc,v1={'0' * 64},v1={V1}"
    assert verify(SECRET, BODY, header, now=T)
    assert verify(SECRET, BODY, f"t={T}, v1={V1.upper()}", now=T)


def test_malformed_headers_are_refused_without_exceptions() -> None:
    for header in [
        "",
        "garbage",
        f"v1={V1}",
        f"t={T}",
        f"t=abc,v1={V1}",
        f"t=-{T},v1={V1}",
        f"t={T},t={T},v1={V1}",
        f"t={T},v1=\u00e9\u00e9",
        f"t={T},v1",
    ]:
        assert not verify(SECRET, BODY, header, now=T), header
    assert parse_signature(f"t={T},v1={V1}") == (T, [V1])


@given(
    secret=st.text(min_size=1, max_size=40),
    body=st.binary(max_size=300),
    t=st.integers(min_value=0, max_value=2**33),
)
def test_sign_verify_round_trip(secret: str, body: bytes, t: int) -> None:
    header = sign(secret, body, t)
    assert verify(secret, body, header, now=t)
    assert not verify(secret + "x", body, header, now=t)
    assert not verify(secret, body + b"x", header, now=t)


def test_the_receiver_snippet_in_the_docs_verifies_our_signatures() -> None:
    docs = Path(__file__).parents[3] / "docs" / "webhooks.md"
    blocks = re.findall(r"```python\n(.*?)```", docs.read_text(), re.S)
    [snippet] = [b for b in blocks if "def verify_dialflow_signature" in b]
    namespace: dict[str, object] = {}
    exec(snippet, namespace)
    check = cast(Callable[[str, bytes, str], bool], namespace["verify_dialflow_signature"])
    now = int(time.time())
    header = sign(SECRET, BODY, now)
    assert check(SECRET, BODY, header) is True
    assert check(SECRET, BODY + b"x", header) is False
    assert check(SECRET, BODY, sign(SECRET, BODY, now - 600)) is False
    assert check(SECRET, BODY, "nonsense") is False
