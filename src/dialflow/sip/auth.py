"""SIP digest authentication, sans-I/O (RFC 3261 §22, RFC 7616, RFC 8760, RFC 2617).

Works on header *values* (strings) only, so it does not depend on the SIP message model:

* UAC side: :func:`parse_challenge` / :func:`select_challenge` read ``WWW-Authenticate`` and
  ``Proxy-Authenticate`` values, :func:`build_authorization` answers one challenge, and
  :class:`DigestSession` remembers challenges per realm so later requests in a dialog can be
  pre-authorized (with an incrementing nonce-count) and knows when to stop retrying.
* UAS side (inbound calls, tests): :func:`make_challenge` and :func:`verify_authorization`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from urllib.parse import quote, unquote

__all__ = [
    "AuthError",
    "ChallengeOutcome",
    "DigestAlgorithm",
    "DigestChallenge",
    "DigestCredentials",
    "DigestSession",
    "UnsupportedChallenge",
    "build_authorization",
    "make_challenge",
    "parse_challenge",
    "parse_challenges",
    "select_challenge",
    "verify_authorization",
]


class AuthError(ValueError):
    """A malformed authentication header, or credentials that cannot answer a challenge."""


class UnsupportedChallenge(AuthError):
    """A well-formed challenge we cannot answer (other scheme, algorithm or qop)."""


class DigestAlgorithm(StrEnum):
    """Digest algorithms from the IANA registry of RFC 7616 §6.1 (all allowed by RFC 8760)."""

    MD5 = "MD5"
    MD5_SESS = "MD5-sess"
    SHA256 = "SHA-256"
    SHA256_SESS = "SHA-256-sess"
    SHA512_256 = "SHA-512-256"
    SHA512_256_SESS = "SHA-512-256-sess"

    @property
    def is_session(self) -> bool:
        """True for ``-sess`` variants: A1 also covers nonce and cnonce (RFC 7616 §3.4.2)."""
        return self.value.endswith("-sess")

    @property
    def strength(self) -> int:
        """Preference rank, higher is better (RFC 8760 §2.3: SHA-512-256, SHA-256, then MD5)."""
        return _STRENGTH[self.value.removesuffix("-sess")]

    @classmethod
    def parse(cls, text: str) -> DigestAlgorithm:
        """Look an algorithm token up case-insensitively; raise :class:`UnsupportedChallenge`."""
        try:
            return _ALGORITHMS_BY_LOWER[text.lower()]
        except KeyError:
            raise UnsupportedChallenge(f"unsupported digest algorithm {text!r}") from None

    def hexdigest(self, data: str | bytes) -> str:
        """H(data) as lower-case hex (RFC 7616 §3.4.1); strings are hashed as UTF-8."""
        raw = data.encode("utf-8") if isinstance(data, str) else data
        # SHA-512/256 is its own FIPS 180-4 function (different IV), not truncated SHA-512.
        return hashlib.new(_HASHLIB_NAME[self.value.removesuffix("-sess")], raw).hexdigest()


_STRENGTH = {"MD5": 1, "SHA-256": 2, "SHA-512-256": 3}
_HASHLIB_NAME = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
_ALGORITHMS_BY_LOWER = {a.value.lower(): a for a in DigestAlgorithm}
_SUPPORTED_QOP = ("auth", "auth-int")


@dataclass(frozen=True, slots=True)
class DigestChallenge:
    """One parsed ``Digest`` challenge (RFC 7616 §3.3)."""

    realm: str
    nonce: str
    algorithm: DigestAlgorithm = DigestAlgorithm.MD5
    #: Supported qop values offered, in the server's order; empty = RFC 2069 mode (no qop).
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    userhash: bool = False
    domain: str | None = None
    charset: str | None = None


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """Username and password, optionally bound to one realm (None accepts any realm)."""

    username: str
    password: str = field(repr=False)
    realm: str | None = None

    def matches(self, realm: str) -> bool:
        """True when these credentials may answer a challenge for ``realm``."""
        return self.realm is None or self.realm == realm


# --------------------------------------------------------------------------- header grammar

# RFC 7230 §3.2.6 token; RFC 7235 §2.1 token68.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# Unquoted values seen in the wild (nonce=abc/def==) are not tokens; read up to a delimiter.
_BARE_VALUE = re.compile(r"[^\s,\"]+")
_WS = " \t\r\n"


@dataclass(slots=True)
class _RawChallenge:
    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None


def _skip(text: str, i: int, chars: str) -> int:
    n = len(text)
    while i < n and text[i] in chars:
        i += 1
    return i


def _quoted_string(text: str, i: int) -> tuple[str, int]:
    """Read a quoted-string starting at the opening quote; returns (value, index after)."""
    out: list[str] = []
    i += 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            # RFC 3261 §25.1 quoted-pair: backslash escapes the next character.
            if i + 1 >= n:
                break
            out.append(text[i + 1])
            i += 2
        elif c == '"':
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise AuthError("unterminated quoted string")


def _parse_auth_list(value: str) -> list[_RawChallenge]:
    """Split a challenge/credentials header value into schemes with their auth-params.

    Handles several comma-joined challenges in one value (RFC 7235 §4.1), quoted strings with
    escapes and commas, arbitrary whitespace and case-insensitive parameter names.
    """
    out: list[_RawChallenge] = []
    current: _RawChallenge | None = None
    n = len(value)
    i = 0
    while True:
        i = _skip(value, i, _WS + ",")
        if i >= n:
            break
        m = _TOKEN.match(value, i)
        if m is None:
            raise AuthError(f"unexpected {value[i]!r} at offset {i}")
        name = m.group()
        j = _skip(value, m.end(), _WS)
        if j < n and value[j] == "=":
            if current is None:
                raise AuthError("auth-param before any scheme")
            j = _skip(value, j + 1, _WS)
            if j < n and value[j] == '"':
                param, i = _quoted_string(value, j)
            else:
                mv = _BARE_VALUE.match(value, j)
                if mv is None:
                    raise AuthError(f"missing value for {name!r}")
                param, i = mv.group(), mv.end()
            key = name.lower()
            if key in current.params:
                # RFC 7235 §2.1: each parameter name MUST only occur once per challenge.
                raise AuthError(f"duplicate parameter {name!r}")
            current.params[key] = param
            continue
        current = _RawChallenge(scheme=name)
        out.append(current)
        i = m.end()
        # RFC 7235 §2.1: a scheme may carry one token68 (e.g. "Negotiate abc==") instead of
        # params; it follows the scheme after whitespace and ends the challenge.
        if j > i and j < n and value[j] != ",":
            m68 = _TOKEN68.match(value, j)
            if m68 is not None:
                k = _skip(value, m68.end(), _WS)
                if k >= n or value[k] == ",":
                    current.token68 = m68.group()
                    i = k
    return out


def _challenge_from_params(params: dict[str, str]) -> DigestChallenge:
    realm = params.get("realm")
    nonce = params.get("nonce")
    if realm is None or nonce is None:
        raise AuthError("Digest challenge needs realm and nonce (RFC 7616 §3.3)")
    algorithm = DigestAlgorithm.parse(params.get("algorithm", "MD5"))
    qop: tuple[str, ...] = ()
    if "qop" in params:
        offered = [q.strip().lower() for q in params["qop"].split(",")]
        qop = tuple(q for q in _SUPPORTED_QOP if q in offered)
        qop = tuple(sorted(qop, key=offered.index))
        if not qop:
            raise UnsupportedChallenge(f"no supported qop in {params['qop']!r}")
    elif algorithm.is_session:
        # RFC 7616 §3.4.2: the -sess A1 needs a cnonce, which only exists with qop.
        raise UnsupportedChallenge(f"{algorithm} without qop")
    return DigestChallenge(
        realm=realm,
        nonce=nonce,
        algorithm=algorithm,
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
        userhash=params.get("userhash", "").lower() == "true",
        domain=params.get("domain"),
        charset=params.get("charset"),
    )


def parse_challenges(header_value: str) -> list[DigestChallenge]:
    """Parse every usable Digest challenge in one header value.

    Other schemes, unsupported algorithms and unsupported qop are skipped; malformed syntax
    raises :class:`AuthError`.
    """
    out: list[DigestChallenge] = []
    for raw in _parse_auth_list(header_value):
        if raw.scheme.lower() != "digest" or raw.token68 is not None:
            continue
        try:
            out.append(_challenge_from_params(raw.params))
        except UnsupportedChallenge:
            continue
    return out


def parse_challenge(header_value: str) -> DigestChallenge:
    """Parse a ``WWW-Authenticate`` / ``Proxy-Authenticate`` value holding a Digest challenge.

    If the value carries several comma-joined challenges, the first Digest one is parsed.
    Raises :class:`UnsupportedChallenge` for other schemes, algorithms or qop values, and
    :class:`AuthError` for anything malformed.
    """
    raws = _parse_auth_list(header_value)
    if not raws:
        raise AuthError("empty challenge")
    for raw in raws:
        if raw.scheme.lower() == "digest":
            if raw.token68 is not None:
                raise AuthError("Digest challenge with token68 instead of parameters")
            return _challenge_from_params(raw.params)
    raise UnsupportedChallenge(f"no Digest challenge (scheme {raws[0].scheme!r})")


def select_challenge(
    header_values: Iterable[str], *, realm: str | None = None
) -> DigestChallenge | None:
    """Pick the challenge to answer among all challenge headers of one response.

    RFC 8760 §2.3/§2.4: a UAS lists its preferred algorithm first and a UAC uses the best one
    it supports, so we rank by algorithm strength (SHA-512-256 > SHA-256 > MD5) and, on a tie,
    keep the topmost. Non-Digest schemes, unsupported algorithms and malformed headers are
    ignored. With ``realm`` set, only challenges for that realm are considered.
    """
    best: DigestChallenge | None = None
    for value in header_values:
        try:
            candidates = parse_challenges(value)
        except AuthError:
            continue
        for ch in candidates:
            if realm is not None and ch.realm != realm:
                continue
            if best is None or ch.algorithm.strength > best.algorithm.strength:
                best = ch
    return best


# --------------------------------------------------------------------------- computing responses


def _quote(value: str) -> str:
    if any(c in value for c in "\r\n\x00"):
        # Never let a credential smuggle a header break into the message.
        raise AuthError("control character in header parameter")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _response(
    algorithm: DigestAlgorithm,
    *,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    cnonce: str | None,
    nc: str | None,
    qop: str | None,
    body: bytes,
) -> str:
    """The request-digest of RFC 7616 §3.4.1 (and the RFC 2069 form of RFC 2617 §3.2.2.1)."""
    h = algorithm.hexdigest
    ha1 = h(f"{username}:{realm}:{password}")
    if algorithm.is_session:
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")  # RFC 7616 §3.4.2
    # RFC 7616 §3.4.3: auth-int also covers the hash of the entity body.
    ha2 = h(f"{method}:{uri}:{h(body)}" if qop == "auth-int" else f"{method}:{uri}")
    if qop is None:
        return h(f"{ha1}:{nonce}:{ha2}")
    return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def build_authorization(
    challenge: DigestChallenge,
    credentials: DigestCredentials,
    method: str,
    uri: str,
    *,
    body: bytes = b"",
    cnonce: str | None = None,
    nc: int = 1,
    qop: str | None = None,
) -> str:
    """Answer ``challenge``: the value of an ``Authorization``/``Proxy-Authorization`` header.

    ``uri`` is the Request-URI as sent (RFC 3261 §22.4). qop ``auth`` is chosen when offered,
    else ``auth-int`` (which needs the exact ``body``); pass ``qop`` to force one. Without qop
    the RFC 2069 form is produced. ``nc`` is the nonce-count for this nonce (1 for the first
    use); ``cnonce`` defaults to a random value.
    """
    if not credentials.matches(challenge.realm):
        raise AuthError(f"credentials are for realm {credentials.realm!r}, not {challenge.realm!r}")
    if qop is None and challenge.qop:
        qop = "auth" if "auth" in challenge.qop else challenge.qop[0]
    elif qop is not None and qop not in challenge.qop:
        raise AuthError(f"qop {qop!r} not offered by the challenge")
    if not 0 < nc <= 0xFFFFFFFF:
        raise AuthError(f"nonce-count {nc} out of range")
    nc_hex = f"{nc:08x}"  # RFC 7616 §3.4: 8LHEX
    if qop is not None and cnonce is None:
        cnonce = secrets.token_hex(16)
    response = _response(
        challenge.algorithm,
        username=credentials.username,
        realm=challenge.realm,
        password=credentials.password,
        method=method,
        uri=uri,
        nonce=challenge.nonce,
        cnonce=cnonce,
        nc=nc_hex,
        qop=qop,
        body=body,
    )
    parts = [_username_param(credentials.username, challenge)]
    parts += [
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(response)}",
        f"algorithm={challenge.algorithm.value}",
    ]
    if qop is not None:
        parts.append(f"cnonce={_quote(cnonce or '')}")
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    if qop is not None:
        parts += [f"qop={qop}", f"nc={nc_hex}"]
    if challenge.userhash:
        parts.append("userhash=true")
    return "Digest " + ", ".join(parts)


def _username_param(username: str, challenge: DigestChallenge) -> str:
    if challenge.userhash:
        # RFC 7616 §3.4.4: username = H(unq(username) ":" unq(realm)).
        return f"username={_quote(challenge.algorithm.hexdigest(f'{username}:{challenge.realm}'))}"
    if username.isascii() and username.isprintable():
        return f"username={_quote(username)}"
    # RFC 7616 §3.4.4: a name that cannot be a quoted-string goes in username* (RFC 5987).
    return "username*=UTF-8''" + quote(username, safe="")


# --------------------------------------------------------------------------- UAS side


def make_challenge(
    realm: str,
    *,
    algorithm: DigestAlgorithm | str = DigestAlgorithm.MD5,
    qop: str | None = "auth",
    nonce: str | None = None,
    opaque: str | None = None,
    stale: bool = False,
    userhash: bool = False,
) -> str:
    """Build a ``WWW-Authenticate``/``Proxy-Authenticate`` value (RFC 7616 §3.3).

    ``qop`` is the quoted list to offer ("auth", "auth-int", "auth,auth-int") or None for the
    RFC 2069 form. ``nonce`` defaults to a random value; tracking issued nonces is the caller's.
    """
    alg = algorithm if isinstance(algorithm, DigestAlgorithm) else DigestAlgorithm.parse(algorithm)
    parts = [f"realm={_quote(realm)}", f"nonce={_quote(nonce or secrets.token_hex(16))}"]
    if opaque is not None:
        parts.append(f"opaque={_quote(opaque)}")
    if stale:
        parts.append("stale=true")
    parts.append(f"algorithm={alg.value}")
    if qop is not None:
        parts.append(f"qop={_quote(qop)}")
    if userhash:
        parts.append("userhash=true")
    return "Digest " + ", ".join(parts)


_NC = re.compile(r"[0-9a-fA-F]{8}")


def verify_authorization(
    header_value: str,
    password_lookup: Callable[[str, str], str | None],
    method: str,
    body: bytes = b"",
    *,
    realm: str | None = None,
    uri: str | None = None,
    nonce_ok: Callable[[str], bool] | None = None,
    usernames: Iterable[str] = (),
) -> bool:
    """Check an ``Authorization``/``Proxy-Authorization`` value; never raises on bad input.

    ``password_lookup(username, realm)`` returns the password or None. Optional checks:
    ``realm`` and ``uri`` must match exactly, ``nonce_ok(nonce)`` must accept the nonce (the
    caller owns nonce issuing, expiry and nc replay tracking). For ``userhash=true`` the real
    user is found among ``usernames`` (RFC 7616 §3.4.4).
    """
    try:
        raws = _parse_auth_list(header_value)
    except AuthError:
        return False
    if len(raws) != 1 or raws[0].scheme.lower() != "digest":
        return False
    p = raws[0].params
    try:
        algorithm = DigestAlgorithm.parse(p.get("algorithm", "MD5"))
        user = _credentials_username(p, algorithm, usernames)
    except AuthError:
        return False
    got_realm, got_nonce, got_uri, got_response = (
        p.get("realm"),
        p.get("nonce"),
        p.get("uri"),
        p.get("response"),
    )
    if user is None or got_realm is None or got_nonce is None or got_uri is None:
        return False
    if got_response is None:
        return False
    if (realm is not None and got_realm != realm) or (uri is not None and got_uri != uri):
        return False
    qop = p.get("qop")
    cnonce, nc = p.get("cnonce"), p.get("nc")
    if qop is not None:
        if qop.lower() not in _SUPPORTED_QOP or cnonce is None or nc is None:
            return False
        if _NC.fullmatch(nc) is None:
            return False
        qop = qop.lower()
    elif algorithm.is_session:
        return False
    if nonce_ok is not None and not nonce_ok(got_nonce):
        return False
    password = password_lookup(user, got_realm)
    if password is None:
        return False
    expected = _response(
        algorithm,
        username=user,
        realm=got_realm,
        password=password,
        method=method,
        uri=got_uri,
        nonce=got_nonce,
        cnonce=cnonce,
        nc=nc,
        qop=qop,
        body=body,
    )
    return hmac.compare_digest(expected, got_response.lower())


def _credentials_username(
    p: dict[str, str], algorithm: DigestAlgorithm, usernames: Iterable[str]
) -> str | None:
    if "username*" in p:
        charset, _, rest = p["username*"].partition("'")
        _, _, encoded = rest.partition("'")
        if charset.lower() != "utf-8":
            return None
        try:
            return unquote(encoded, encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            return None
    name = p.get("username")
    if name is None or p.get("userhash", "").lower() != "true":
        return name
    realm = p.get("realm", "")
    for candidate in usernames:
        if hmac.compare_digest(algorithm.hexdigest(f"{candidate}:{realm}"), name.lower()):
            return candidate
    return None


# --------------------------------------------------------------------------- UAC session


class ChallengeOutcome(Enum):
    """What a UAC should do after :meth:`DigestSession.handle_challenge`."""

    RETRY = "retry"  #: resend the request with :meth:`DigestSession.authorize` headers
    REJECTED = "rejected"  #: our credentials were refused; give up (401/407 is final)
    NO_CREDENTIALS = "no-credentials"  #: no credentials for any challenged realm
    UNSUPPORTED = "unsupported"  #: no Digest challenge we can answer


# A server may keep saying stale=true; bound how often we follow it without progress.
_MAX_STALE_RETRIES = 2


@dataclass(slots=True)
class _RealmState:
    challenge: DigestChallenge
    credentials: DigestCredentials
    proxy: bool
    cnonce: str
    nc: int = 0  # how many requests have used this nonce so far
    stale_retries: int = 0


class DigestSession:
    """Digest state of one UAC (e.g. one dialog): challenges per realm and nonce-counts.

    Call :meth:`authorize` for *every* new request (it returns ``[]`` before any challenge),
    and :meth:`handle_challenge` on each 401/407. RFC 3261 §22.3 lets the UAC reuse credentials
    for a realm on later requests; each reuse increments nc (RFC 7616 §3.4). ACK for a non-2xx
    and CANCEL must copy the headers of the request they belong to (RFC 3261 §22.1), not call
    :meth:`authorize` again.
    """

    __slots__ = ("_credentials", "_realms")

    def __init__(self, credentials: DigestCredentials | Iterable[DigestCredentials]) -> None:
        if isinstance(credentials, DigestCredentials):
            self._credentials: tuple[DigestCredentials, ...] = (credentials,)
        else:
            self._credentials = tuple(credentials)
        self._realms: dict[str, _RealmState] = {}

    def __repr__(self) -> str:
        realms = ", ".join(f"{r}:nc={s.nc}" for r, s in self._realms.items())
        return f"<DigestSession realms=[{realms}]>"

    @property
    def realms(self) -> tuple[str, ...]:
        """Realms we currently hold a challenge for."""
        return tuple(self._realms)

    def handle_challenge(
        self, header_values: Iterable[str], *, proxy: bool = False
    ) -> ChallengeOutcome:
        """Take the ``WWW-Authenticate`` (``proxy=False``, 401) or ``Proxy-Authenticate``
        (``proxy=True``, 407) values of a response and decide whether to retry.

        Gives up (REJECTED) when a request that carried credentials is challenged again for the
        same realm and the server did not say ``stale=true`` — with the same nonce (RFC 7616
        §3.3: credentials are wrong), or with a new nonce right after answering a fresh
        challenge. A new nonce after a nonce served several requests is taken as expiry.
        """
        by_realm: dict[str, DigestChallenge] = {}
        for value in header_values:
            try:
                candidates = parse_challenges(value)
            except AuthError:
                continue
            for ch in candidates:
                best = by_realm.get(ch.realm)
                if best is None or ch.algorithm.strength > best.algorithm.strength:
                    by_realm[ch.realm] = ch
        if not by_realm:
            return ChallengeOutcome.UNSUPPORTED
        accepted: list[_RealmState] = []
        for realm, ch in by_realm.items():
            creds = next((c for c in self._credentials if c.matches(realm)), None)
            if creds is None:
                continue
            old = self._realms.get(realm)
            stale_retries = 0
            if old is not None and old.nc > 0:
                if ch.stale:
                    stale_retries = 0 if old.nc > 1 else old.stale_retries + 1
                    if stale_retries > _MAX_STALE_RETRIES:
                        self._realms.pop(realm)
                        return ChallengeOutcome.REJECTED
                elif ch.nonce == old.challenge.nonce or old.nc == 1:
                    self._realms.pop(realm)
                    return ChallengeOutcome.REJECTED
            accepted.append(
                _RealmState(ch, creds, proxy, secrets.token_hex(16), stale_retries=stale_retries)
            )
        if not accepted:
            return ChallengeOutcome.NO_CREDENTIALS
        for state in accepted:
            self._realms[state.challenge.realm] = state
        return ChallengeOutcome.RETRY

    def authorize(self, method: str, uri: str, body: bytes = b"") -> list[tuple[str, str]]:
        """Headers ``(name, value)`` to add to a new request, one per remembered realm."""
        out: list[tuple[str, str]] = []
        for state in self._realms.values():
            state.nc += 1
            value = build_authorization(
                state.challenge,
                state.credentials,
                method,
                uri,
                body=body,
                cnonce=state.cnonce,
                nc=state.nc,
            )
            out.append(("Proxy-Authorization" if state.proxy else "Authorization", value))
        return out

    def respond(
        self,
        header_values: Iterable[str],
        method: str,
        uri: str,
        *,
        body: bytes = b"",
        proxy: bool = False,
    ) -> list[tuple[str, str]] | None:
        """:meth:`handle_challenge` then :meth:`authorize` for the retried request.

        Returns the headers for the retry, or None when the UAC must give up and report the
        401/407 as final.
        """
        if self.handle_challenge(header_values, proxy=proxy) is not ChallengeOutcome.RETRY:
            return None
        return self.authorize(method, uri, body)

    def forget(self, realm: str | None = None) -> None:
        """Drop the remembered challenge for ``realm`` (or all of them)."""
        if realm is None:
            self._realms.clear()
        else:
            self._realms.pop(realm, None)
