"""authenticatorConfig (CTAP 2.1 §6.11) at the CBOR level: when a token is needed and how it
is checked (MAC over 32*0xff || 0x0d || subCommand || subCommandParams, acfg permission),
toggleAlwaysUv, setMinPINLength (monotonic, RP list, forceChangePin) and
enableEnterpriseAttestation."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import cbor2
import pytest

from authenticator import SECURITY_KEY, Authenticator, Command, CtapStatus, ManualClock
from authenticator.commands import (
    ConfigSubCommand,
    GetInfoKey,
    MakeCredentialKey,
    MakeCredentialResponseKey,
)
from authenticator.config_command import MAX_MIN_PIN_LENGTH, MESSAGE_PREFIX
from authenticator.pin_token import Permission
from tests.pin_platform import ES256, PinPlatform, Reply, call

Sub = ConfigSubCommand
PIN = "4242"
EA_KEY = replace(SECURITY_KEY, enterprise_attestation=True, enterprise_rp_ids=("corp.example",))


@pytest.fixture
def platform(manual_clock: ManualClock) -> PinPlatform:
    return PinPlatform(Authenticator(config=EA_KEY, clock=manual_clock, strict=True))


def config(
    platform: PinPlatform,
    sub: int,
    params: dict[int, Any] | None = None,
    token: bytes | None = None,
    *,
    protocol: int | None = None,
    mac: bytes | None = None,
) -> Reply:
    request: dict[int, Any] = {1: sub}
    body = b""
    if params is not None:
        request[2] = params
        body = cbor2.dumps(params, canonical=True)
    if token is not None or mac is not None:
        request[3] = platform.version if protocol is None else protocol
        message = MESSAGE_PREFIX + bytes([sub]) + body
        request[4] = mac or platform.authenticate(token or b"", message)
    return call(platform.auth, Command.CONFIG, request)


def options(platform: PinPlatform) -> dict[str, bool]:
    info: dict[str, bool] = call(platform.auth, Command.GET_INFO).body[GetInfoKey.OPTIONS]
    return info


def info(platform: PinPlatform) -> dict[int, Any]:
    return call(platform.auth, Command.GET_INFO).body


def acfg_token(platform: PinPlatform) -> bytes:
    if not options(platform)["clientPin"]:
        assert platform.set_pin(PIN) is CtapStatus.OK
    token = platform.token(PIN, Permission.ACFG)
    assert isinstance(token, bytes)
    return token


def test_an_unprotected_device_needs_no_token(platform: PinPlatform) -> None:
    assert options(platform)["alwaysUv"] is False
    assert config(platform, Sub.TOGGLE_ALWAYS_UV).status is CtapStatus.OK
    assert options(platform)["alwaysUv"] is True
    assert "makeCredUvNotRqd" not in options(platform)  # alwaysUv overrides it (§7.4)


def test_token_checks_in_order(platform: PinPlatform) -> None:
    token = acfg_token(platform)
    sub = Sub.TOGGLE_ALWAYS_UV
    assert config(platform, sub).status is CtapStatus.PUAT_REQUIRED
    missing_protocol = call(platform.auth, Command.CONFIG, {1: sub, 4: b"\x00" * 32})
    assert missing_protocol.status is CtapStatus.MISSING_PARAMETER
    assert config(platform, sub, token=token, protocol=3).status is CtapStatus.INVALID_PARAMETER
    assert config(platform, sub, mac=b"\x01" * 32).status is CtapStatus.PIN_AUTH_INVALID
    # The MAC covers the subcommand: one for setMinPINLength does not toggle alwaysUv.
    other = platform.authenticate(token, MESSAGE_PREFIX + bytes([Sub.SET_MIN_PIN_LENGTH]))
    assert config(platform, sub, mac=other).status is CtapStatus.PIN_AUTH_INVALID
    assert options(platform)["alwaysUv"] is False
    assert config(platform, sub, token=token).status is CtapStatus.OK
    assert options(platform)["alwaysUv"] is True


def test_the_token_needs_acfg(platform: PinPlatform) -> None:
    acfg_token(platform)
    token = platform.token(PIN, Permission.CM | Permission.LBW)
    assert isinstance(token, bytes)
    assert config(platform, Sub.TOGGLE_ALWAYS_UV, token=token).status is (
        CtapStatus.PIN_AUTH_INVALID
    )


def test_always_uv_without_any_uv_method_still_needs_a_token(platform: PinPlatform) -> None:
    assert config(platform, Sub.TOGGLE_ALWAYS_UV).status is CtapStatus.OK
    # alwaysUv on: every config command needs a token, which needs a PIN first.
    assert config(platform, Sub.TOGGLE_ALWAYS_UV).status is CtapStatus.PUAT_REQUIRED
    mc = {
        MakeCredentialKey.CLIENT_DATA_HASH: bytes(32),
        MakeCredentialKey.RP: {"id": "example.com"},
        MakeCredentialKey.USER: {"id": b"u"},
        MakeCredentialKey.PUB_KEY_CRED_PARAMS: ES256,
    }
    assert call(platform.auth, Command.MAKE_CREDENTIAL, mc).status is CtapStatus.PUAT_REQUIRED
    token = acfg_token(platform)
    assert config(platform, Sub.TOGGLE_ALWAYS_UV, token=token).status is CtapStatus.OK
    assert options(platform)["alwaysUv"] is False and options(platform)["makeCredUvNotRqd"]


def test_set_min_pin_length(platform: PinPlatform) -> None:
    sub = Sub.SET_MIN_PIN_LENGTH
    assert config(platform, sub, {1: 6}).status is CtapStatus.OK  # no PIN yet: no token
    assert info(platform)[GetInfoKey.MIN_PIN_LENGTH] == 6
    assert info(platform)[GetInfoKey.FORCE_PIN_CHANGE] is False
    assert platform.set_pin("12345") is CtapStatus.PIN_POLICY_VIOLATION
    assert platform.set_pin("123456") is CtapStatus.OK
    token = acfg_token_for(platform, "123456")
    cases: list[tuple[dict[int, Any], CtapStatus]] = [
        ({1: 5}, CtapStatus.PIN_POLICY_VIOLATION),  # only ever grows
        ({1: MAX_MIN_PIN_LENGTH + 1}, CtapStatus.PIN_POLICY_VIOLATION),
        ({2: ["a", "b", "c", "d", "e"]}, CtapStatus.PIN_POLICY_VIOLATION),  # > maxRPIDs
        ({2: ["a", 1]}, CtapStatus.CBOR_UNEXPECTED_TYPE),
        ({1: "7"}, CtapStatus.CBOR_UNEXPECTED_TYPE),
        ({1: 6}, CtapStatus.OK),  # the same length is fine
    ]
    for params, status in cases:
        assert config(platform, sub, params, token).status is status, params
    assert info(platform)[GetInfoKey.MIN_PIN_LENGTH] == 6
    assert info(platform)[GetInfoKey.FORCE_PIN_CHANGE] is False
    # A longer minimum than the current PIN forces a change.
    assert config(platform, sub, {1: 8}, token).status is CtapStatus.OK
    assert info(platform)[GetInfoKey.FORCE_PIN_CHANGE] is True
    assert platform.token("123456", Permission.GA) is CtapStatus.PIN_POLICY_VIOLATION
    assert platform.change_pin("123456", "1234567") is CtapStatus.PIN_POLICY_VIOLATION
    assert platform.change_pin("123456", "12345678") is CtapStatus.OK
    assert info(platform)[GetInfoKey.FORCE_PIN_CHANGE] is False


def acfg_token_for(platform: PinPlatform, pin: str) -> bytes:
    token = platform.token(pin, Permission.ACFG)
    assert isinstance(token, bytes)
    return token


def test_force_change_pin(platform: PinPlatform) -> None:
    sub = Sub.SET_MIN_PIN_LENGTH
    assert config(platform, sub, {3: True}).status is CtapStatus.PIN_NOT_SET
    token = acfg_token(platform)
    assert config(platform, sub, {3: True}, token).status is CtapStatus.OK
    assert info(platform)[GetInfoKey.FORCE_PIN_CHANGE] is True
    assert platform.change_pin(PIN, PIN) is CtapStatus.PIN_POLICY_VIOLATION  # must differ
    assert platform.change_pin(PIN, "9876") is CtapStatus.OK


def test_min_pin_length_rp_ids_feed_the_extension(platform: PinPlatform) -> None:
    token = acfg_token(platform)
    params = {1: 5, 2: ["listed.example"]}
    assert config(platform, Sub.SET_MIN_PIN_LENGTH, params, token).status is CtapStatus.OK
    outputs = {}
    for rp_id in ("listed.example", "other.example"):
        made = platform.make_credential(
            None, rp_id, b"u", rk=False, extensions={"minPinLength": True}
        )
        assert made.status is CtapStatus.OK
        outputs[rp_id] = made.body[MakeCredentialResponseKey.AUTH_DATA]
    assert cbor2.dumps({"minPinLength": 5}) in outputs["listed.example"]
    assert b"minPinLength" not in outputs["other.example"]


def test_enterprise_attestation(platform: PinPlatform) -> None:
    mc = {
        MakeCredentialKey.CLIENT_DATA_HASH: bytes(32),
        MakeCredentialKey.RP: {"id": "corp.example"},
        MakeCredentialKey.USER: {"id": b"u"},
        MakeCredentialKey.PUB_KEY_CRED_PARAMS: ES256,
        MakeCredentialKey.ENTERPRISE_ATTESTATION: 1,
    }
    assert options(platform)["ep"] is False
    assert call(platform.auth, Command.MAKE_CREDENTIAL, mc).status is CtapStatus.INVALID_PARAMETER
    assert config(platform, Sub.ENABLE_ENTERPRISE_ATTESTATION).status is CtapStatus.OK
    assert options(platform)["ep"] is True
    made = call(platform.auth, Command.MAKE_CREDENTIAL, mc)
    assert made.body[MakeCredentialResponseKey.EP_ATT] is True
    mc[MakeCredentialKey.RP] = {"id": "other.example"}
    ordinary = call(platform.auth, Command.MAKE_CREDENTIAL, mc)
    assert ordinary.status is CtapStatus.OK
    assert MakeCredentialResponseKey.EP_ATT not in ordinary.body
    mc[MakeCredentialKey.ENTERPRISE_ATTESTATION] = 2  # platform-managed: any RP
    assert call(platform.auth, Command.MAKE_CREDENTIAL, mc).body[MakeCredentialResponseKey.EP_ATT]
    mc[MakeCredentialKey.ENTERPRISE_ATTESTATION] = 3
    assert call(platform.auth, Command.MAKE_CREDENTIAL, mc).status is CtapStatus.INVALID_OPTION


@pytest.mark.parametrize("sub", [0, 4, Sub.VENDOR_PROTOTYPE])
def test_unknown_subcommands(platform: PinPlatform, sub: int) -> None:
    assert config(platform, sub).status is CtapStatus.INVALID_SUBCOMMAND


def test_subcommands_the_profile_lacks(manual_clock: ManualClock) -> None:
    plain = PinPlatform(Authenticator(clock=manual_clock, strict=True))  # no EA
    status = config(plain, Sub.ENABLE_ENTERPRISE_ATTESTATION).status
    assert status is CtapStatus.INVALID_SUBCOMMAND
    assert "ep" not in options(plain)
    no_always_uv = replace(SECURITY_KEY, always_uv=None)
    platform = PinPlatform(Authenticator(config=no_always_uv, clock=manual_clock))
    assert config(platform, Sub.TOGGLE_ALWAYS_UV).status is CtapStatus.INVALID_SUBCOMMAND
    assert "alwaysUv" not in options(platform)


def test_config_settings_persist_across_power_cycles(platform: PinPlatform) -> None:
    token = acfg_token(platform)
    assert config(platform, Sub.TOGGLE_ALWAYS_UV, token=token).status is CtapStatus.OK
    assert config(platform, Sub.SET_MIN_PIN_LENGTH, {1: 7}, token).status is CtapStatus.OK
    again = PinPlatform(Authenticator(platform.auth.store, config=EA_KEY, strict=True))
    assert options(again)["alwaysUv"] is True
    assert info(again)[GetInfoKey.MIN_PIN_LENGTH] == 7
