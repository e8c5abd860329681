"""authenticatorClientPIN (CTAP 2.1 §6.5.5) at the CBOR level: every subcommand, each error in
the spec's step order, the PIN rules, retries and lockouts across power cycles. python-fido2's
PinProtocolV1/V2 are the platform peer (tests/pin_platform.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from authenticator import (
    PLATFORM,
    SECURITY_KEY,
    Authenticator,
    Command,
    CtapStatus,
    ManualClock,
    MemoryStore,
    Presence,
    ScriptedPresence,
    Store,
)
from authenticator.client_pin import ClientPinRequest
from authenticator.commands import ClientPinResponseKey, ClientPinSubCommand
from authenticator.pin_token import Permission
from tests.pin_platform import PinPlatform, call, padded, pin_hash

Sub = ClientPinSubCommand
PIN = "4242"
OFF_CURVE = {1: 2, 3: -25, -1: 1, -2: b"\x01" * 32, -3: b"\x02" * 32}


@pytest.fixture(params=[1, 2], ids=["protocol1", "protocol2"])
def version(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def auth(manual_clock: ManualClock) -> Authenticator:
    return Authenticator(clock=manual_clock, strict=True)


@pytest.fixture
def platform(auth: Authenticator, version: int) -> PinPlatform:
    return PinPlatform(auth, version)


def _with_pin(platform: PinPlatform, pin: str = PIN) -> PinPlatform:
    assert platform.set_pin(pin) is CtapStatus.OK
    return platform


# -- request parsing and dispatch -----------------------------------------------------------


def test_subcommand_is_required_and_typed(auth: Authenticator) -> None:
    assert call(auth, Command.CLIENT_PIN, {1: 2}).status is CtapStatus.MISSING_PARAMETER
    assert call(auth, Command.CLIENT_PIN, {2: "x"}).status is CtapStatus.CBOR_UNEXPECTED_TYPE
    reply = call(auth, Command.CLIENT_PIN, {1: 2, 2: 2, 9: -1})
    assert reply.status is CtapStatus.CBOR_UNEXPECTED_TYPE  # permissions is unsigned


@pytest.mark.parametrize("sub", [0, 8, 0x0A, 0xFF])
def test_unknown_subcommands(platform: PinPlatform, sub: int) -> None:
    assert platform.client_pin(sub).status is CtapStatus.INVALID_SUBCOMMAND


def test_uv_subcommands_need_built_in_uv(platform: PinPlatform) -> None:
    # The security key has no built-in UV: those subcommands do not exist on it.
    for sub in (Sub.GET_UV_RETRIES, Sub.GET_PIN_UV_AUTH_TOKEN_USING_UV_WITH_PERMISSIONS):
        assert platform.client_pin(sub).status is CtapStatus.INVALID_SUBCOMMAND


def test_request_repr_hides_secrets() -> None:
    request = ClientPinRequest(3, 2, {1: 2}, b"\xaa" * 32, b"\xbb" * 64, b"\xcc" * 16)
    text = repr(request)
    assert "aa" * 4 not in text and "bb" * 4 not in text and "cc" * 4 not in text


# -- getPINRetries, getKeyAgreement ----------------------------------------------------------


def test_get_pin_retries_on_a_new_device(platform: PinPlatform) -> None:
    assert platform.retries() == (SECURITY_KEY.pin_retries, False)


def test_get_key_agreement(platform: PinPlatform, version: int) -> None:
    assert platform.client_pin(Sub.GET_KEY_AGREEMENT, protocol=None).status is (
        CtapStatus.MISSING_PARAMETER
    )
    assert platform.client_pin(Sub.GET_KEY_AGREEMENT, protocol=3).status is (
        CtapStatus.INVALID_PARAMETER
    )
    reply = platform.client_pin(Sub.GET_KEY_AGREEMENT)
    key = reply.body[ClientPinResponseKey.KEY_AGREEMENT]
    assert key[1] == 2 and key[3] == -25 and key[-1] == 1  # EC2, ECDH-ES+HKDF-256, P-256
    # The same key until something regenerates it; the two protocols have their own keys.
    again = platform.client_pin(Sub.GET_KEY_AGREEMENT).body[ClientPinResponseKey.KEY_AGREEMENT]
    assert again == key
    other = PinPlatform(platform.auth, 3 - version).client_pin(Sub.GET_KEY_AGREEMENT)
    assert other.body[ClientPinResponseKey.KEY_AGREEMENT] != key


# -- setPIN (§6.5.5.5) -----------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["KEY_AGREEMENT", "NEW_PIN_ENC", "PIN_UV_AUTH_PARAM"])
def test_set_pin_missing_parameters_come_before_the_protocol(
    platform: PinPlatform, missing: str
) -> None:
    params: dict[str, Any] = {
        "KEY_AGREEMENT": OFF_CURVE,
        "NEW_PIN_ENC": bytes(64),
        "PIN_UV_AUTH_PARAM": bytes(32),
        "protocol": 7,
    }
    del params[missing]
    assert platform.client_pin(Sub.SET_PIN, **params).status is CtapStatus.MISSING_PARAMETER
    params[missing] = b"" if missing != "KEY_AGREEMENT" else OFF_CURVE
    assert platform.client_pin(Sub.SET_PIN, **params).status is CtapStatus.INVALID_PARAMETER


def test_set_pin_step_order(platform: PinPlatform) -> None:
    key_agreement, secret = platform.shared_secret()
    enc = platform.encrypt(secret, padded(PIN))
    mac = platform.authenticate(secret, enc)

    def set_pin(**overrides: Any) -> CtapStatus:
        params: dict[str, Any] = {
            "KEY_AGREEMENT": key_agreement,
            "NEW_PIN_ENC": enc,
            "PIN_UV_AUTH_PARAM": mac,
        }
        params.update(overrides)
        return platform.client_pin(Sub.SET_PIN, **params).status

    # Step 4: a key-agreement key off the curve; step 5: a MAC that does not verify.
    assert set_pin(KEY_AGREEMENT=OFF_CURVE) is CtapStatus.INVALID_PARAMETER
    assert set_pin(PIN_UV_AUTH_PARAM=mac[:-1] + bytes([mac[-1] ^ 1])) is (
        CtapStatus.PIN_AUTH_INVALID
    )
    assert set_pin() is CtapStatus.OK
    # Step 3: once a PIN is set, before even looking at the key agreement.
    assert set_pin(KEY_AGREEMENT=OFF_CURVE) is CtapStatus.PIN_AUTH_INVALID
    assert set_pin() is CtapStatus.PIN_AUTH_INVALID


def test_new_pin_enc_that_does_not_decrypt_is_pin_auth_invalid(platform: PinPlatform) -> None:
    key_agreement, secret = platform.shared_secret()
    enc = platform.encrypt(secret, padded(PIN))[:-3]  # not whole AES blocks, but MACed
    status = platform.client_pin(
        Sub.SET_PIN,
        KEY_AGREEMENT=key_agreement,
        NEW_PIN_ENC=enc,
        PIN_UV_AUTH_PARAM=platform.authenticate(secret, enc),
    ).status
    assert status is CtapStatus.PIN_AUTH_INVALID  # step 6


@pytest.mark.parametrize("size", [16, 48, 80, 128])
def test_padded_pin_must_be_64_bytes(platform: PinPlatform, size: int) -> None:
    assert platform.set_pin(PIN, padded_pin=padded(PIN, size)) is CtapStatus.INVALID_PARAMETER
    assert platform.retries()[0] == SECURITY_KEY.pin_retries
    assert platform.set_pin(PIN) is CtapStatus.OK  # nothing was set


@pytest.mark.parametrize(
    ("pin", "status"),
    [
        (b"123", CtapStatus.PIN_POLICY_VIOLATION),  # 3 code points < minPINLength 4
        (b"1234", CtapStatus.OK),
        ("ééé".encode(), CtapStatus.PIN_POLICY_VIOLATION),  # 6 bytes, but 3 code points
        ("éééé".encode(), CtapStatus.OK),
        ("🔑🔑🔑🔑".encode(), CtapStatus.OK),  # 16 bytes, 4 code points
        (b"x" * 63, CtapStatus.OK),  # the longest PIN
        (b"x" * 64, CtapStatus.PIN_POLICY_VIOLATION),  # no terminating zero: 64 bytes
        (b"\xff\xfe\xfd\xfc", CtapStatus.PIN_POLICY_VIOLATION),  # not UTF-8
        (b"ab\xc3", CtapStatus.PIN_POLICY_VIOLATION),  # truncated UTF-8
        (b"", CtapStatus.PIN_POLICY_VIOLATION),
    ],
)
def test_pin_rules(platform: PinPlatform, pin: bytes, status: CtapStatus) -> None:
    assert platform.set_pin(pin, padded_pin=padded(pin)) is status
    assert (platform.auth.call(bytes([Command.GET_INFO]))[0]) == CtapStatus.OK
    if status is CtapStatus.OK:
        assert isinstance(platform.token(pin), bytes)


def test_trailing_zeros_are_padding_and_inner_zeros_are_pin(platform: PinPlatform) -> None:
    # Step 8 drops trailing zeros only: "12\0\x34" is a 4-byte PIN, not "12".
    assert platform.set_pin(b"12\x0034") is CtapStatus.OK
    assert platform.token(b"12") is CtapStatus.PIN_INVALID
    assert isinstance(platform.token(b"12\x0034"), bytes)


def test_min_pin_length_is_the_configured_one(manual_clock: ManualClock) -> None:
    auth = Authenticator(config=replace(SECURITY_KEY, min_pin_length=6), clock=manual_clock)
    platform = PinPlatform(auth)
    assert platform.set_pin("12345") is CtapStatus.PIN_POLICY_VIOLATION
    assert platform.set_pin("123456") is CtapStatus.OK


# -- changePIN (§6.5.5.6) --------------------------------------------------------------------


@pytest.mark.parametrize(
    "missing", ["KEY_AGREEMENT", "NEW_PIN_ENC", "PIN_HASH_ENC", "PIN_UV_AUTH_PARAM"]
)
def test_change_pin_missing_parameters(platform: PinPlatform, missing: str) -> None:
    _with_pin(platform)
    params: dict[str, Any] = {
        "KEY_AGREEMENT": OFF_CURVE,
        "NEW_PIN_ENC": bytes(64),
        "PIN_HASH_ENC": bytes(16),
        "PIN_UV_AUTH_PARAM": bytes(32),
        "protocol": 9,
    }
    del params[missing]
    assert platform.client_pin(Sub.CHANGE_PIN, **params).status is CtapStatus.MISSING_PARAMETER


def test_change_pin_without_a_pin(platform: PinPlatform) -> None:
    assert platform.change_pin(PIN, "5678") is CtapStatus.PIN_NOT_SET


def test_change_pin_bad_mac_costs_no_retry(platform: PinPlatform) -> None:
    _with_pin(platform)
    key_agreement, secret = platform.shared_secret()
    new_pin_enc = platform.encrypt(secret, padded("5678"))
    pin_hash_enc = platform.encrypt(secret, pin_hash(PIN))
    status = platform.client_pin(
        Sub.CHANGE_PIN,
        KEY_AGREEMENT=key_agreement,
        NEW_PIN_ENC=new_pin_enc,
        PIN_HASH_ENC=pin_hash_enc,
        PIN_UV_AUTH_PARAM=platform.authenticate(secret, new_pin_enc),  # misses pinHashEnc
    ).status
    assert status is CtapStatus.PIN_AUTH_INVALID
    assert platform.retries()[0] == SECURITY_KEY.pin_retries


def test_change_pin(platform: PinPlatform) -> None:
    _with_pin(platform)
    old_token = platform.token(PIN, Permission.GA, "example.com")
    assert isinstance(old_token, bytes)
    assert platform.change_pin("9999", "5678") is CtapStatus.PIN_INVALID
    assert platform.retries()[0] == SECURITY_KEY.pin_retries - 1
    # Steps 8-12: a correct current PIN restores the retries even when the new one is refused.
    assert platform.change_pin(PIN, "567") is CtapStatus.PIN_POLICY_VIOLATION
    assert platform.retries()[0] == SECURITY_KEY.pin_retries
    assert platform.change_pin(PIN, "5678") is CtapStatus.OK
    assert platform.auth.context.pin_token.grant is None  # the old token stopped working
    assert platform.token(PIN) is CtapStatus.PIN_INVALID
    assert isinstance(platform.token("5678"), bytes)


def test_a_wrong_pin_regenerates_the_key_agreement_key(platform: PinPlatform) -> None:
    _with_pin(platform)
    before = platform.client_pin(Sub.GET_KEY_AGREEMENT).body
    assert platform.token("0000") is CtapStatus.PIN_INVALID
    after = platform.client_pin(Sub.GET_KEY_AGREEMENT).body
    assert before != after
    assert isinstance(platform.token(PIN), bytes)
    # A correct PIN does not regenerate it.
    assert platform.client_pin(Sub.GET_KEY_AGREEMENT).body == after


# -- getPinToken (§6.5.5.7.1) ----------------------------------------------------------------


def test_get_pin_token(platform: PinPlatform, version: int) -> None:
    assert platform.token(PIN) is CtapStatus.PIN_NOT_SET
    _with_pin(platform)
    token = platform.token(PIN)
    assert isinstance(token, bytes) and len(token) == 32
    grant = platform.auth.context.pin_token.grant
    assert grant is not None
    assert grant.permissions == Permission.MC | Permission.GA and grant.rp_id is None
    assert int(grant.protocol) == version
    assert platform.auth.context.pin_token.value == token


@pytest.mark.parametrize("extra", [{"PERMISSIONS": 2}, {"RP_ID": "example.com"}])
def test_get_pin_token_takes_no_permissions(platform: PinPlatform, extra: dict[str, Any]) -> None:
    _with_pin(platform)
    key_agreement, secret = platform.shared_secret()
    reply = platform.client_pin(
        Sub.GET_PIN_TOKEN,
        KEY_AGREEMENT=key_agreement,
        PIN_HASH_ENC=platform.encrypt(secret, pin_hash(PIN)),
        **extra,
    )
    assert reply.status is CtapStatus.INVALID_PARAMETER
    assert platform.retries()[0] == SECURITY_KEY.pin_retries  # before any PIN check


def test_each_new_token_replaces_the_last(platform: PinPlatform) -> None:
    _with_pin(platform)
    first = platform.token(PIN)
    second = platform.token(PIN)
    assert isinstance(first, bytes) and isinstance(second, bytes) and first != second


# -- getPinUvAuthTokenUsingPinWithPermissions (§6.5.5.7.2) -----------------------------------


def test_permissions_step_order(platform: PinPlatform) -> None:
    with_permissions = Sub.GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS
    # Step 1 before steps 2-4: a missing keyAgreement outranks everything else.
    assert platform.client_pin(with_permissions, PERMISSIONS=0, protocol=5).status is (
        CtapStatus.MISSING_PARAMETER
    )
    assert platform.token(PIN, None) is CtapStatus.PIN_NOT_SET  # (legacy: no permissions)
    key_agreement, secret = platform.shared_secret()
    hashed = platform.encrypt(secret, pin_hash(PIN))
    reply = platform.client_pin(with_permissions, KEY_AGREEMENT=key_agreement, PIN_HASH_ENC=hashed)
    assert reply.status is CtapStatus.MISSING_PARAMETER  # permissions is mandatory
    # Step 2 (protocol) before step 4 (unauthorized permission).
    reply = platform.client_pin(
        with_permissions,
        KEY_AGREEMENT=key_agreement,
        PIN_HASH_ENC=hashed,
        PERMISSIONS=Permission.BE,
        protocol=3,
    )
    assert reply.status is CtapStatus.INVALID_PARAMETER
    # Steps 3-4 come before the PIN is even looked at (no PIN is set yet).
    assert platform.token(PIN, 0) is CtapStatus.INVALID_PARAMETER
    assert platform.token(PIN, Permission.BE) is CtapStatus.UNAUTHORIZED_PERMISSION
    assert platform.token(PIN, Permission.GA) is CtapStatus.PIN_NOT_SET


@pytest.mark.parametrize(
    ("requested", "granted"),
    [
        (Permission.GA, Permission.GA),
        (Permission.MC | Permission.LBW, Permission.MC | Permission.LBW),
        (Permission.CM | Permission.ACFG, Permission.CM | Permission.ACFG),
        (0x80 | Permission.GA, Permission.GA),  # undefined bits are ignored
        (0x100, Permission(0)),
    ],
)
def test_granted_permissions(platform: PinPlatform, requested: int, granted: Permission) -> None:
    _with_pin(platform)
    assert isinstance(platform.token(PIN, requested, "example.com"), bytes)
    grant = platform.auth.context.pin_token.grant
    assert grant is not None and grant.permissions == granted and grant.rp_id == "example.com"


@pytest.mark.parametrize(
    "requested",
    [
        Permission.BE,  # no bioEnroll on this profile
        Permission.PCMR | Permission.CM,  # CTAP 2.2: pcmr only alone
        Permission.PCMR | Permission.GA,
    ],
)
def test_unauthorized_permissions(platform: PinPlatform, requested: Permission) -> None:
    _with_pin(platform)
    assert platform.token(PIN, requested) is CtapStatus.UNAUTHORIZED_PERMISSION
    assert platform.retries()[0] == SECURITY_KEY.pin_retries


def test_the_rp_id_is_optional_and_binds_later(platform: PinPlatform) -> None:
    _with_pin(platform)
    token = platform.token(PIN, Permission.MC)
    assert isinstance(token, bytes)
    assert platform.auth.context.pin_token.rp_id is None
    assert platform.make_credential(token, "a.example", b"u").status is CtapStatus.OK
    assert platform.auth.context.pin_token.grant is not None
    assert platform.auth.context.pin_token.rp_id == "a.example"


def test_no_mc_ga_permissions_with_client_pin(manual_clock: ManualClock) -> None:
    config = replace(SECURITY_KEY, no_mc_ga_permissions_with_client_pin=True)
    platform = _with_pin(PinPlatform(Authenticator(config=config, clock=manual_clock)))
    assert platform.token(PIN, Permission.MC, "x") is CtapStatus.UNAUTHORIZED_PERMISSION
    assert platform.token(PIN, Permission.GA, "x") is CtapStatus.UNAUTHORIZED_PERMISSION
    assert isinstance(platform.token(PIN), bytes)
    grant = platform.auth.context.pin_token.grant
    assert grant is not None and grant.permissions == Permission(0)  # no default mc/ga
    assert platform.make_credential(None, "x", b"u").status is CtapStatus.OPERATION_DENIED


def test_force_pin_change_refuses_tokens(platform: PinPlatform) -> None:
    from authenticator.user_verification import set_force_pin_change

    _with_pin(platform)
    set_force_pin_change(platform.auth.context)
    # §6.5.5.7.2 step 11 (0x09): PIN_POLICY_VIOLATION, for the persistent token as well.
    assert platform.token(PIN, Permission.GA) is CtapStatus.PIN_POLICY_VIOLATION
    assert platform.token(PIN, Permission.PCMR) is CtapStatus.PIN_POLICY_VIOLATION
    # §6.5.5.7.1 step 11 (0x05, superseded getPinToken): PIN_INVALID.
    assert platform.token(PIN) is CtapStatus.PIN_INVALID
    assert platform.retries() == (SECURITY_KEY.pin_retries, False)  # the PIN was right
    assert platform.token("0000") is CtapStatus.PIN_INVALID  # a wrong one costs a retry
    assert platform.retries() == (SECURITY_KEY.pin_retries - 1, False)
    assert platform.auth.context.pin_token.grant is None
    assert platform.change_pin(PIN, PIN) is CtapStatus.PIN_POLICY_VIOLATION  # must change
    assert platform.change_pin(PIN, "5678") is CtapStatus.OK
    assert isinstance(platform.token("5678", Permission.GA), bytes)
    assert isinstance(platform.token("5678"), bytes)


# -- the persistentPinUvAuthToken (CTAP 2.2 §6.5.5.7.2 step 12) ------------------------------


def test_pcmr_returns_the_persistent_token_and_keeps_the_live_one(platform: PinPlatform) -> None:
    _with_pin(platform)
    live = platform.token(PIN, Permission.MC | Permission.GA, "a.example")
    assert isinstance(live, bytes)
    persistent = platform.token(PIN, Permission.PCMR, "ignored.example")
    assert isinstance(persistent, bytes) and len(persistent) == 32 and persistent != live
    # No resetPinUvAuthToken: the mc/ga token is untouched and still works.
    token_state = platform.auth.context.pin_token
    assert token_state.value == live
    grant = token_state.grant
    assert grant is not None and grant.permissions == Permission.MC | Permission.GA
    assert grant.rp_id == "a.example"
    # Undefined bits are ignored; asking again returns the same persistent token.
    assert platform.token(PIN, 0x80 | Permission.PCMR) == persistent
    assert platform.make_credential(live, "a.example", b"u").status is CtapStatus.OK
    # The persistent token is no pinUvAuthToken: makeCredential refuses it.
    assert platform.make_credential(persistent, "a.example", b"v").status is (
        CtapStatus.PIN_AUTH_INVALID
    )
    # A new ordinary token does not touch the persistent one either.
    assert isinstance(platform.token(PIN, Permission.GA), bytes)
    assert platform.token(PIN, Permission.PCMR) == persistent
    # Nor does authenticatorConfig take it (a MAC that is not the pinUvAuthToken's).
    from authenticator.commands import ConfigSubCommand
    from authenticator.config_command import MESSAGE_PREFIX

    toggle = ConfigSubCommand.TOGGLE_ALWAYS_UV
    mac = platform.authenticate(persistent, MESSAGE_PREFIX + bytes([toggle]))
    reply = call(platform.auth, Command.CONFIG, {1: toggle, 3: platform.version, 4: mac})
    assert reply.status is CtapStatus.PIN_AUTH_INVALID


def test_pcmr_still_checks_the_pin(platform: PinPlatform) -> None:
    assert platform.token(PIN, Permission.PCMR) is CtapStatus.PIN_NOT_SET
    _with_pin(platform)
    assert platform.token("0000", Permission.PCMR) is CtapStatus.PIN_INVALID
    assert platform.retries() == (SECURITY_KEY.pin_retries - 1, False)
    assert isinstance(platform.token(PIN, Permission.PCMR), bytes)
    assert platform.retries() == (SECURITY_KEY.pin_retries, False)


def test_pin_change_and_reset_replace_the_persistent_token(
    store: Store, manual_clock: ManualClock, version: int
) -> None:
    platform = _with_pin(PinPlatform(Authenticator(store, clock=manual_clock), version))
    first = platform.token(PIN, Permission.PCMR)
    assert isinstance(first, bytes)
    assert platform.change_pin(PIN, "5678") is CtapStatus.OK
    second = platform.token("5678", Permission.PCMR)
    assert isinstance(second, bytes) and second != first
    # A refused change (wrong PIN) revokes nothing.
    assert platform.change_pin(PIN, "9999") is CtapStatus.PIN_INVALID
    assert platform.token("5678", Permission.PCMR) == second
    platform = PinPlatform(Authenticator(store, clock=manual_clock), version)  # power cycle
    assert platform.token("5678", Permission.PCMR) == second  # it is persistent
    assert call(platform.auth, Command.RESET).status is CtapStatus.OK
    assert platform.token("5678", Permission.PCMR) is CtapStatus.PIN_NOT_SET
    _with_pin(platform)
    third = platform.token(PIN, Permission.PCMR)
    assert isinstance(third, bytes) and third not in (first, second)


# -- retries and lockout (§6.5.2.2, §6.5.5.7.1 step 9) ---------------------------------------


def test_lockout_across_power_cycles(store: Store, manual_clock: ManualClock, version: int) -> None:
    def power_up() -> PinPlatform:
        return PinPlatform(Authenticator(store, clock=manual_clock, strict=True), version)

    platform = _with_pin(power_up())
    retries = SECURITY_KEY.pin_retries
    while retries > 3:
        assert platform.token("0000") is CtapStatus.PIN_INVALID
        assert platform.token("0000") is CtapStatus.PIN_INVALID
        assert platform.token("0000") is CtapStatus.PIN_AUTH_BLOCKED
        retries -= 3
        assert platform.retries() == (retries, True)
        # Blocked until a power cycle: even the right PIN, and it costs nothing.
        assert platform.token(PIN) is CtapStatus.PIN_AUTH_BLOCKED
        assert platform.change_pin(PIN, "5678") is CtapStatus.PIN_AUTH_BLOCKED
        assert platform.retries() == (retries, True)
        platform = power_up()
        assert platform.retries() == (retries, False)  # persistent; the block is not
    assert retries == 2
    assert platform.token("0000") is CtapStatus.PIN_INVALID
    assert platform.token("0000") is CtapStatus.PIN_BLOCKED  # retries reached 0
    for _ in range(2):
        assert platform.retries()[0] == 0
        assert platform.token(PIN) is CtapStatus.PIN_BLOCKED
        assert platform.token(PIN, Permission.GA) is CtapStatus.PIN_BLOCKED
        assert platform.change_pin(PIN, "5678") is CtapStatus.PIN_BLOCKED
        platform = power_up()
    # Only authenticatorReset (just after power-up) clears it.
    assert call(platform.auth, Command.RESET).status is CtapStatus.OK
    assert platform.retries() == (SECURITY_KEY.pin_retries, False)
    assert platform.token(PIN) is CtapStatus.PIN_NOT_SET


def test_a_correct_pin_restores_retries_and_the_consecutive_count(platform: PinPlatform) -> None:
    _with_pin(platform)
    for _ in range(3):
        assert platform.token("0000") is CtapStatus.PIN_INVALID
        assert platform.token("1111") is CtapStatus.PIN_INVALID
        assert isinstance(platform.token(PIN), bytes)  # never 3 in a row
        assert platform.retries() == (SECURITY_KEY.pin_retries, False)


def test_a_pin_hash_that_does_not_decrypt_is_a_mismatch(platform: PinPlatform) -> None:
    _with_pin(platform)
    key_agreement, _ = platform.shared_secret()
    reply = platform.client_pin(Sub.GET_PIN_TOKEN, KEY_AGREEMENT=key_agreement, PIN_HASH_ENC=b"x")
    assert reply.status is CtapStatus.PIN_INVALID
    assert platform.retries()[0] == SECURITY_KEY.pin_retries - 1


def test_retries_persist_with_a_custom_maximum(manual_clock: ManualClock) -> None:
    store = MemoryStore()
    config = replace(SECURITY_KEY, pin_retries=2)
    platform = _with_pin(PinPlatform(Authenticator(store, config=config, clock=manual_clock)))
    assert platform.token("0000") is CtapStatus.PIN_INVALID
    platform = PinPlatform(Authenticator(store, config=config, clock=manual_clock))
    assert platform.retries() == (1, False)
    assert platform.token("0000") is CtapStatus.PIN_BLOCKED


# -- built-in UV: getPinUvAuthTokenUsingUvWithPermissions, getUVRetries (§6.5.5.7.3) ---------


@pytest.fixture
def uv_platform(manual_clock: ManualClock, version: int) -> PinPlatform:
    # A platform authenticator that also takes a PIN: the PIN is the fallback for UV.
    config = replace(PLATFORM, client_pin=True)
    return PinPlatform(Authenticator(config=config, clock=manual_clock, strict=True), version)


def test_uv_token(uv_platform: PinPlatform) -> None:
    presence = ScriptedPresence()
    token = uv_platform.uv_token(Permission.GA | Permission.LBW, "example.com", presence)
    assert isinstance(token, bytes) and len(token) == 32
    assert presence.requests[-1].user_verification
    token_state = uv_platform.auth.context.pin_token
    assert token_state.user_present and token_state.user_verified  # the gesture is a touch
    grant = token_state.grant
    assert grant is not None and grant.permissions == Permission.GA | Permission.LBW


def test_uv_token_step_order(uv_platform: PinPlatform) -> None:
    sub = Sub.GET_PIN_UV_AUTH_TOKEN_USING_UV_WITH_PERMISSIONS
    assert uv_platform.client_pin(sub, PERMISSIONS=1, protocol=4).status is (
        CtapStatus.MISSING_PARAMETER
    )
    key_agreement, _ = uv_platform.shared_secret()
    assert uv_platform.client_pin(sub, KEY_AGREEMENT=key_agreement).status is (
        CtapStatus.MISSING_PARAMETER
    )
    assert uv_platform.uv_token(0) is CtapStatus.INVALID_PARAMETER
    # No "uvAcfg" option: acfg needs the PIN.
    assert uv_platform.uv_token(Permission.ACFG) is CtapStatus.UNAUTHORIZED_PERMISSION


def test_uv_failures_count_and_block(uv_platform: PinPlatform) -> None:
    retries = PLATFORM.uv_retries
    uv_retries = uv_platform.client_pin(Sub.GET_UV_RETRIES)
    assert uv_retries.body == {ClientPinResponseKey.UV_RETRIES: retries}
    failing = ScriptedPresence(then=Presence.UV_FAILED)
    timing_out = ScriptedPresence(then=Presence.TIMED_OUT)
    assert uv_platform.uv_token(Permission.GA, presence=timing_out) is (
        CtapStatus.USER_ACTION_TIMEOUT
    )
    for left in range(retries - 1, 0, -1):
        assert uv_platform.uv_token(Permission.GA, presence=failing) is CtapStatus.UV_INVALID
        assert uv_platform.client_pin(Sub.GET_UV_RETRIES).body[ClientPinResponseKey.UV_RETRIES] == (
            left
        )
    assert uv_platform.uv_token(Permission.GA, presence=failing) is CtapStatus.UV_BLOCKED
    # Blocked: no gesture is even asked for.
    asked = ScriptedPresence()
    assert uv_platform.uv_token(Permission.GA, presence=asked) is CtapStatus.UV_BLOCKED
    assert asked.requests == []
    # The PIN unblocks built-in UV (§6.5.5.7 step 10 restores the UV retries as well).
    assert uv_platform.set_pin(PIN) is CtapStatus.OK
    assert isinstance(uv_platform.token(PIN, Permission.GA), bytes)
    assert isinstance(uv_platform.uv_token(Permission.GA), bytes)


def test_uv_pcmr_gives_the_persistent_token(uv_platform: PinPlatform) -> None:
    live = uv_platform.uv_token(Permission.GA, "example.com")
    assert isinstance(live, bytes)
    persistent = uv_platform.uv_token(Permission.PCMR)
    assert isinstance(persistent, bytes) and persistent != live
    assert uv_platform.auth.context.pin_token.value == live  # §6.5.5.7.3 step 11
    assert uv_platform.uv_token(Permission.PCMR | Permission.GA) is (
        CtapStatus.UNAUTHORIZED_PERMISSION
    )
    # The PIN's arrival revokes a grant made by UV alone.
    assert uv_platform.set_pin(PIN) is CtapStatus.OK
    again = uv_platform.token(PIN, Permission.PCMR)
    assert isinstance(again, bytes) and again != persistent


def test_uv_not_configured_is_not_allowed(manual_clock: ManualClock) -> None:
    from authenticator.config import BIO_SECURITY_KEY

    platform = PinPlatform(Authenticator(config=BIO_SECURITY_KEY, clock=manual_clock))
    asked = ScriptedPresence()
    assert platform.uv_token(Permission.GA, presence=asked) is CtapStatus.NOT_ALLOWED
    assert asked.requests == []
