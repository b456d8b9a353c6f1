"""Hashing of lookup secrets (MFA backup codes): Argon2id with a salt and recorded parameters.

A backup code carries only 40 bits of entropy, far too few for a plain hash: a stolen
table could be searched exhaustively. Argon2id (RFC 9106) with OWASP's minimum for
password storage (19 MiB, two passes, one lane) makes each guess cost what a password
guess costs. One salt serves all codes of a device, so checking a typed code costs one
hash however many codes are left; the parameters are stored beside the digests, so
raising them later leaves existing codes verifiable.
"""

from __future__ import annotations

import os

SALT_BYTES = 16
DIGEST_BYTES = 32
# "argon2id$m=<KiB>,t=<passes>,p=<lanes>"
DEFAULT_PARAMS = "argon2id$m=19456,t=2,p=1"


class LookupParamsError(ValueError):
    """The stored parameters are not ones this module writes."""


def new_salt() -> bytes:
    return os.urandom(SALT_BYTES)


def _parse(params: str) -> dict[str, int]:
    algorithm, _, settings = params.partition("$")
    if algorithm != "argon2id":
        raise LookupParamsError(f"unknown lookup-secret hash {algorithm!r}")
    try:
        values = dict(item.split("=", 1) for item in settings.split(","))
        return {"m": int(values["m"]), "t": int(values["t"]), "p": int(values["p"])}
    except (KeyError, ValueError):
        raise LookupParamsError("malformed lookup-secret hash parameters") from None


def digest(secret: str, *, salt: bytes, params: str = DEFAULT_PARAMS) -> str:
    """The hex digest stored for ``secret`` (already normalised by the caller)."""
    # argon2 loads with the first backup code hashed or checked, not at start-up.
    from argon2.low_level import Type, hash_secret_raw

    p = _parse(params)
    raw = hash_secret_raw(
        secret.encode("utf-8"),
        salt,
        time_cost=p["t"],
        memory_cost=p["m"],
        parallelism=p["p"],
        hash_len=DIGEST_BYTES,
        type=Type.ID,
    )
    return raw.hex()
