"""authenticatorMakeCredential: parameter validation in the spec's order, options, storage."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import cbor2
import pytest

from authenticator import (
    PLATFORM,
    SECURITY_KEY,
    AuthDataFlag,
    Authenticator,
    Command,
    CtapStatus,
    ManualClock,
    Presence,
    ScriptedPresence,
)
from authenticator.presence import NeedPresence

CDH = b"\x11" * 32
RP = {"id": "example.com", "name": "Example"}
USER = {"id": b"user-1", "name": "alice", "displayName": "Alice"}
ES256 = [{"type": "public-key", "alg": -7}]


def request(**overrides: Any) -> dict[int, Any]:
    params: dict[int, Any] = {1: CDH, 2: RP, 3: USER, 4: ES256}
    for key, value in overrides.items():
        index = int(key[1:])
        if value is None:
            params.pop(index, None)
        else:
            params[index] = value
    return params


def call(
    auth: Authenticator, params: dict[int, Any], presence: Any = None
) -> tuple[CtapStatus, Any]:
    message = bytes([Command.MAKE_CREDENTIAL]) + cbor2.dumps(params, canonical=True)
    response = auth.call(message, presence) if presence else auth.call(message)
    status = CtapStatus(response[0])
    return status, cbor2.loads(response[1:]) if len(response) > 1 else None


@pytest.fixture
def auth() -> Authenticator:
    return Authenticator(strict=True, attestation="none")


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({"k1": None}, CtapStatus.MISSING_PARAMETER),
        ({"k2": None}, CtapStatus.MISSING_PARAMETER),
        ({"k3": None}, CtapStatus.MISSING_PARAMETER),
        ({"k4": None}, CtapStatus.MISSING_PARAMETER),
        ({"k1": "not bytes"}, CtapStatus.CBOR_UNEXPECTED_TYPE),
        ({"k1": b"short"}, CtapStatus.INVALID_LENGTH),
        ({"k2": {"name": "no id"}}, CtapStatus.MISSING_PARAMETER),
        ({"k2": {"id": 5}}, CtapStatus.CBOR_UNEXPECTED_TYPE),
        ({"k3": {"id": "text id"}}, CtapStatus.CBOR_UNEXPECTED_TYPE),
        ({"k3": {"id": b"x" * 65}}, CtapStatus.INVALID_LENGTH),
        ({"k3": {"id": b"x", "displayName": 3}}, CtapStatus.CBOR_UNEXPECTED_TYPE),
        ({"k4": [{"type": "public-key"}]}, CtapStatus.MISSING_PARAMETER),
        ({"k4": [{"type": "public-key", "alg": "ES256"}]}, CtapStatus.CBOR_UNEXPECTED_TYPE),
        ({"k4": [{"type": "public-key", "alg": -65535}]}, CtapStatus.UNSUPPORTED_ALGORITHM),
        ({"k4": [{"type": "other", "alg": -7}]}, CtapStatus.UNSUPPORTED_ALGORITHM),
        ({"k4": []}, CtapStatus.UNSUPPORTED_ALGORITHM),
        ({"k5": [{"type": "public-key"}]}, CtapStatus.MISSING_PARAMETER),
        ({"k5": [{"type": "public-key", "id": b"x"}] * 9}, CtapStatus.LIMIT_EXCEEDED),
        ({"k7": {"up": False}}, CtapStatus.INVALID_OPTION),
        ({"k7": {"rk": 1}}, CtapStatus.CBOR_UNEXPECTED_TYPE),
        ({"k7": {"uv": True}}, CtapStatus.INVALID_OPTION),
        ({"k8": b"\x00" * 16}, CtapStatus.MISSING_PARAMETER),
        ({"k8": b"\x00" * 16, "k9": 7}, CtapStatus.INVALID_PARAMETER),
    ],
)
def test_invalid_requests_get_the_spec_status(
    auth: Authenticator, overrides: dict[str, Any], status: CtapStatus
) -> None:
    presence = ScriptedPresence()
    assert call(auth, request(**overrides), presence)[0] is status
    assert presence.requests == []  # rejected before anyone was asked to touch


def test_first_supported_algorithm_in_rp_order_is_chosen(auth: Authenticator) -> None:
    params = request(
        k4=[
            {"type": "public-key", "alg": -999},
            {"type": "public-key", "alg": -8},
            {"type": "public-key", "alg": -7},
        ]
    )
    status, response = call(auth, params)
    assert status is CtapStatus.OK
    auth_data = response[2]
    cred_id_len = int.from_bytes(auth_data[53:55], "big")
    cose = cbor2.loads(auth_data[55 + cred_id_len :])
    assert cose[3] == -8


def test_unknown_options_and_extensions_are_ignored(auth: Authenticator) -> None:
    status, _ = call(auth, request(k6={"unknownExt": True}, k7={"future": True}))
    assert status is CtapStatus.OK


def test_names_are_truncated_to_64_bytes_at_a_character_boundary(auth: Authenticator) -> None:
    long_name = "é" * 40  # 80 bytes in UTF-8
    status, _ = call(auth, request(k3={"id": b"u", "name": long_name}, k7={"rk": True}))
    assert status is CtapStatus.OK
    (stored,) = auth.store.discoverable("example.com")
    assert stored.user_name == "é" * 32


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (Presence.DENIED, CtapStatus.OPERATION_DENIED),
        (Presence.TIMED_OUT, CtapStatus.USER_ACTION_TIMEOUT),
        (Presence.CANCELLED, CtapStatus.KEEPALIVE_CANCEL),
    ],
)
def test_presence_outcomes_become_status_codes_and_store_nothing(
    auth: Authenticator, outcome: Presence, status: CtapStatus
) -> None:
    assert call(auth, request(k7={"rk": True}), ScriptedPresence([outcome]))[0] is status
    assert auth.store.discoverable("example.com") == []
    assert call(auth, request(k7={"rk": True}))[0] is CtapStatus.OK


def test_excluded_credential_waits_for_a_touch_then_answers_excluded(auth: Authenticator) -> None:
    _, response = call(auth, request())
    auth_data = response[2]
    credential_id = auth_data[55 : 55 + int.from_bytes(auth_data[53:55], "big")]
    for outcome in (Presence.APPROVED, Presence.DENIED):
        presence = ScriptedPresence([outcome])
        params = request(k5=[{"type": "public-key", "id": credential_id}])
        assert call(auth, params, presence)[0] is CtapStatus.CREDENTIAL_EXCLUDED
        assert len(presence.requests) == 1
    # The same ID excludes nothing for another RP: it is bound to example.com.
    other = request(k2={"id": "other.example"}, k5=[{"type": "public-key", "id": credential_id}])
    assert call(auth, other)[0] is CtapStatus.OK


def test_key_store_full() -> None:
    auth = Authenticator(config=replace(SECURITY_KEY, max_resident_credentials=2), strict=True)
    for n in range(2):
        assert call(auth, request(k3={"id": bytes([n])}, k7={"rk": True}))[0] is CtapStatus.OK
    assert call(auth, request(k3={"id": b"\x09"}, k7={"rk": True}))[0] is CtapStatus.KEY_STORE_FULL
    # Overwriting an existing account needs no new slot.
    assert call(auth, request(k3={"id": b"\x00"}, k7={"rk": True}))[0] is CtapStatus.OK
    info = cbor2.loads(auth.call(b"\x04")[1:])
    assert info[0x14] == 0  # remainingDiscoverableCredentials


def test_platform_profile_verifies_the_user_and_makes_passkeys() -> None:
    auth = Authenticator(config=PLATFORM, strict=True)
    presence = ScriptedPresence()
    status, response = call(auth, request(k7={"uv": True}), presence)
    assert status is CtapStatus.OK
    assert presence.requests == [
        NeedPresence("example.com", user_verification=True, reason="register")
    ]
    assert response[2][32] & AuthDataFlag.UV
    assert len(auth.store.discoverable("example.com")) == 1  # discoverable without rk
    # A wrong finger: CTAP 2.1 §6.1.2 step 11.2.3 (no PIN to fall back to) -> OPERATION_DENIED.
    assert (
        call(auth, request(k7={"uv": True}), ScriptedPresence([Presence.UV_FAILED]))[0]
        is CtapStatus.OPERATION_DENIED
    )


def test_rk_unsupported_profile() -> None:
    auth = Authenticator(config=replace(SECURITY_KEY, resident_keys=False), strict=True)
    assert call(auth, request(k7={"rk": True}))[0] is CtapStatus.UNSUPPORTED_OPTION


def test_non_canonical_cbor_is_invalid_cbor(auth: Authenticator) -> None:
    params = cbor2.dumps(request(), canonical=True)
    reordered = (
        b"\xa4"
        + cbor2.dumps(2)[0:1]
        + cbor2.dumps(RP, canonical=True)
        + b"\x01"
        + cbor2.dumps(CDH)
        + b"\x03"
        + cbor2.dumps(USER, canonical=True)
        + b"\x04"
        + cbor2.dumps(ES256, canonical=True)
    )
    assert auth.call(bytes([Command.MAKE_CREDENTIAL]) + reordered)[0] == CtapStatus.INVALID_CBOR
    assert (
        auth.call(bytes([Command.MAKE_CREDENTIAL]) + params + b"\x00")[0] == CtapStatus.INVALID_CBOR
    )
    assert (
        auth.call(bytes([Command.MAKE_CREDENTIAL]) + b"\x81\x01")[0]
        == CtapStatus.CBOR_UNEXPECTED_TYPE
    )


def test_message_over_max_msg_size_is_request_too_large() -> None:
    auth = Authenticator(config=replace(SECURITY_KEY, max_msg_size=200), strict=True)
    big = request(k3={"id": b"u", "name": "x" * 300})
    assert call(auth, big)[0] is CtapStatus.REQUEST_TOO_LARGE


def test_unknown_command_is_invalid_command(auth: Authenticator) -> None:
    assert auth.call(b"\x03") == bytes([CtapStatus.INVALID_COMMAND])
    assert auth.call(b"\x55\xa0") == bytes([CtapStatus.INVALID_COMMAND])
    assert auth.call(b"") == bytes([CtapStatus.INVALID_LENGTH])


def test_unused_clock_is_accepted() -> None:
    assert Authenticator(clock=ManualClock(), strict=True).call(b"\x04")[0] == 0


@pytest.mark.parametrize("alg", [-7, -8, -19, -35, -257])
def test_cose_keys_are_built_in_canonical_order(alg: int) -> None:
    from authenticator import cbor
    from authenticator.keys import CoseAlgorithm, CredentialKey, SystemEntropy

    cose = CredentialKey.generate(CoseAlgorithm(alg), SystemEntropy()).cose_public_key()
    assert cbor.encode_response(cose) == cbor.encode(cose)


# -- built-in UV failing inside makeCredential (CTAP 2.1 §6.1.2 step 11.2.3) ----------------


def _set_pin(auth: Authenticator, pin: str = "4321") -> None:
    from fido2.ctap2 import ClientPin, Ctap2

    from transports.inprocess import InProcessDevice

    ClientPin(Ctap2(InProcessDevice(auth))).set_pin(pin)


def _uv_mc(auth: Authenticator, *outcomes: Presence) -> tuple[CtapStatus, ScriptedPresence]:
    presence = ScriptedPresence(outcomes)
    return call(auth, request(k7={"uv": True}), presence)[0], presence


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (Presence.UV_FAILED, CtapStatus.OPERATION_DENIED),
        (Presence.DENIED, CtapStatus.OPERATION_DENIED),
        (Presence.TIMED_OUT, CtapStatus.USER_ACTION_TIMEOUT),
        (Presence.CANCELLED, CtapStatus.KEEPALIVE_CANCEL),
    ],
)
def test_built_in_uv_failure_statuses_without_a_pin(outcome: Presence, status: CtapStatus) -> None:
    auth = Authenticator(config=PLATFORM, strict=True)
    assert _uv_mc(auth, outcome)[0] is status
    assert auth.store.discoverable("example.com") == []


def test_built_in_uv_retries_exhausted_is_pin_blocked() -> None:
    auth = Authenticator(config=PLATFORM, strict=True)
    for _ in range(PLATFORM.uv_retries - 1):
        assert _uv_mc(auth, Presence.UV_FAILED)[0] is CtapStatus.OPERATION_DENIED
    # The last retry spent: "If the uvRetries counter is 0, return CTAP2_ERR_PIN_BLOCKED".
    assert _uv_mc(auth, Presence.UV_FAILED)[0] is CtapStatus.PIN_BLOCKED
    # Blocked: answered without asking for a finger, still PIN_BLOCKED.
    status, presence = _uv_mc(auth)
    assert status is CtapStatus.PIN_BLOCKED
    assert presence.requests == []


def test_built_in_uv_failure_with_a_pin_set_is_puat_required() -> None:
    auth = Authenticator(config=replace(PLATFORM, client_pin=True), strict=True)
    _set_pin(auth)
    # The platform should fall back to the PIN (a pinUvAuthToken): PUAT_REQUIRED, also once
    # built-in UV is blocked; a timeout stays a timeout.
    assert _uv_mc(auth, Presence.TIMED_OUT)[0] is CtapStatus.USER_ACTION_TIMEOUT
    for _ in range(PLATFORM.uv_retries):
        assert _uv_mc(auth, Presence.UV_FAILED)[0] is CtapStatus.PUAT_REQUIRED
    status, presence = _uv_mc(auth)
    assert status is CtapStatus.PUAT_REQUIRED
    assert presence.requests == []


def test_built_in_uv_failure_when_the_pin_cannot_grant_mc() -> None:
    config = replace(PLATFORM, client_pin=True, no_mc_ga_permissions_with_client_pin=True)
    auth = Authenticator(config=config, strict=True)
    _set_pin(auth)
    assert _uv_mc(auth, Presence.UV_FAILED)[0] is CtapStatus.OPERATION_DENIED


def test_built_in_uv_failure_on_the_bio_profile() -> None:
    from tests.unit.test_bio_enrollment import Bio

    bio = Bio()
    bio.enroll()
    auth = bio.auth
    assert _uv_mc(auth, Presence.UV_FAILED)[0] is CtapStatus.OPERATION_DENIED  # no PIN yet
    _set_pin(auth)
    assert _uv_mc(auth, Presence.UV_FAILED)[0] is CtapStatus.PUAT_REQUIRED
    assert _uv_mc(auth, Presence.TIMED_OUT)[0] is CtapStatus.USER_ACTION_TIMEOUT
    assert _uv_mc(auth)[0] is CtapStatus.OK
