"""Credentials the GitHub simulator accepts: a personal token, a GitHub App JWT, installation tokens.

The App's RSA key is generated at start; its private half is handed to clients (env
GITHUB_APP_PRIVATE_KEY), its public half verifies their RS256 JWTs as GitHub does:
`iss` = the App id, `iat` not in the future (60 s drift allowed), `exp` after now and
at most 10 minutes after `iat`.
"""

from __future__ import annotations

import dataclasses
import math
import random
import string
import time
import typing as t

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.sandbox.httpserver import HttpError

DOCS_AUTH = "https://docs.github.com/rest"
DOCS_JWT = "https://docs.github.com/rest"
_JWT_MAX_LIFETIME = 600
_CLOCK_DRIFT = 60


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who is calling: kind is "user" (personal token), "installation" or "app" (JWT)."""

    kind: str
    rate_key: str  # the rate-limit bucket: per user, per installation, per App
    subject_id: int


@dataclasses.dataclass
class InstallationToken:
    token: str
    installation_id: int
    expires: float


def _token(prefix: str, rng: random.Random) -> str:
    return prefix + "".join(rng.choices(string.ascii_letters + string.digits, k=36))


class Credentials:
    def __init__(self, rng: random.Random, app_id: int, installation_id: int, user_id: int) -> None:
        self._rng = rng
        self.app_id = app_id
        self.installation_id = installation_id
        self.user_id = user_id
        self.user_token = _token("ghp_", rng)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ).decode()
        self._public_key = key.public_key()
        self._installation_tokens: dict[str, InstallationToken] = {}

    def issue_installation_token(self, installation_id: int, ttl: float) -> InstallationToken:
        tok = InstallationToken(_token("ghs_", self._rng), installation_id, time.time() + ttl)
        self._installation_tokens[tok.token] = tok
        # Expired tokens are useless; dropping them keeps the table small in long runs.
        now = time.time()
        for key in [k for k, v in self._installation_tokens.items() if v.expires < now - 60]:
            del self._installation_tokens[key]
        return tok

    def identify(self, authorization: str | None) -> Identity | None:
        """The caller, None when anonymous; raises 401 on credentials GitHub would refuse."""
        if not authorization:
            return None
        scheme, _unused, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() not in ("token", "bearer") or not value:
            raise HttpError(401, "Bad credentials")
        if value == self.user_token:
            return Identity("user", f"user:{self.user_id}", self.user_id)
        inst = self._installation_tokens.get(value)
        if inst is not None:
            if inst.expires <= time.time():
                raise HttpError(401, "Bad credentials")
            return Identity("installation", f"installation:{inst.installation_id}", inst.installation_id)
        if value.count(".") == 2 and value.startswith("eyJ"):
            self._verify_jwt(value)
            return Identity("app", f"app:{self.app_id}", self.app_id)
        raise HttpError(401, "Bad credentials")

    def _verify_jwt(self, value: str) -> None:
        try:
            claims: dict[str, t.Any] = jwt.decode(
                value,
                self._public_key,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            raise HttpError(401, "A JSON web token could not be decoded") from None
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or iat > now + _CLOCK_DRIFT:
            raise HttpError(
                401, "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued."
            )
        if not isinstance(exp, int) or exp <= now:
            raise HttpError(
                401,
                "'Expiration time' claim ('exp') must be a numeric value representing the future time "
                "at which the assertion expires.",
            )
        if exp - iat > _JWT_MAX_LIFETIME:
            raise HttpError(401, "'Expiration time' claim ('exp') is too far in the future.")
        if str(claims.get("iss")) != str(self.app_id):
            raise HttpError(401, "A JSON web token could not be decoded")


@dataclasses.dataclass
class Bucket:
    limit: int
    used: int
    reset: float


class RateLimits:
    """The primary rate limit: a budget per caller per window, as the X-RateLimit-* headers report it."""

    def __init__(self, config: dict[str, t.Any]) -> None:
        self._config = config
        self._buckets: dict[str, Bucket] = {}

    def bucket(self, key: str, now: float) -> Bucket:
        limit = int(self._config["github.rate_limit"]) if key != "anonymous" else 60
        b = self._buckets.get(key)
        if b is None or b.reset <= now:
            # Whole seconds, as X-RateLimit-Reset reports them: a client sleeping until then finds a new budget.
            b = Bucket(limit, 0, float(math.ceil(now + float(self._config["github.rate_limit_window"]))))
            self._buckets[key] = b
        b.limit = limit
        return b

    def exhaust(self, key: str, now: float, reset_in: float) -> Bucket:
        b = self.bucket(key, now)
        b.used = b.limit
        b.reset = float(math.ceil(now + reset_in))
        return b
