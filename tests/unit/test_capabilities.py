"""One capability profile drives getInfo, dispatch and processing: for every profile in
``authenticator.config.PROFILES``, getInfo (parsed by python-fido2's ``Info``) is checked
against behaviour. Every advertised command answers and every other one is INVALID_COMMAND;
every advertised option works and every absent feature is refused (subcommands:
INVALID_SUBCOMMAND; options: INVALID_OPTION) or, for extensions, ignored (CTAP 2.1 §6.1.2
step 15, WebAuthn §9)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import pytest
from fido2.ctap2 import Info
from fido2.webauthn import AuthenticatorData

from authenticator import PROFILES, Authenticator, AuthenticatorConfig, Command, CtapStatus
from authenticator.commands import (
    ClientPinSubCommand,
    ConfigSubCommand,
    GetAssertionKey,
    GetInfoKey,
    MakeCredentialKey,
    MakeCredentialResponseKey,
    SetMinPinLengthKey,
)
from authenticator.extensions import REGISTRY
from authenticator.pin_token import Permission
from tests.pin_platform import ES256, PinPlatform, call

PIN = "4242"
NOT_COMMANDS = [0x00, 0x03, 0x05, 0x0E, 0x10, 0x20, 0x3F, 0x42, 0x7F, 0xFF]
EXTENSION_INPUTS: dict[str, Any] = {
    "credProtect": 2,
    "hmac-secret": True,
    "credBlob": b"blob",
    "thirdPartyPayment": True,
}


VARIANTS: dict[str, AuthenticatorConfig] = {
    # A platform authenticator that always requires UV and cannot be told otherwise.
    "platform+alwaysUv": replace(PROFILES["platform"], always_uv=True),
    # A fingerprint key that answers only the CTAP 2.1 command 0x09, not the 0x40 prototype.
    "bio-security-key-0x40": replace(PROFILES["bio-security-key"], bio_enrollment_preview=False),
    # A YubiKey 5.2-like key: credential management under 0x0A and the 0x41 prototype.
    "security-key+0x41": replace(PROFILES["security-key"], credential_management_preview=True),
}
ALL_PROFILES = {**PROFILES, **VARIANTS}


@pytest.fixture(params=sorted(ALL_PROFILES), ids=str)
def profile(request: pytest.FixtureRequest) -> AuthenticatorConfig:
    return ALL_PROFILES[request.param]


def _device(config: AuthenticatorConfig) -> tuple[Authenticator, Info]:
    auth = Authenticator(config=config, strict=True)
    reply = call(auth, Command.GET_INFO)
    assert reply.status is CtapStatus.OK
    return auth, Info.from_dict(reply.body)


def _advertised_commands(info: Info) -> set[int]:
    options = info.options
    commands: set[int] = {
        Command.MAKE_CREDENTIAL,
        Command.GET_ASSERTION,
        Command.GET_INFO,
        Command.RESET,
        Command.GET_NEXT_ASSERTION,
    }
    if "FIDO_2_1" in info.versions:
        commands.add(Command.SELECTION)
    if info.pin_uv_protocols:
        commands.add(Command.CLIENT_PIN)
    if options.get("credMgmt"):
        commands.add(Command.CREDENTIAL_MANAGEMENT)
    if "FIDO_2_1_PRE" in info.versions and options.get("credentialMgmtPreview"):
        commands.add(Command.CREDENTIAL_MANAGEMENT_PRE)
    if options.get("largeBlobs"):
        commands.add(Command.LARGE_BLOBS)
    if options.get("authnrCfg"):
        commands.add(Command.CONFIG)
    if "bioEnroll" in options:
        commands.add(Command.BIO_ENROLLMENT)
    if "FIDO_2_1_PRE" in info.versions and "userVerificationMgmtPreview" in options:
        # The FIDO_2_1_PRE prototype, answered beside 0x09 as YubiKeys do (python-fido2's
        # BioEnrollment.is_supported looks for exactly this pair).
        commands.add(Command.BIO_ENROLLMENT_PRE)
    return commands


def test_every_profile_is_a_fido2_device(profile: AuthenticatorConfig) -> None:
    _, info = _device(profile)
    assert "FIDO_2_0" in info.versions
    assert info.aaguid == profile.aaguid
    assert ("U2F_V2" in info.versions) is profile.u2f


def test_commands_answer_exactly_when_advertised(profile: AuthenticatorConfig) -> None:
    auth, info = _device(profile)
    advertised = _advertised_commands(info)
    for command in [*Command, *NOT_COMMANDS]:
        status = call(auth, command, {}).status
        known = status is not CtapStatus.INVALID_COMMAND
        assert known is (command in advertised), (hex(command), status)


def test_client_pin_subcommands_follow_the_options(profile: AuthenticatorConfig) -> None:
    auth, info = _device(profile)
    if not info.pin_uv_protocols:
        return
    options = info.options
    platform = PinPlatform(auth, info.pin_uv_protocols[0])
    sub = ClientPinSubCommand
    expected = {
        sub.GET_KEY_AGREEMENT: True,
        sub.GET_PIN_RETRIES: "clientPin" in options,
        sub.SET_PIN: "clientPin" in options,
        sub.CHANGE_PIN: "clientPin" in options,
        sub.GET_PIN_TOKEN: "clientPin" in options,
        sub.GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS: (
            "clientPin" in options and options.get("pinUvAuthToken") is True
        ),
        sub.GET_PIN_UV_AUTH_TOKEN_USING_UV_WITH_PERMISSIONS: (
            "uv" in options and options.get("pinUvAuthToken") is True
        ),
        sub.GET_UV_RETRIES: "uv" in options,
    }
    for subcommand, supported in expected.items():
        status = platform.client_pin(subcommand).status
        assert (status is not CtapStatus.INVALID_SUBCOMMAND) is supported, (subcommand, status)
    # Every advertised protocol works; others do not.
    for version in (1, 2):
        reply = PinPlatform(auth, version).client_pin(sub.GET_KEY_AGREEMENT)
        assert (reply.status is CtapStatus.OK) is (version in info.pin_uv_protocols)


def _mc(auth: Authenticator, **options: bool) -> CtapStatus:
    params = {
        MakeCredentialKey.CLIENT_DATA_HASH: bytes(32),
        MakeCredentialKey.RP: {"id": "example.com"},
        MakeCredentialKey.USER: {"id": b"u"},
        MakeCredentialKey.PUB_KEY_CRED_PARAMS: ES256,
        MakeCredentialKey.OPTIONS: options,
    }
    return call(auth, Command.MAKE_CREDENTIAL, params).status


def test_uv_and_rk_options(profile: AuthenticatorConfig) -> None:
    auth, info = _device(profile)
    uv = info.options.get("uv")
    status = _mc(auth, uv=True)
    if uv is True:
        assert status is CtapStatus.OK
    else:
        # Absent: no built-in UV. False: one exists but is not configured (bio, no finger).
        assert status is CtapStatus.INVALID_OPTION
    if info.options.get("rk"):
        assert _mc(auth, rk=True, uv=uv is True) is CtapStatus.OK
    assert _mc(auth, up=False) is CtapStatus.INVALID_OPTION  # never silent registration


def test_make_cred_uv_not_rqd(profile: AuthenticatorConfig) -> None:
    auth, info = _device(profile)
    if "clientPin" not in info.options:
        return
    assert PinPlatform(auth, info.pin_uv_protocols[0]).set_pin(PIN) is CtapStatus.OK
    status = _mc(auth)  # non-discoverable, no token
    if info.options.get("makeCredUvNotRqd"):
        assert status is CtapStatus.OK
    else:
        assert status is CtapStatus.PUAT_REQUIRED
    assert _mc(auth, rk=True) is CtapStatus.PUAT_REQUIRED


def test_config_options(profile: AuthenticatorConfig) -> None:
    auth, info = _device(profile)
    options = info.options
    if not options.get("authnrCfg"):
        assert call(auth, Command.CONFIG, {1: 1}).status is CtapStatus.INVALID_COMMAND
        return
    for sub, option in [
        (ConfigSubCommand.ENABLE_ENTERPRISE_ATTESTATION, "ep"),
        (ConfigSubCommand.SET_MIN_PIN_LENGTH, "setMinPINLength"),
        (ConfigSubCommand.TOGGLE_ALWAYS_UV, "alwaysUv"),  # last: then tokens are needed
    ]:
        status = call(auth, Command.CONFIG, {1: sub}).status  # unprotected: no token needed
        assert (status is CtapStatus.OK) is (option in options), (sub, status)
        assert (status is CtapStatus.INVALID_SUBCOMMAND) is (option not in options)


def test_token_permissions_follow_the_options(profile: AuthenticatorConfig) -> None:
    auth, info = _device(profile)
    options = info.options
    if not (options.get("pinUvAuthToken") and "clientPin" in options):
        return
    platform = PinPlatform(auth, info.pin_uv_protocols[0])
    assert platform.set_pin(PIN) is CtapStatus.OK
    for permission, option in [
        (Permission.CM, "credMgmt"),
        (Permission.BE, "bioEnroll"),
        (Permission.LBW, "largeBlobs"),
        (Permission.ACFG, "authnrCfg"),
        (Permission.PCMR, "perCredMgmtRO"),
    ]:
        granted = platform.token(PIN, permission)
        assert isinstance(granted, bytes) is (option in options), (permission, granted)
        if not isinstance(granted, bytes):
            assert granted is CtapStatus.UNAUTHORIZED_PERMISSION


def test_extensions_work_exactly_when_advertised(profile: AuthenticatorConfig) -> None:
    auth, info = _device(profile)
    advertised = set(info.extensions)
    assert advertised <= set(REGISTRY)
    uv = info.options.get("uv") is True
    for name, value in EXTENSION_INPUTS.items():
        user_id = hashlib.sha256(name.encode()).digest()[:16]
        params = {
            MakeCredentialKey.CLIENT_DATA_HASH: bytes(32),
            MakeCredentialKey.RP: {"id": "example.com"},
            MakeCredentialKey.USER: {"id": user_id},
            MakeCredentialKey.PUB_KEY_CRED_PARAMS: ES256,
            MakeCredentialKey.EXTENSIONS: {name: value},
            MakeCredentialKey.OPTIONS: {"rk": bool(info.options.get("rk")), "uv": uv},
        }
        reply = call(auth, Command.MAKE_CREDENTIAL, params)
        assert reply.status is CtapStatus.OK, (name, reply.status)  # unknown: ignored
        auth_data = AuthenticatorData(reply.body[MakeCredentialResponseKey.AUTH_DATA])
        outputs = auth_data.extensions or {}
        assert (name in outputs) is (name in advertised), name
    params = {
        MakeCredentialKey.CLIENT_DATA_HASH: bytes(32),
        MakeCredentialKey.RP: {"id": "example.com"},
        MakeCredentialKey.USER: {"id": b"lbk"},
        MakeCredentialKey.PUB_KEY_CRED_PARAMS: ES256,
        MakeCredentialKey.EXTENSIONS: {"largeBlobKey": True},
        MakeCredentialKey.OPTIONS: {"rk": True, "uv": uv},
    }
    if info.options.get("rk"):
        reply = call(auth, Command.MAKE_CREDENTIAL, params)
        has_key = MakeCredentialResponseKey.LARGE_BLOB_KEY in reply.body
        assert has_key is ("largeBlobKey" in advertised)
    if "hmac-secret-mc" in advertised:
        assert "hmac-secret" in advertised
    raw_info = call(auth, Command.GET_INFO).body
    if "credBlob" in advertised:
        assert raw_info[GetInfoKey.MAX_CRED_BLOB_LENGTH] == profile.max_cred_blob_length
    else:
        assert GetInfoKey.MAX_CRED_BLOB_LENGTH not in raw_info


def test_pin_complexity_policy_works_exactly_when_reported(profile: AuthenticatorConfig) -> None:
    """CTAP 2.2: getInfo pinComplexityPolicy present = the device has a policy, true = it is
    enforced; the extension is listed only where setMinPINLength can list RPs for it."""
    auth, info = _device(profile)
    listed = "pinComplexityPolicy" in info.extensions
    if "clientPin" not in info.options:
        assert info.pin_complexity_policy is None and not listed
        return
    if listed:
        assert info.pin_complexity_policy is not None and info.options.get("setMinPINLength")
    if info.pin_complexity_policy is not None and info.options.get("setMinPINLength"):
        params = {
            SetMinPinLengthKey.MIN_PIN_LENGTH_RPIDS: ["example.com"],
            SetMinPinLengthKey.PIN_COMPLEXITY_POLICY: True,
        }
        request = {1: ConfigSubCommand.SET_MIN_PIN_LENGTH, 2: params}
        assert call(auth, Command.CONFIG, request).status is CtapStatus.OK
        info = Info.from_dict(call(auth, Command.GET_INFO).body)
        assert info.pin_complexity_policy is True
    made = call(
        auth,
        Command.MAKE_CREDENTIAL,
        {
            MakeCredentialKey.CLIENT_DATA_HASH: bytes(32),
            MakeCredentialKey.RP: {"id": "example.com"},
            MakeCredentialKey.USER: {"id": b"pcp"},
            MakeCredentialKey.PUB_KEY_CRED_PARAMS: ES256,
            MakeCredentialKey.EXTENSIONS: {"pinComplexityPolicy": True},
        },
    )
    assert made.status is CtapStatus.OK
    outputs = AuthenticatorData(made.body[MakeCredentialResponseKey.AUTH_DATA]).extensions or {}
    assert outputs.get("pinComplexityPolicy", None) is (True if listed else None)
    status = PinPlatform(auth, info.pin_uv_protocols[0]).set_pin("123456")
    enforced = info.pin_complexity_policy is True
    assert status is (CtapStatus.PIN_POLICY_VIOLATION if enforced else CtapStatus.OK)


def test_get_next_assertion_exists_everywhere(profile: AuthenticatorConfig) -> None:
    auth, _ = _device(profile)
    assert call(auth, Command.GET_NEXT_ASSERTION).status is CtapStatus.NOT_ALLOWED
    k = GetAssertionKey
    request = {k.RP_ID: "example.com", k.CLIENT_DATA_HASH: bytes(32)}
    assert call(auth, Command.GET_ASSERTION, request).status is CtapStatus.NO_CREDENTIALS


def test_a_ctap_2_0_profile() -> None:
    auth, info = _device(PROFILES["ctap2.0-key"])
    assert "FIDO_2_1" not in info.versions and info.pin_uv_protocols == [1]
    for option in ("pinUvAuthToken", "credMgmt", "authnrCfg", "largeBlobs", "alwaysUv"):
        assert option not in info.options
    assert "makeCredUvNotRqd" not in info.options
    assert info.extensions == ["hmac-secret"]
    assert call(auth, Command.SELECTION).status is CtapStatus.INVALID_COMMAND
    platform = PinPlatform(auth, 1)
    assert platform.set_pin(PIN) is CtapStatus.OK
    # CTAP 2.0: every registration needs the PIN token once a PIN is set.
    assert _mc(auth) is CtapStatus.PUAT_REQUIRED
    token = platform.token(PIN)
    assert isinstance(token, bytes)
    assert platform.make_credential(token, "example.com", b"u").status is CtapStatus.OK
    assert platform.token(PIN, Permission.GA) is CtapStatus.INVALID_SUBCOMMAND


def test_always_uv_is_advertised_only_where_it_can_be_true(profile: AuthenticatorConfig) -> None:
    """CTAP 2.1 §6.4: "alwaysUv" present means the feature is supported; false is honest only
    where authenticatorConfig can turn it on. Where it is true, an assertion needs UV."""
    auth, info = _device(profile)
    always_uv = info.options.get("alwaysUv")
    if always_uv is False:
        assert info.options.get("authnrCfg") is True
    if always_uv is None:
        assert profile.always_uv is None or not profile.authenticator_config
        return
    k = GetAssertionKey
    request = {k.RP_ID: "example.com", k.CLIENT_DATA_HASH: bytes(32)}
    status = call(auth, Command.GET_ASSERTION, request).status
    if always_uv:
        if info.options.get("uv") is True:
            assert status is CtapStatus.NO_CREDENTIALS  # built-in UV was asked, then nothing
        else:
            assert status in (CtapStatus.PUAT_REQUIRED, CtapStatus.OPERATION_DENIED)
    else:
        assert status is CtapStatus.NO_CREDENTIALS


def test_the_platform_profile_does_not_offer_always_uv() -> None:
    _, info = _device(PROFILES["platform"])
    assert "alwaysUv" not in info.options and "authnrCfg" not in info.options
    _, info = _device(VARIANTS["platform+alwaysUv"])
    assert info.options["alwaysUv"] is True
    assert "makeCredUvNotRqd" not in info.options


def test_prototype_commands_are_advertised_as_real_keys_do(profile: AuthenticatorConfig) -> None:
    from fido2.ctap2 import CredentialManagement
    from fido2.ctap2.bio import BioEnrollment

    auth, info = _device(profile)
    options = info.options
    prototypes = profile.bio_enrollment_preview or profile.credential_management_preview
    assert ("FIDO_2_1_PRE" in info.versions) is prototypes
    assert ("userVerificationMgmtPreview" in options) is profile.bio_enrollment_preview
    assert ("credentialMgmtPreview" in options) is profile.credential_management_preview
    if profile.bio_enrollment_preview:
        assert options["userVerificationMgmtPreview"] is options["bioEnroll"]
    assert BioEnrollment.is_supported(info) is profile.bio_enrollment
    for command, on in [
        (Command.BIO_ENROLLMENT_PRE, profile.bio_enrollment_preview),
        (Command.CREDENTIAL_MANAGEMENT_PRE, profile.credential_management_preview),
    ]:
        status = call(auth, command, {}).status
        assert (status is not CtapStatus.INVALID_COMMAND) is on, (hex(command), status)
    if profile.credential_management or profile.credential_management_preview:
        assert CredentialManagement.is_supported(info)


def test_the_0x40_prototype_is_a_separate_switch() -> None:
    bio = PROFILES["bio-security-key"]
    auth, info = _device(bio)
    assert info.versions == ["U2F_V2", "FIDO_2_0", "FIDO_2_1_PRE", "FIDO_2_1"]
    assert info.options["userVerificationMgmtPreview"] is False  # nothing enrolled yet
    assert call(auth, Command.BIO_ENROLLMENT_PRE, {}).status is not CtapStatus.INVALID_COMMAND
    auth, info = _device(VARIANTS["bio-security-key-0x40"])
    assert "FIDO_2_1_PRE" not in info.versions
    assert "userVerificationMgmtPreview" not in info.options and "bioEnroll" in info.options
    assert call(auth, Command.BIO_ENROLLMENT_PRE, {}).status is CtapStatus.INVALID_COMMAND
    assert call(auth, Command.BIO_ENROLLMENT, {}).status is not CtapStatus.INVALID_COMMAND


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_serialized_large_blob_array": 1023}, "at least 1024"),
        ({"max_cred_blob_length": 31}, "at least 32"),
        ({"min_pin_length": 3}, "at least 4"),
        ({"max_credential_count_in_list": 0}, "greater than zero"),
        ({"built_in_uv": True, "preferred_platform_uv_attempts": 0}, "greater than zero"),
        ({"bio_enrollment_preview": True}, "needs bio_enrollment"),
    ],
)
def test_a_profile_below_the_spec_minimums_is_refused(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        replace(PROFILES["security-key"], **changes)
    with pytest.raises(ValueError, match=message):
        AuthenticatorConfig(**changes)


def test_limits_of_disabled_features_are_not_checked() -> None:
    replace(PROFILES["security-key"], large_blobs=False, max_serialized_large_blob_array=0)
    replace(PROFILES["security-key"], extensions=("hmac-secret",), max_cred_blob_length=0)
    replace(PROFILES["security-key"], client_pin=False, min_pin_length=0)
    replace(PROFILES["security-key"], preferred_platform_uv_attempts=0)  # no built-in UV
    exact = replace(
        PROFILES["security-key"], max_serialized_large_blob_array=1024, max_cred_blob_length=32
    )
    _, info = _device(exact)
    assert info.max_large_blob == 1024 and info.max_cred_blob_length == 32
