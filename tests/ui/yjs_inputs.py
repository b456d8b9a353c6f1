"""Malformed Yjs input that has hurt the server: for the attacks on every path that decodes."""

from __future__ import annotations

from pycrdt import Encoder

# A mutated update on which yrs panics (index out of bounds) rather than raising.
PANICKING_UPDATE = bytes.fromhex(
    "010101d0a9a8f2d9e6150004010174f00168656c6c6f20b76f726c642068656c6c6f20776f726c642068656c"
    "6c6f20776f726c642068656c6c6f20776f726c642068656c6c6f20776f726c642068656c6c6f20776f726c64"
    "2068656c6c6f20776f726c642068656c6c6f20776f726c642068656c6c6f20776f726c642068656c6c6f2077"
    "6f726c642068656c6c6f20776f726c642068656c6c6f20776f726c64fa68656c6c6f20776f726c642068656c"
    "6c6f20776f726c642068656c6c6f20776f726c642068656c6c6f20776f726c642068656c6c6f20776f726c64"
    "2068656c6c6f20776f726c642068656c6c6f20776f726c642068656c6c6f20776f726c642000"
)


def varuint(value: int) -> bytes:
    encoder = Encoder()
    encoder.write_var_uint(value)
    return encoder.to_bytes()


# Six bytes claiming 2^28 clients: yrs sizes a table for them before reading on.
HUGE_COUNT_UPDATE = varuint(2**28) + b"\x01\x01\x00"
HUGE_COUNT_STATE_VECTOR = varuint(2**28) + b"\x01\x01"
