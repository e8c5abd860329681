"""authenticatorLargeBlobs (CTAP 2.1 §6.10.2) step by step: statuses in the spec's order,
fragmentation, the integrity check, limits, and what survives a power cycle or a reset."""

from __future__ import annotations

import hashlib
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from authenticator import Authenticator, Command, CtapStatus, ManualClock, MemoryStore
from authenticator.commands import LargeBlobsKey as K
from authenticator.config import SECURITY_KEY, AuthenticatorConfig
from authenticator.large_blobs import EMPTY_ARRAY, FRAGMENT_OVERHEAD, integrity_ok

MAX_FRAGMENT = SECURITY_KEY.max_msg_size - FRAGMENT_OVERHEAD


def serialize(array: list[Any]) -> bytes:
    data = cbor2.dumps(array, canonical=True)
    return data + hashlib.sha256(data).digest()[:16]


def call(auth: Authenticator, params: dict[int, Any]) -> tuple[CtapStatus, Any]:
    response = auth.call(bytes([Command.LARGE_BLOBS]) + cbor2.dumps(params, canonical=True))
    status = CtapStatus(response[0])
    return status, cbor2.loads(response[1:]) if len(response) > 1 else None


def read_all(auth: Authenticator) -> bytes:
    status, body = call(auth, {K.GET: MAX_FRAGMENT, K.OFFSET: 0})
    assert status is CtapStatus.OK
    config: bytes = body[1]
    return config


def write(auth: Authenticator, data: bytes, fragment: int = 1000) -> list[CtapStatus]:
    statuses = []
    for offset in range(0, len(data), fragment):
        params: dict[int, Any] = {K.SET: data[offset : offset + fragment], K.OFFSET: offset}
        if offset == 0:
            params[K.LENGTH] = len(data)
        statuses.append(call(auth, params)[0])
    return statuses


def test_a_new_device_holds_the_empty_array() -> None:
    auth = Authenticator(strict=True)
    assert read_all(auth) == EMPTY_ARRAY
    # CTAP 2.1 §6.10.2 gives the initial value.
    assert bytes.fromhex("8076be8b528d0075f7aae98d6fa57a6d3c") == EMPTY_ARRAY
    assert integrity_ok(EMPTY_ARRAY)


def test_fragmented_write_then_fragmented_read() -> None:
    auth = Authenticator(strict=True)
    data = serialize([{1: b"x" * 900, 2: b"n" * 12, 3: 900}, {1: b"y" * 1500, 2: b"m" * 12, 3: 7}])
    assert write(auth, data, fragment=700) == [CtapStatus.OK] * -(-len(data) // 700)
    pieces = []
    for offset in range(0, len(data) + 1, 500):
        status, body = call(auth, {K.GET: 500, K.OFFSET: offset})
        assert status is CtapStatus.OK
        pieces.append(body[1])
    assert b"".join(pieces) == data


def test_the_array_changes_only_when_the_last_fragment_arrives() -> None:
    auth = Authenticator(strict=True)
    data = serialize([{1: b"z" * 2000}])
    call(auth, {K.SET: data[:1000], K.OFFSET: 0, K.LENGTH: len(data)})
    assert read_all(auth) == EMPTY_ARRAY  # a reader never sees half an array
    status, _ = call(auth, {K.SET: data[1000:], K.OFFSET: 1000})
    assert status is CtapStatus.OK
    assert read_all(auth) == data


def test_a_wrong_check_value_is_an_integrity_failure_and_keeps_the_old_array() -> None:
    auth = Authenticator(strict=True)
    good = serialize([{1: b"a"}])
    write(auth, good)
    bad = good[:-1] + bytes([good[-1] ^ 1])
    assert write(auth, bad) == [CtapStatus.INTEGRITY_FAILURE]
    assert read_all(auth) == good


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({K.OFFSET: 0}, CtapStatus.INVALID_PARAMETER),  # neither get nor set
        ({K.GET: 10, K.SET: b"x", K.OFFSET: 0}, CtapStatus.INVALID_PARAMETER),  # both
        ({K.GET: 10}, CtapStatus.INVALID_PARAMETER),  # offset is required (step 1)
        ({K.SET: EMPTY_ARRAY, K.LENGTH: len(EMPTY_ARRAY)}, CtapStatus.INVALID_PARAMETER),
        ({K.GET: 10, K.OFFSET: 0, K.PIN_UV_AUTH_PARAM: b"x" * 32}, CtapStatus.INVALID_PARAMETER),
        ({K.GET: 10, K.OFFSET: 0, K.PIN_UV_AUTH_PROTOCOL: 2}, CtapStatus.INVALID_PARAMETER),
        ({K.GET: 10, K.OFFSET: 0, K.LENGTH: 5}, CtapStatus.INVALID_PARAMETER),
        ({K.GET: MAX_FRAGMENT + 1, K.OFFSET: 0}, CtapStatus.INVALID_LENGTH),
        ({K.GET: 1, K.OFFSET: len(EMPTY_ARRAY) + 1}, CtapStatus.INVALID_PARAMETER),
        ({K.GET: -1, K.OFFSET: 0}, CtapStatus.CBOR_UNEXPECTED_TYPE),
        ({K.GET: "1", K.OFFSET: 0}, CtapStatus.CBOR_UNEXPECTED_TYPE),
        ({K.SET: "text", K.OFFSET: 0, K.LENGTH: 17}, CtapStatus.CBOR_UNEXPECTED_TYPE),
        (
            {K.SET: b"x" * (MAX_FRAGMENT + 1), K.OFFSET: 0, K.LENGTH: 9000},
            CtapStatus.INVALID_LENGTH,
        ),
        ({K.SET: b"x" * 17, K.OFFSET: 0}, CtapStatus.INVALID_PARAMETER),  # no length
        ({K.SET: b"x" * 16, K.OFFSET: 0, K.LENGTH: 16}, CtapStatus.INVALID_PARAMETER),  # < 17
        ({K.SET: b"x", K.OFFSET: 0, K.LENGTH: 4097}, CtapStatus.LARGE_BLOB_STORAGE_FULL),
        ({K.SET: b"x", K.OFFSET: 5}, CtapStatus.INVALID_SEQ),  # no write in progress
        ({K.SET: b"x" * 20, K.OFFSET: 0, K.LENGTH: 17}, CtapStatus.INVALID_PARAMETER),  # overflow
    ],
)
def test_malformed_requests(params: dict[int, Any], status: CtapStatus) -> None:
    auth = Authenticator(strict=True)
    assert call(auth, params)[0] is status
    assert read_all(auth) == EMPTY_ARRAY


def test_length_is_only_for_the_first_fragment_and_offsets_must_be_contiguous() -> None:
    auth = Authenticator(strict=True)
    data = serialize([{1: b"q" * 300}])
    assert call(auth, {K.SET: data[:100], K.OFFSET: 0, K.LENGTH: len(data)})[0] is CtapStatus.OK
    assert call(auth, {K.SET: data[100:200], K.OFFSET: 100, K.LENGTH: len(data)})[0] is (
        CtapStatus.INVALID_PARAMETER
    )
    # CTAP 2.1 §6.10.2 step 5.c failed before anything changed: expectedNextOffset is still
    # 100, so the same fragment sent right is accepted and the write completes.
    assert call(auth, {K.SET: data[100:200], K.OFFSET: 100})[0] is CtapStatus.OK
    assert call(auth, {K.SET: data[200:], K.OFFSET: 200})[0] is CtapStatus.OK
    assert read_all(auth) == data


def test_an_overflowing_fragment_keeps_the_write_in_progress() -> None:
    auth = Authenticator(strict=True)
    data = serialize([{1: b"q" * 300}])
    assert call(auth, {K.SET: data[:100], K.OFFSET: 0, K.LENGTH: len(data)})[0] is CtapStatus.OK
    too_long = data[100:] + b"extra"
    assert call(auth, {K.SET: too_long, K.OFFSET: 100})[0] is CtapStatus.INVALID_PARAMETER
    assert call(auth, {K.SET: data[100:], K.OFFSET: 100})[0] is CtapStatus.OK
    assert read_all(auth) == data


def test_a_refused_first_fragment_keeps_the_write_in_progress() -> None:
    auth = Authenticator(strict=True)
    data = serialize([{1: b"q" * 300}])
    assert call(auth, {K.SET: data[:100], K.OFFSET: 0, K.LENGTH: len(data)})[0] is CtapStatus.OK
    # Steps 5.b.i-iii refuse before expectedLength/expectedNextOffset are set again.
    assert call(auth, {K.SET: data[:100], K.OFFSET: 0})[0] is CtapStatus.INVALID_PARAMETER
    assert call(auth, {K.SET: data[:10], K.OFFSET: 0, K.LENGTH: 16})[0] is (
        CtapStatus.INVALID_PARAMETER
    )
    assert call(auth, {K.SET: data[100:], K.OFFSET: 100})[0] is CtapStatus.OK
    assert read_all(auth) == data


def test_a_skipped_offset_is_invalid_seq() -> None:
    auth = Authenticator(strict=True)
    data = serialize([{1: b"q" * 300}])
    call(auth, {K.SET: data[:100], K.OFFSET: 0, K.LENGTH: len(data)})
    assert call(auth, {K.SET: data[101:], K.OFFSET: 101})[0] is CtapStatus.INVALID_SEQ


def test_another_command_abandons_a_write_in_progress() -> None:
    auth = Authenticator(strict=True)
    data = serialize([{1: b"q" * 300}])
    call(auth, {K.SET: data[:100], K.OFFSET: 0, K.LENGTH: len(data)})
    assert auth.call(bytes([Command.GET_INFO]))[0] == CtapStatus.OK
    assert call(auth, {K.SET: data[100:], K.OFFSET: 100})[0] is CtapStatus.INVALID_SEQ
    assert read_all(auth) == EMPTY_ARRAY


def test_a_new_first_fragment_restarts_the_write() -> None:
    auth = Authenticator(strict=True)
    first, second = serialize([{1: b"a" * 300}]), serialize([{1: b"b" * 50}])
    call(auth, {K.SET: first[:100], K.OFFSET: 0, K.LENGTH: len(first)})
    assert write(auth, second) == [CtapStatus.OK]
    assert read_all(auth) == second


def test_the_array_survives_a_power_cycle_and_reset_wipes_it() -> None:
    store, clock = MemoryStore(), ManualClock()
    auth = Authenticator(store, clock=clock, strict=True)
    data = serialize([{1: b"keep me"}])
    write(auth, data)
    rebooted = Authenticator(store, clock=clock, strict=True)
    assert read_all(rebooted) == data
    assert rebooted.call(bytes([Command.RESET]))[0] == CtapStatus.OK
    assert read_all(rebooted) == EMPTY_ARRAY


def test_the_profile_limit_is_enforced_and_advertised() -> None:
    config = AuthenticatorConfig(max_serialized_large_blob_array=1024)
    auth = Authenticator(config=config, strict=True)
    info = cbor2.loads(auth.call(bytes([Command.GET_INFO]))[1:])
    assert info[0x0B] == 1024
    assert info[0x04]["largeBlobs"] is True
    assert call(auth, {K.SET: b"x", K.OFFSET: 0, K.LENGTH: 1025})[0] is (
        CtapStatus.LARGE_BLOB_STORAGE_FULL
    )
    data = serialize([{1: b"f" * 990}])
    assert len(data) <= 1024
    assert write(auth, data) == [CtapStatus.OK, CtapStatus.OK]
    assert read_all(auth) == data


def test_a_profile_without_large_blobs_has_no_command_and_no_option() -> None:
    auth = Authenticator(config=AuthenticatorConfig(large_blobs=False), strict=True)
    info = cbor2.loads(auth.call(bytes([Command.GET_INFO]))[1:])
    assert "largeBlobs" not in info[0x04]
    assert 0x0B not in info
    assert "largeBlobKey" not in info.get(0x02, [])
    assert call(auth, {K.GET: 1, K.OFFSET: 0})[0] is CtapStatus.INVALID_COMMAND


# -- arbitrary input ------------------------------------------------------------------------

fuzz_auth = Authenticator(strict=True)  # one device across examples: its state must survive
cbor_values = st.recursive(
    st.one_of(
        st.integers(-(2**64), 2**64 - 1),
        st.binary(max_size=60),
        st.text(max_size=10),
        st.booleans(),
        st.none(),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.integers(-3, 10), st.text(max_size=4)), inner, max_size=5),
    ),
    max_leaves=15,
)


def _still_serving() -> None:
    info = fuzz_auth.call(bytes([Command.GET_INFO]))
    assert info[0] == CtapStatus.OK
    assert integrity_ok(read_all(fuzz_auth))


@given(body=st.binary(max_size=300))
def test_arbitrary_bytes_give_a_status(body: bytes) -> None:
    response = fuzz_auth.call(bytes([Command.LARGE_BLOBS]) + body)
    assert CtapStatus(response[0]) is CtapStatus.OK or len(response) == 1
    _still_serving()


@given(
    params=st.dictionaries(st.integers(0, 8), cbor_values, max_size=7),
    offset=st.one_of(st.none(), st.integers(0, 40)),
)
def test_arbitrary_cbor_gives_a_status(params: dict[int, Any], offset: int | None) -> None:
    if offset is not None:
        params[K.OFFSET] = offset  # reach past the presence checks more often
    response = fuzz_auth.call(bytes([Command.LARGE_BLOBS]) + cbor2.dumps(params, canonical=True))
    assert CtapStatus(response[0]) is CtapStatus.OK or len(response) == 1
    _still_serving()
