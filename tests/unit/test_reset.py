"""authenticatorReset (CTAP 2.1 §6.6): a touch is required, only within the profile's window
after power-up (NOT_ALLOWED after it), and it wipes credentials, the PIN and its retries,
large blobs, authenticatorConfig settings and runtime tokens, while the device's attestation
identity survives."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import cbor2
import pytest

from authenticator import (
    SECURITY_KEY,
    Authenticator,
    Command,
    CtapStatus,
    ManualClock,
    Presence,
    ScriptedPresence,
    Store,
)
from authenticator.commands import (
    ConfigSubCommand,
    GetAssertionKey,
    GetInfoKey,
    LargeBlobsKey,
    MakeCredentialResponseKey,
)
from authenticator.config_command import MESSAGE_PREFIX as CONFIG_PREFIX
from authenticator.large_blobs import EMPTY_ARRAY
from authenticator.large_blobs import MESSAGE_PREFIX as LARGE_BLOB_PREFIX
from authenticator.pin_token import Permission
from tests.pin_platform import PinPlatform, call

PIN = "4242"
EA_KEY = replace(SECURITY_KEY, enterprise_attestation=True, enterprise_rp_ids=("corp.example",))


def _info(auth: Authenticator) -> dict[int, Any]:
    return call(auth, Command.GET_INFO).body


def _serialized(array: list[Any]) -> bytes:
    data = cbor2.dumps(array, canonical=True)
    return data + hashlib.sha256(data).digest()[:16]


def _populate(platform: PinPlatform) -> dict[str, Any]:
    """A PIN, credentials, a large blob, every config setting, a live token."""
    auth = platform.auth
    assert platform.set_pin(PIN) is CtapStatus.OK
    token = platform.token(PIN, Permission.MC | Permission.LBW | Permission.ACFG, "example.com")
    assert isinstance(token, bytes)
    made = platform.make_credential(token, "example.com", b"alice")
    assert made.status is CtapStatus.OK
    wrapped = platform.make_credential(None, "example.com", b"bob", rk=False)
    assert wrapped.status is CtapStatus.OK
    token = platform.token(PIN, Permission.LBW | Permission.ACFG)
    assert isinstance(token, bytes)
    blob = _serialized([{1: b"x" * 40, 2: b"n" * 12, 3: 40}])
    message = LARGE_BLOB_PREFIX + (0).to_bytes(4, "little") + hashlib.sha256(blob).digest()
    k = LargeBlobsKey
    status = call(
        auth,
        Command.LARGE_BLOBS,
        {
            k.SET: blob,
            k.OFFSET: 0,
            k.LENGTH: len(blob),
            k.PIN_UV_AUTH_PARAM: platform.authenticate(token, message),
            k.PIN_UV_AUTH_PROTOCOL: platform.version,
        },
    ).status
    assert status is CtapStatus.OK
    for sub, params in [
        (ConfigSubCommand.ENABLE_ENTERPRISE_ATTESTATION, None),
        (ConfigSubCommand.TOGGLE_ALWAYS_UV, None),
        (ConfigSubCommand.SET_MIN_PIN_LENGTH, {1: 6, 2: ["example.com"]}),
    ]:
        request: dict[int, Any] = {1: sub, 3: platform.version}
        body = b""
        if params is not None:
            request[2] = params
            body = cbor2.dumps(params, canonical=True)
        request[4] = platform.authenticate(token, CONFIG_PREFIX + bytes([sub]) + body)
        assert call(auth, Command.CONFIG, request).status is CtapStatus.OK
    info = _info(auth)
    assert info[GetInfoKey.OPTIONS]["ep"] and info[GetInfoKey.OPTIONS]["alwaysUv"]
    assert info[GetInfoKey.MIN_PIN_LENGTH] == 6 and info[GetInfoKey.FORCE_PIN_CHANGE]
    return {"token": token, "blob": blob}


def _read_blob(auth: Authenticator) -> bytes:
    reply = call(auth, Command.LARGE_BLOBS, {LargeBlobsKey.GET: 1024, LargeBlobsKey.OFFSET: 0})
    assert reply.status is CtapStatus.OK
    data: bytes = reply.body[1]
    return data


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (Presence.DENIED, CtapStatus.OPERATION_DENIED),
        (Presence.TIMED_OUT, CtapStatus.USER_ACTION_TIMEOUT),
        (Presence.CANCELLED, CtapStatus.KEEPALIVE_CANCEL),
    ],
)
def test_reset_needs_the_users_touch(
    manual_clock: ManualClock, outcome: Presence, status: CtapStatus
) -> None:
    auth = Authenticator(config=EA_KEY, clock=manual_clock, strict=True)
    platform = PinPlatform(auth)
    _populate(platform)
    presence = ScriptedPresence([outcome])
    assert call(auth, Command.RESET, presence=presence).status is status
    assert [r.reason for r in presence.requests] == ["reset"]
    assert _info(auth)[GetInfoKey.OPTIONS]["clientPin"] is True  # nothing was wiped
    assert auth.store.discoverable_count() == 1


@pytest.mark.parametrize("window", [10.0, 3.0, 60.0])
def test_reset_window_comes_from_the_profile(manual_clock: ManualClock, window: float) -> None:
    config = replace(SECURITY_KEY, reset_window=window)
    auth = Authenticator(config=config, clock=manual_clock, strict=True)
    manual_clock.advance(window)
    assert call(auth, Command.RESET).status is CtapStatus.OK
    manual_clock.advance(0.5)
    asked = ScriptedPresence()
    assert call(auth, Command.RESET, presence=asked).status is CtapStatus.NOT_ALLOWED
    assert asked.requests == []  # refused before asking for a touch
    # A power cycle opens the window again.
    auth = Authenticator(auth.store, config=config, clock=manual_clock, strict=True)
    assert call(auth, Command.RESET).status is CtapStatus.OK


def test_reset_wipes_everything_but_the_attestation_identity(
    store: Store, manual_clock: ManualClock
) -> None:
    auth = Authenticator(store, config=EA_KEY, clock=manual_clock, strict=True)
    platform = PinPlatform(auth)
    made = _populate(platform)
    root = auth.attestation_root_pem()
    aaguid = _info(auth)[GetInfoKey.AAGUID]
    assert _read_blob(auth) == made["blob"]
    # A wrong PIN, so that retries are below the maximum before the reset.
    assert platform.token("000000") is CtapStatus.PIN_INVALID
    assert call(auth, Command.RESET).status is CtapStatus.OK

    info = _info(auth)
    options = info[GetInfoKey.OPTIONS]
    assert options["clientPin"] is False and options["alwaysUv"] is False
    assert options["ep"] is False and options["makeCredUvNotRqd"] is True
    assert info[GetInfoKey.MIN_PIN_LENGTH] == EA_KEY.min_pin_length
    assert info[GetInfoKey.FORCE_PIN_CHANGE] is False
    assert info[GetInfoKey.REMAINING_DISCOVERABLE_CREDENTIALS] == EA_KEY.max_resident_credentials
    assert platform.retries() == (EA_KEY.pin_retries, False)
    assert _read_blob(auth) == EMPTY_ARRAY
    assert auth.context.pin_token.grant is None
    assert store.credentials() == []
    k = GetAssertionKey
    request = {k.RP_ID: "example.com", k.CLIENT_DATA_HASH: bytes(32)}
    assert call(auth, Command.GET_ASSERTION, request).status is CtapStatus.NO_CREDENTIALS
    # The old token is gone with the PIN; a new PIN of the old length works (min back to 4).
    assert platform.set_pin(PIN) is CtapStatus.OK
    # The factory identity survives: same root, same AAGUID.
    assert auth.attestation_root_pem() == root and _info(auth)[GetInfoKey.AAGUID] == aaguid
    # So does a power cycle over the wiped store.
    again = Authenticator(store, config=EA_KEY, clock=manual_clock, strict=True)
    assert again.attestation_root_pem() == root
    assert _info(again)[GetInfoKey.OPTIONS]["clientPin"] is True


def test_reset_revokes_wrapped_credentials(manual_clock: ManualClock) -> None:
    auth = Authenticator(clock=manual_clock, strict=True)
    platform = PinPlatform(auth)
    made = platform.make_credential(None, "example.com", b"bob", rk=False)
    credential_id = made.body[MakeCredentialResponseKey.AUTH_DATA][55:]
    length = int.from_bytes(made.body[MakeCredentialResponseKey.AUTH_DATA][53:55], "big")
    descriptor = {"type": "public-key", "id": credential_id[:length]}
    k = GetAssertionKey
    request = {k.RP_ID: "example.com", k.CLIENT_DATA_HASH: bytes(32), k.ALLOW_LIST: [descriptor]}
    assert call(auth, Command.GET_ASSERTION, request).status is CtapStatus.OK
    assert call(auth, Command.RESET).status is CtapStatus.OK
    assert call(auth, Command.GET_ASSERTION, request).status is CtapStatus.NO_CREDENTIALS


def test_reset_clears_the_pin_lockout(manual_clock: ManualClock) -> None:
    auth = Authenticator(clock=manual_clock, strict=True)
    platform = PinPlatform(auth)
    assert platform.set_pin(PIN) is CtapStatus.OK
    for _ in range(2):
        assert platform.token("0000") is CtapStatus.PIN_INVALID
    assert platform.token("0000") is CtapStatus.PIN_AUTH_BLOCKED
    assert call(auth, Command.RESET).status is CtapStatus.OK
    assert platform.retries() == (SECURITY_KEY.pin_retries, False)
    assert platform.set_pin(PIN) is CtapStatus.OK
    assert isinstance(platform.token(PIN), bytes)
