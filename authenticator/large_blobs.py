"""authenticatorLargeBlobs (CTAP 2.1 §6.10): the serialized large-blob array, read and
written in fragments.

The array is opaque to the authenticator except for its integrity check: a CBOR array
followed by the first 16 bytes of SHA-256 over it. Platforms encrypt each entry with a
credential's ``largeBlobKey`` (extensions/large_blob_key.py); the device only stores bytes.

Theory of operation. Reads (``get``) are stateless: any slice of the committed array. A write
is a sequence of ``set`` fragments: the one at offset 0 announces the total ``length`` and
starts a ``PendingLargeBlobWrite`` in the context's single pending slot; each next fragment
must start where the last ended (else INVALID_SEQ). When the buffer reaches ``length`` its
integrity check is verified and the whole array is replaced in one store write, so a reader
never sees a half-written array. Any command other than authenticatorLargeBlobs, a power
cycle or a new offset-0 fragment abandons the pending write, and a failed fragment leaves
it where the spec's steps left it (``_set``); the committed array stays.
When the device is protected by user verification (a PIN, or enrolled built-in UV), every
fragment carries a pinUvAuthParam over ``32 * 0xff || 0c 00 || uint32LE(offset) ||
SHA-256(set)`` from a token with the largeBlobWrite permission.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from authenticator.commands import Command, LargeBlobsKey, LargeBlobsResponseKey
from authenticator.context import Context, Handler
from authenticator.pin_token import Permission
from authenticator.requests import optional
from authenticator.status import CtapError, CtapStatus
from authenticator.user_verification import (
    always_uv_enabled,
    is_protected,
    supported_pin_uv_protocols,
)

STATE_KEY: Final = "large_blobs/array"
TRUNCATED_HASH_SIZE: Final = 16
EMPTY_ARRAY: Final = b"\x80" + hashlib.sha256(b"\x80").digest()[:TRUNCATED_HASH_SIZE]
"""The initial array: an empty CBOR array and its check value (CTAP 2.1 §6.10.2)."""
MIN_ARRAY_LENGTH: Final = TRUNCATED_HASH_SIZE + 1  # the smallest array: 0x80 and its check
FRAGMENT_OVERHEAD: Final = 64  # CTAP 2.1 §6.10: maxFragmentLength = maxMsgSize - 64
MESSAGE_PREFIX: Final = b"\xff" * 32 + bytes([Command.LARGE_BLOBS, 0x00])


def integrity_ok(serialized: bytes) -> bool:
    """Whether ``serialized`` ends with the truncated SHA-256 of what precedes it."""
    if len(serialized) < MIN_ARRAY_LENGTH:
        return False
    data, check = serialized[:-TRUNCATED_HASH_SIZE], serialized[-TRUNCATED_HASH_SIZE:]
    return hashlib.sha256(data).digest()[:TRUNCATED_HASH_SIZE] == check


def serialized_array(ctx: Context) -> bytes:
    """The committed serialized large-blob array (the empty one after a reset)."""
    return ctx.store.get_state(STATE_KEY) or EMPTY_ARRAY


def max_fragment_length(ctx: Context) -> int:
    return ctx.config.max_msg_size - FRAGMENT_OVERHEAD


def _unsigned(params: Mapping[Any, Any], key: LargeBlobsKey, what: str) -> int | None:
    value = optional(params, key, int, what)
    if value is not None and value < 0:
        raise CtapError(CtapStatus.CBOR_UNEXPECTED_TYPE, f"{what} must be unsigned")
    return value


@dataclass(frozen=True, slots=True)
class LargeBlobsRequest:
    offset: int
    get: int | None = None
    set: bytes | None = field(default=None, repr=False)
    length: int | None = None
    pin_uv_auth_param: bytes | None = field(default=None, repr=False)
    pin_uv_auth_protocol: int | None = None

    @classmethod
    def parse(cls, params: Mapping[Any, Any]) -> LargeBlobsRequest:
        k = LargeBlobsKey
        get = _unsigned(params, k.GET, "get")
        set_ = optional(params, k.SET, bytes, "set")
        offset = _unsigned(params, k.OFFSET, "offset")
        length = _unsigned(params, k.LENGTH, "length")
        param = optional(params, k.PIN_UV_AUTH_PARAM, bytes, "pinUvAuthParam")
        protocol = _unsigned(params, k.PIN_UV_AUTH_PROTOCOL, "pinUvAuthProtocol")
        if offset is None:
            # CTAP 2.1 §6.10.2 steps 1-3: INVALID_PARAMETER (not MISSING_PARAMETER), like a
            # request with neither or both of get and set.
            raise CtapError(CtapStatus.INVALID_PARAMETER, "offset is missing")
        return cls(offset, get, set_, length, param, protocol)


@dataclass(eq=False)
class PendingLargeBlobWrite:
    """A write in progress: the announced length and the fragments received so far."""

    continued_by: ClassVar[tuple[Command, ...]] = (Command.LARGE_BLOBS,)
    expected_length: int
    buffer: bytearray = field(default_factory=bytearray, repr=False)

    @property
    def expected_next_offset(self) -> int:
        return len(self.buffer)


def large_blobs(ctx: Context, req: LargeBlobsRequest) -> Handler[dict[int, Any] | None]:
    """CTAP 2.1 §6.10.2, in the spec's step order."""
    if (req.get is None) == (req.set is None):
        raise CtapError(CtapStatus.INVALID_PARAMETER, "exactly one of get and set")
    if req.get is not None:
        return _get(ctx, req, req.get)
    assert req.set is not None  # noqa: S101 - narrowed by the check above
    yield from _set(ctx, req, req.set)
    return None


def _get(ctx: Context, req: LargeBlobsRequest, count: int) -> dict[int, Any]:
    # A read leaves a write in progress alone: the spec keeps the two apart (§6.10.2).
    if req.length is not None:
        raise CtapError(CtapStatus.INVALID_PARAMETER, "length is only for set")
    if req.pin_uv_auth_param is not None or req.pin_uv_auth_protocol is not None:
        # Step 4.b: reads are never authenticated; a read carrying a token is malformed.
        raise CtapError(CtapStatus.INVALID_PARAMETER, "get takes no pinUvAuthParam/Protocol")
    if count > max_fragment_length(ctx):
        raise CtapError(CtapStatus.INVALID_LENGTH, "get exceeds maxFragmentLength")
    array = serialized_array(ctx)
    if req.offset > len(array):
        raise CtapError(CtapStatus.INVALID_PARAMETER, "offset is past the end of the array")
    return {LargeBlobsResponseKey.CONFIG: array[req.offset : req.offset + count]}


def _set(ctx: Context, req: LargeBlobsRequest, fragment: bytes) -> Handler[None]:
    """Step 5 (set). A failed fragment changes the write in progress only where the spec's
    steps already had: a first fragment with an acceptable ``length`` starts a new write
    (step 5.b.iv-v, before the token is checked at 5.e); any later failure leaves
    expectedNextOffset where it was, so the platform may send that fragment again."""
    if len(fragment) > max_fragment_length(ctx):
        raise CtapError(CtapStatus.INVALID_LENGTH, "set exceeds maxFragmentLength")
    pending = ctx.pending if isinstance(ctx.pending, PendingLargeBlobWrite) else None
    if req.offset == 0:
        if req.length is None:
            raise CtapError(CtapStatus.INVALID_PARAMETER, "the first fragment needs length")
        if req.length > ctx.config.max_serialized_large_blob_array:
            raise CtapError(CtapStatus.LARGE_BLOB_STORAGE_FULL, "length exceeds the maximum")
        if req.length < MIN_ARRAY_LENGTH:
            raise CtapError(CtapStatus.INVALID_PARAMETER, "length is below 17 bytes")
        pending = PendingLargeBlobWrite(req.length)
        ctx.pending = pending  # expectedLength and expectedNextOffset = 0
    elif req.length is not None:
        raise CtapError(CtapStatus.INVALID_PARAMETER, "length is only for the first fragment")
    if pending is None or req.offset != pending.expected_next_offset:
        raise CtapError(CtapStatus.INVALID_SEQ, "offset is not where the last fragment ended")
    message = MESSAGE_PREFIX + struct.pack("<I", req.offset) + hashlib.sha256(fragment).digest()
    yield from _authorize(ctx, req, message)
    if req.offset + len(fragment) > pending.expected_length:
        raise CtapError(CtapStatus.INVALID_PARAMETER, "fragments exceed the announced length")
    pending.buffer += fragment
    if pending.expected_next_offset < pending.expected_length:
        return None
    ctx.pending = None  # complete: committed below, or refused for its check value
    complete = bytes(pending.buffer)
    if not integrity_ok(complete):
        raise CtapError(CtapStatus.INTEGRITY_FAILURE, "the array's check value is wrong")
    ctx.store.put_state(STATE_KEY, complete)
    return None


def _authorize(ctx: Context, req: LargeBlobsRequest, message: bytes) -> Handler[None]:
    """CTAP 2.1 §6.10.2 set step 5: a device protected by user verification (or alwaysUv)
    needs a pinUvAuthToken with the largeBlobWrite permission for every fragment."""
    if not _protected(ctx):
        return
    if req.pin_uv_auth_param is None:
        raise CtapError(CtapStatus.PUAT_REQUIRED, "writes need a pinUvAuthToken")
    if req.pin_uv_auth_protocol is None:
        raise CtapError(CtapStatus.MISSING_PARAMETER, "pinUvAuthProtocol is missing")
    if req.pin_uv_auth_protocol not in supported_pin_uv_protocols(ctx):
        raise CtapError(CtapStatus.INVALID_PARAMETER, "unsupported pinUvAuthProtocol")
    # lbw ignores the token's RP ID (CTAP 2.1 permissions): any token with lbw will do.
    ctx.pin_token.authorize(
        req.pin_uv_auth_protocol, req.pin_uv_auth_param, message, Permission.LBW
    )
    yield from ()  # a generator, like every handler


def _protected(ctx: Context) -> bool:
    """A PIN is set, built-in UV is configured, or alwaysUv is on."""
    return is_protected(ctx) or always_uv_enabled(ctx)
