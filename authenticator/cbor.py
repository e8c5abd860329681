"""The only importer of cbor2: strict CTAP2-canonical decoding with size and depth limits,
and canonical encoding (CTAP 2.1 §8 "Message Encoding").

A request is accepted only if re-encoding it canonically gives back the same bytes; that one
rule rejects non-minimal integers and lengths, unsorted or duplicate map keys, indefinite
lengths, trailing bytes and tags, all as ``INVALID_CBOR``. (For the usual request, whose maps
are already in order, a plain re-encode gives the same verdict for less; see ``decode``.)

cbor2's canonical key order is length-first (RFC 7049 §3.9). It equals CTAP2's
"major type, then length, then bytes" order for every map CTAP uses (maps whose keys are all
integers of one byte, or all text); it differs only for maps mixing key types of different
encoded lengths, which no CTAP structure has.
"""

from __future__ import annotations

from typing import Any, Final

import cbor2

from authenticator.status import CtapError, CtapStatus

# CTAP 2.1 §8: authenticators must support at least 4 levels of nested maps/arrays; we take a
# little more so a client that nests one level deeper still gets a precise status code.
MAX_DEPTH: Final = 8


def decode(data: bytes) -> Any:
    """Decode one CTAP2-canonical CBOR item, or raise ``CtapError(INVALID_CBOR)``."""
    # Indefinite lengths and duplicate keys need no decoder flags: re-encoding gives definite
    # lengths and one entry per key, so such input never equals its re-encoding below.
    try:
        value = cbor2.loads(data, max_depth=MAX_DEPTH)
    except Exception as exc:  # cbor2 raises several types (incl. RecursionError, ValueError)
        raise CtapError(CtapStatus.INVALID_CBOR, f"undecodable: {type(exc).__name__}") from None
    # The common case, at a third of the cost of a canonical re-encode (which encodes every
    # map key separately to sort them): maps already in canonical order, no floats or tags.
    # There the plain encoding is the canonical one; anything else takes the full check.
    if _is_plain_and_ordered(value) and cbor2.dumps(value) == data:
        return value
    try:
        canonical = cbor2.dumps(value, canonical=True)
    except Exception:
        raise CtapError(CtapStatus.INVALID_CBOR, "contains an unsupported item") from None
    if canonical != data:
        raise CtapError(CtapStatus.INVALID_CBOR, "not in canonical form")
    return value


_PLAIN_SCALARS: Final = frozenset({bytes, str, int, bool, type(None)})


def _is_plain_and_ordered(value: Any) -> bool:
    """Whether ``value`` holds only maps, arrays, integers, strings, booleans and null, with
    every map's keys in canonical order, so that its plain encoding is its canonical one.

    Answers False (the caller then runs the full check) for anything else, including maps
    whose keys are not all one-byte integers or all ASCII text: those orders are not
    worth deciding here.
    """
    kind = type(value)
    if kind is dict:
        rank = -1  # one-byte integer keys: their encoded byte (0x00-0x17, then -1 -> 0x20 ...)
        last_text: str | None = None  # text keys: shorter first, then bytewise
        for key, item in value.items():
            key_kind = type(key)
            if key_kind is int and last_text is None and -24 <= key < 24:
                key_rank = key if key >= 0 else 31 - key
                if key_rank <= rank:
                    return False
                rank = key_rank
            elif key_kind is str and rank < 0 and key.isascii():
                if last_text is not None and (
                    len(key) < len(last_text) or (len(key) == len(last_text) and key <= last_text)
                ):
                    return False
                last_text = key
            else:
                return False
            if type(item) not in _PLAIN_SCALARS and not _is_plain_and_ordered(item):
                return False
        return True
    if kind is list:
        for item in value:
            if type(item) not in _PLAIN_SCALARS and not _is_plain_and_ordered(item):
                return False
        return True
    return kind in _PLAIN_SCALARS


def decode_map(data: bytes) -> dict[Any, Any]:
    """Decode a command's parameters: absent parameters read as an empty map."""
    if not data:
        return {}
    value = decode(data)
    if not isinstance(value, dict):
        raise CtapError(CtapStatus.CBOR_UNEXPECTED_TYPE, "parameters are not a map")
    return value


def encode(value: Any) -> bytes:
    return cbor2.dumps(value, canonical=True)


def _int_key_order(item: tuple[int, Any]) -> tuple[int, bool, int]:
    """An integer key's place in canonical order: encoded length, then major type, then value
    (the bytewise order of the encoded keys)."""
    key = item[0]
    value = key if key >= 0 else -1 - key
    if value < 24:
        length = 1
    elif value < 0x100:
        length = 2
    elif value < 0x10000:
        length = 3
    else:
        length = 5 if value < 0x100000000 else 9  # up to 2**64 - 1; beyond, a bignum tag
    return length, key < 0, value


def encode_internal(value: Any) -> bytes:
    """Encode our own records (sealed secrets, wrapped IDs): read only by us, so key order is
    irrelevant and the canonical sort is skipped."""
    return cbor2.dumps(value)


_ONE_BYTE_KEY_RANKS: Final = {key: key if key >= 0 else 31 - key for key in range(-24, 24)}
"""The encoded byte of each integer key that encodes in one byte: its rank in canonical order."""


def _in_one_byte_key_order(response: dict[int, Any]) -> bool:
    """Whether the keys are one-byte integers already in canonical order (the usual case)."""
    previous = -1
    for key in response:
        rank = _ONE_BYTE_KEY_RANKS.get(key)
        if rank is None or rank <= previous:
            return False
        previous = rank
    return True


def encode_response(response: dict[int, Any], *, verify: bool = False) -> bytes:
    """Encode an integer-keyed map whose nested maps were built in canonical order.

    Only the top level is sorted here, and only when its keys are out of order (handlers may
    add optional keys in any order); a canonical re-encode of the whole tree costs three times
    as much. ``verify`` (strict mode, so every test) checks the result against the full
    canonical encoding.
    """
    if not _in_one_byte_key_order(response):
        response = dict(sorted(response.items(), key=_int_key_order))
    encoded = cbor2.dumps(response)
    if verify and encoded != encode(response):
        raise AssertionError("a response map was not built in canonical key order")
    return encoded


def loads_lenient(data: bytes) -> Any:
    """Decode without the canonical check (for reading our own stored records)."""
    return cbor2.loads(data)
