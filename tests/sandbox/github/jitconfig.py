"""The encoded JIT runner configuration, laid out like GitHub's.

GitHub's `encoded_jit_config` is base64 of a JSON object holding the runner's
`.runner`, `.credentials` and `.credentials_rsaparams` files, each base64-encoded;
`run.sh --jitconfig` writes them out and connects. Here the credential is a random
client id and key material whose digest the simulator remembers, so only the holder
of the config can bring that runner online, and only once.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import random
import typing as t
import uuid


@dataclasses.dataclass(frozen=True)
class JitConfig:
    runner_id: int
    runner_name: str
    github_url: str
    client_id: str
    key_digest: str


def _b64json(obj: t.Any) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


def _unb64json(text: str) -> t.Any:
    return json.loads(base64.b64decode(text.encode(), validate=True))


def new_credential(rng: random.Random) -> tuple[str, bytes]:
    """A client id and key bytes (the modulus stands in for the runner's RSA key)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4)), rng.randbytes(256)


def key_digest(modulus: bytes) -> str:
    return hashlib.sha256(modulus).hexdigest()


def encode(
    *,
    runner_id: int,
    runner_name: str,
    github_url: str,
    pipelines_url: str,
    work_folder: str,
    client_id: str,
    modulus: bytes,
    rng: random.Random,
) -> str:
    def part(n: int) -> str:
        return base64.b64encode(rng.randbytes(n)).decode()

    runner = {
        "AgentId": runner_id,
        "AgentName": runner_name,
        "PoolId": 1,
        "PoolName": "Default",
        "ServerUrl": pipelines_url,
        "GitHubUrl": github_url,
        "WorkFolder": work_folder,
        "Ephemeral": True,
        "DisableUpdate": False,
    }
    credentials = {
        "Scheme": "OAuth",
        "Data": {
            "ClientId": client_id,
            "AuthorizationUrl": f"{pipelines_url}/_apis/oauth2/token",
            "RequireFipsCryptography": "False",
        },
    }
    rsaparams = {
        "d": part(256),
        "dp": part(128),
        "dq": part(128),
        "exponent": "AQAB",
        "inverseQ": part(128),
        "modulus": base64.b64encode(modulus).decode(),
        "p": part(128),
        "q": part(128),
    }
    return _b64json(
        {
            ".runner": _b64json(runner),
            ".credentials": _b64json(credentials),
            ".credentials_rsaparams": _b64json(rsaparams),
        }
    )


def decode(encoded: str) -> JitConfig:
    """Parse an encoded config; ValueError when it is not one."""
    try:
        files = _unb64json(encoded)
        runner = _unb64json(files[".runner"])
        credentials = _unb64json(files[".credentials"])
        rsaparams = _unb64json(files[".credentials_rsaparams"])
        return JitConfig(
            runner_id=int(runner["AgentId"]),
            runner_name=str(runner["AgentName"]),
            github_url=str(runner["GitHubUrl"]),
            client_id=str(credentials["Data"]["ClientId"]),
            key_digest=key_digest(base64.b64decode(rsaparams["modulus"], validate=True)),
        )
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a JIT runner configuration: {type(exc).__name__}") from None
