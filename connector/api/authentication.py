"""App Connect's JWT (`jwtToken`), issued and read exactly as the peer does (appconnect-api.md §1.2).

HS256 with `APP_SERVER_SECRET_KEY`, claims `{id, platform, iat, exp}`, 14 days. Taken from
`Authorization: Bearer` first, else from the `jwtToken` query. A valid token with 7 days
or less left is re-issued; the new one goes back in `x-refreshed-jwt-token`.

Stricter than the peer where its leniency could only come from a forgery or a bug: a token
longer than `JWT_MAX_LENGTH`, a query token given twice, an `id` or `platform` that is
not printable text, and a non-finite `exp` make a token invalid.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from enum import Enum
from typing import TypeGuard

import jwt
from django.conf import settings
from django.http import HttpRequest

JWT_ALGORITHM = "HS256"
# Ours are about 200 characters; a longer token is refused unread (and never cached).
JWT_MAX_LENGTH = 4096
JWT_LIFETIME_SECONDS = 14 * 24 * 3600
JWT_REFRESH_WINDOW_SECONDS = 7 * 24 * 3600
REFRESHED_TOKEN_HEADER = "x-refreshed-jwt-token"


class TokenState(Enum):
    MISSING = "missing"  # no token, or an unusable Bearer header (the peer drops it)
    INVALID = "invalid"  # a query token that is forged, malformed, expired, has no id or comes twice
    VALID = "valid"


@dataclass(frozen=True, slots=True)
class JwtIdentity:
    """Who a valid token names; `refreshed_token` is set when a new token was issued."""

    user_id: str
    platform: str
    refreshed_token: str | None = None


def jwt_encode(*, user_id: str, platform: str, now: int | None = None) -> str:
    """A fresh 14-day App Connect JWT for `user_id` on `platform`."""
    issued = int(time.time()) if now is None else now
    claims = {"id": user_id, "platform": platform, "iat": issued, "exp": issued + JWT_LIFETIME_SECONDS}
    return jwt.encode(claims, settings.APP_SERVER_SECRET_KEY, algorithm=JWT_ALGORITHM)


@functools.lru_cache(maxsize=4096)
def _verified_claims(token: str, secret: str) -> tuple[str, str, float | None] | None:
    """`(id, platform, exp)` of a token whose signature and claims are good, else None.

    Cached: a client sends the same token with every request, and checking the signature
    costs a fifth of a millisecond (bench/profile.py). Expiry is checked by the caller on
    every use, so the cache never keeps an expired token alive.
    """
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[JWT_ALGORITHM],
            # The peer accepts tokens without `exp` (they never expire).
            options={"require": [], "verify_aud": False, "verify_iat": False, "verify_exp": False},
        )
    except jwt.PyJWTError:
        return None
    if not isinstance(claims, dict):
        return None
    user_id, platform, expires = claims.get("id"), claims.get("platform") or "", claims.get("exp")
    if isinstance(user_id, int) and not isinstance(user_id, bool) and user_id:
        user_id = str(user_id)
    # Text a user id or a platform can be (CrmUser.id, CrmUser.platform): no NUL, control
    # character or surrogate, which no database query could take.
    if not _is_text(user_id, 255):
        return None
    if platform and not _is_text(platform, 64):
        return None
    if expires is not None and (
        isinstance(expires, bool)
        or not isinstance(expires, (int, float))
        or (isinstance(expires, float) and not math.isfinite(expires))
    ):
        return None  # PyJWT refuses a non-numeric exp too; NaN would never expire
    return user_id, platform, expires


def _is_text(value: object, max_length: int) -> TypeGuard[str]:
    return isinstance(value, str) and 0 < len(value) <= max_length and value.isprintable()


def _decode(token: str) -> JwtIdentity | None:
    if len(token) > JWT_MAX_LENGTH:
        return None
    claims = _verified_claims(token, settings.APP_SERVER_SECRET_KEY)
    if claims is None:
        return None
    user_id, platform, expires = claims
    now = time.time()
    if expires is not None and expires <= now:
        return None
    refreshed = None
    if expires is not None and expires - now <= JWT_REFRESH_WINDOW_SECONDS:
        refreshed = jwt_encode(user_id=user_id, platform=platform)
    return JwtIdentity(user_id=user_id, platform=platform, refreshed_token=refreshed)


def jwt_read(request: HttpRequest) -> tuple[TokenState, JwtIdentity | None]:
    """Read the request's App Connect JWT, following the peer's precedence rules."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        identity = _decode(credentials.strip())
        # An unusable Bearer header counts as no token at all, whatever the query says.
        return (TokenState.VALID, identity) if identity else (TokenState.MISSING, None)
    tokens = request.GET.getlist("jwtToken")
    if len(tokens) > 1:
        return TokenState.INVALID, None  # which one counts is anybody's guess; the peer's fails too
    token = tokens[0] if tokens else ""
    if not token:
        return TokenState.MISSING, None
    identity = _decode(token)
    return (TokenState.VALID, identity) if identity else (TokenState.INVALID, None)
