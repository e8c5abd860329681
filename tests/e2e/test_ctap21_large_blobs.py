"""authenticatorLargeBlobs through python-fido2's ``LargeBlobs`` and ``ClientPin``: the
whole-array API, per-credential blobs under largeBlobKeys, and the lbw permission once a PIN
protects the device (CTAP 2.1 §6.10.2 set step 5)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from fido2 import cbor
from fido2.ctap import CtapError as FidoCtapError
from fido2.ctap2 import ClientPin, Ctap2, LargeBlobs
from fido2.ctap2.pin import PinProtocolV1, PinProtocolV2

from authenticator import Authenticator, CtapStatus, ManualClock, MemoryStore
from authenticator.large_blobs import EMPTY_ARRAY, STATE_KEY
from transports.inprocess import InProcessDevice

PIN = "31415926"


def device(store: MemoryStore | None = None) -> Ctap2:
    return Ctap2(InProcessDevice(Authenticator(store, clock=ManualClock(), strict=True)))


def test_the_whole_array_round_trips_in_fragments(ctap2: Ctap2) -> None:
    blobs = LargeBlobs(ctap2)
    blobs.max_fragment_length = 100  # force many fragments each way
    array = [{1: os.urandom(200), 2: os.urandom(12), 3: 200} for _ in range(5)]
    blobs.write_blob_array(array)
    assert blobs.read_blob_array() == array
    assert LargeBlobs(ctap2).read_blob_array() == array


def test_per_credential_blobs_with_large_blob_keys(ctap2: Ctap2) -> None:
    keys = []
    for user in (b"a", b"b"):
        made = ctap2.make_credential(
            os.urandom(32),
            {"id": "example.com"},
            {"id": user, "name": "u"},
            [{"type": "public-key", "alg": -7}],
            extensions={"largeBlobKey": True},
            options={"rk": True},
        )
        assert made.large_blob_key is not None
        keys.append(made.large_blob_key)
    blobs = LargeBlobs(ctap2)
    blobs.put_blob(keys[0], b"first" * 100)
    blobs.put_blob(keys[1], b"second")
    assert blobs.get_blob(keys[0]) == b"first" * 100
    assert blobs.get_blob(keys[1]) == b"second"
    blobs.delete_blob(keys[0])
    assert blobs.get_blob(keys[0]) is None
    assert blobs.get_blob(keys[1]) == b"second"


def test_the_array_is_full_at_the_advertised_maximum(ctap2: Ctap2) -> None:
    limit = ctap2.info.max_large_blob
    assert limit == 4096
    blobs = LargeBlobs(ctap2)
    with pytest.raises(FidoCtapError) as error:
        blobs.write_blob_array([{1: bytes(limit)}])
    assert CtapStatus(error.value.code) is CtapStatus.LARGE_BLOB_STORAGE_FULL
    blobs.write_blob_array([{1: bytes(limit - 40)}])  # just fits
    assert len(blobs.read_blob_array()[0][1]) == limit - 40


@pytest.mark.parametrize("protocol", [PinProtocolV1, PinProtocolV2])
def test_a_pin_protected_device_needs_an_lbw_token(protocol: type[Any]) -> None:
    ctap2 = device()
    client_pin = ClientPin(ctap2, protocol())
    client_pin.set_pin(PIN)
    array = [{1: b"entry"}]
    with pytest.raises(FidoCtapError) as error:
        LargeBlobs(ctap2).write_blob_array(array)
    assert CtapStatus(error.value.code) is CtapStatus.PUAT_REQUIRED

    wrong = client_pin.get_pin_token(PIN, ClientPin.PERMISSION.GET_ASSERTION, "example.com")
    with pytest.raises(FidoCtapError) as error:
        LargeBlobs(ctap2, client_pin.protocol, wrong).write_blob_array(array)
    assert CtapStatus(error.value.code) is CtapStatus.PIN_AUTH_INVALID

    token = client_pin.get_pin_token(PIN, ClientPin.PERMISSION.LARGE_BLOB_WRITE)
    writer = LargeBlobs(ctap2, client_pin.protocol, token)
    writer.max_fragment_length = 50  # every fragment carries its own pinUvAuthParam
    writer.write_blob_array(array * 10)
    assert LargeBlobs(ctap2).read_blob_array() == array * 10  # reading needs no token


def test_reset_returns_the_empty_array() -> None:
    store = MemoryStore()
    ctap2 = device(store)
    LargeBlobs(ctap2).write_blob_array([{1: b"gone soon"}])
    assert store.get_state(STATE_KEY) is not None
    ctap2.reset()
    assert LargeBlobs(ctap2).read_blob_array() == []
    assert (store.get_state(STATE_KEY) or EMPTY_ARRAY) == EMPTY_ARRAY


def _fragment_param(client_pin: ClientPin, token: bytes, offset: int, fragment: bytes) -> bytes:
    message = b"\xff" * 32 + b"\x0c\x00" + offset.to_bytes(4, "little")
    return bytes(
        client_pin.protocol.authenticate(token, message + hashlib.sha256(fragment).digest())
    )


def test_a_read_carrying_a_token_is_invalid_parameter() -> None:
    """CTAP 2.1 §6.10.2 step 4.b: a get with pinUvAuthParam or pinUvAuthProtocol is refused."""
    ctap2 = device()
    client_pin = ClientPin(ctap2)
    client_pin.set_pin(PIN)
    token = client_pin.get_pin_token(PIN, ClientPin.PERMISSION.LARGE_BLOB_WRITE)
    version = client_pin.protocol.VERSION
    param = _fragment_param(client_pin, token, 0, b"")
    for extra in (
        {"pin_uv_param": param, "pin_uv_protocol": version},
        {"pin_uv_protocol": version},
    ):
        with pytest.raises(FidoCtapError) as error:
            ctap2.large_blobs(0, get=10, **extra)
        assert CtapStatus(error.value.code) is CtapStatus.INVALID_PARAMETER
    assert ctap2.large_blobs(0, get=100)[1] == EMPTY_ARRAY


def test_a_fragment_refused_for_its_token_can_be_sent_again() -> None:
    """A wrong pinUvAuthParam (step 5.e) leaves expectedNextOffset alone: the platform sends
    the same fragment again with a good one and the write completes."""
    ctap2 = device()
    client_pin = ClientPin(ctap2)
    client_pin.set_pin(PIN)
    token = client_pin.get_pin_token(PIN, ClientPin.PERMISSION.LARGE_BLOB_WRITE)
    version = client_pin.protocol.VERSION
    data = cbor.encode([{1: b"kept"}])
    array = data + hashlib.sha256(data).digest()[:16]
    first, rest = array[:10], array[10:]
    param = _fragment_param(client_pin, token, 0, first)
    ctap2.large_blobs(0, set=first, length=len(array), pin_uv_param=param, pin_uv_protocol=version)
    with pytest.raises(FidoCtapError) as error:
        ctap2.large_blobs(10, set=rest, pin_uv_param=param, pin_uv_protocol=version)
    assert CtapStatus(error.value.code) is CtapStatus.PIN_AUTH_INVALID
    param = _fragment_param(client_pin, token, 10, rest)
    ctap2.large_blobs(10, set=rest, pin_uv_param=param, pin_uv_protocol=version)
    assert LargeBlobs(ctap2).read_blob_array() == [{1: b"kept"}]
