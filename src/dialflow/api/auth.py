"""Bearer tokens: the admin token, or an organization's API key (stored as a SHA-256 hash)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request

from .errors import ApiError, not_found

KEY_PREFIX = "dfk_"


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    # Keys are 256-bit random strings, so a fast hash is enough (no password stretching
    # needed); the hash makes a leaked database useless for calling the API.
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    admin: bool
    org_id: str | None = None
    key_id: str | None = None

    def can_access(self, org_id: str) -> bool:
        return self.admin or self.org_id == org_id

    def require_org(self, org_id: str) -> None:
        """An organization's key on another organization answers 404 (API.md), never 403."""
        if not self.can_access(org_id):
            raise not_found("organization")

    def require_admin(self) -> None:
        if not self.admin:
            raise ApiError(403, "forbidden", "this needs the admin token")


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("missing bearer token")
    token = token.strip()
    state = request.app.state.dialflow
    if hmac.compare_digest(token.encode(), state.settings.admin_token.encode()):
        return Principal(admin=True)
    if token.startswith(KEY_PREFIX):
        key = await state.store.find_api_key(hash_key(token))
        if key is not None:
            return Principal(admin=False, org_id=key.org_id, key_id=key.id)
    raise _unauthorized("invalid token")
