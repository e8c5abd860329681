"""The CTAP 2.2 PIN complexity policy at the CBOR level: getInfo ``pinComplexityPolicy``
(0x1B) and ``pinComplexityPolicyURL`` (0x1C) per profile, the rules, setPIN/changePIN
answering PIN_POLICY_VIOLATION while the policy is enforced, authenticatorConfig
setMinPINLength ``pinComplexityPolicy`` (0x04) turning it on for good (until reset), and the
``pinComplexityPolicy`` registration extension answering only RPs on minPinLengthRPIDs.
python-fido2's ``Info`` parses getInfo and its PIN protocol classes are the platform."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise
from typing import Any

import cbor2
import pytest
from fido2.ctap2 import Info
from fido2.webauthn import AuthenticatorData
from hypothesis import given
from hypothesis import strategies as st

from authenticator import (
    PROFILES,
    SECURITY_KEY,
    Authenticator,
    AuthenticatorConfig,
    Command,
    CtapStatus,
    ManualClock,
    Store,
)
from authenticator.commands import (
    ConfigSubCommand,
    GetInfoKey,
    MakeCredentialResponseKey,
    SetMinPinLengthKey,
)
from authenticator.config import COMMON_PINS, PinComplexityPolicy
from authenticator.config_command import MESSAGE_PREFIX
from authenticator.extensions.pin_complexity_policy import violation
from authenticator.pin_token import Permission
from tests.pin_platform import PinPlatform, Reply, call

SIMPLE = "123456"  # a sequence: refused while the policy is enforced
COMPLEX = "740291"  # no repeat, no run, not on the list
OTHER_COMPLEX = "385017"
RP = "example.com"
ENFORCING = replace(SECURITY_KEY, pin_complexity_policy=PinComplexityPolicy(enforced=True))
RULES = PinComplexityPolicy()
K = SetMinPinLengthKey
EXTENSION = "pinComplexityPolicy"


def _auth(config: AuthenticatorConfig = SECURITY_KEY, store: Store | None = None) -> Authenticator:
    return Authenticator(store, config=config, clock=ManualClock(), strict=True)


def _raw_info(auth: Authenticator) -> dict[int, Any]:
    reply = call(auth, Command.GET_INFO)
    assert reply.status is CtapStatus.OK
    return reply.body


def _info(auth: Authenticator) -> Info:
    return Info.from_dict(_raw_info(auth))


def _set_min_pin_length(
    platform: PinPlatform, params: dict[int, Any], pin: str | None = None
) -> Reply:
    """setMinPINLength; with ``pin``, authorised by an acfg token (the device is protected)."""
    sub = ConfigSubCommand.SET_MIN_PIN_LENGTH
    request: dict[int, Any] = {1: sub, 2: params}
    if pin is not None:
        token = platform.token(pin, Permission.ACFG)
        assert isinstance(token, bytes), token
        body = cbor2.dumps(params, canonical=True)  # what the MAC covers (§6.11 step 4)
        request[3] = platform.version
        request[4] = platform.authenticate(token, MESSAGE_PREFIX + bytes([sub]) + body)
    return call(platform.auth, Command.CONFIG, request)


def _register(platform: PinPlatform, pin: str | None, user: bytes, value: Any = True) -> Reply:
    token: bytes | None = None
    if pin is not None:
        granted = platform.token(pin, Permission.MC, RP)
        assert isinstance(granted, bytes), granted
        token = granted
    return platform.make_credential(token, RP, user, extensions={EXTENSION: value})


def _outputs(reply: Reply) -> dict[str, Any]:
    assert reply.status is CtapStatus.OK, reply.status
    auth_data = AuthenticatorData(reply.body[MakeCredentialResponseKey.AUTH_DATA])
    return dict(auth_data.extensions or {})


# -- getInfo --------------------------------------------------------------------------------


def test_a_security_key_supports_the_policy_but_does_not_enforce_it() -> None:
    info = _info(_auth())
    assert info.pin_complexity_policy is False  # present: supported; false: not enforced
    assert info.pin_complexity_policy_url is None
    assert EXTENSION in info.extensions


def test_an_enforcing_profile_reports_true_and_its_url() -> None:
    url = "https://example.com/pin-rules"
    config = replace(ENFORCING, pin_complexity_policy=PinComplexityPolicy(enforced=True, url=url))
    info = _info(_auth(config))
    assert info.pin_complexity_policy is True
    assert info.pin_complexity_policy_url == url.encode()  # a byte string in getInfo


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_reports_the_policy_exactly_when_it_has_one(name: str) -> None:
    config = PROFILES[name]
    raw = _raw_info(_auth(config))
    has_policy = config.pin_complexity_policy is not None and config.client_pin
    assert (GetInfoKey.PIN_COMPLEXITY_POLICY in raw) is has_policy
    listed = EXTENSION in raw.get(GetInfoKey.EXTENSIONS, [])
    assert listed is (has_policy and config.authenticator_config and EXTENSION in config.extensions)


def test_a_profile_without_a_policy_reports_nothing() -> None:
    raw = _raw_info(_auth(replace(SECURITY_KEY, pin_complexity_policy=None)))
    assert GetInfoKey.PIN_COMPLEXITY_POLICY not in raw
    assert GetInfoKey.PIN_COMPLEXITY_POLICY_URL not in raw
    assert EXTENSION not in raw[GetInfoKey.EXTENSIONS]


# -- the rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pin", "reason"),
    [
        ("0000", "repeats"),
        ("aaaaaa", "repeats"),
        ("1212", "repeats"),
        ("123123", "repeats"),
        ("AbAb", "repeats"),  # case-insensitive
        ("1234", "sequence"),
        ("987654", "sequence"),
        ("7890", "sequence"),  # digits wrap round the keypad
        ("1098", "sequence"),
        ("abcdef", "sequence"),
        ("FEDC", "sequence"),
        ("password", "well-known"),
        ("PassWord", "well-known"),
        ("2580", "well-known"),
        ("147258", "well-known"),
    ],
)
def test_trivial_pins_break_the_policy(pin: str, reason: str) -> None:
    why = violation(RULES, pin)
    assert why is not None and reason in why
    assert pin not in why  # reasons end up in logs: never the PIN


@pytest.mark.parametrize("pin", [COMPLEX, OTHER_COMPLEX, "1357", "2468", "12345678x", "kâse9"])
def test_other_pins_comply(pin: str) -> None:
    assert violation(RULES, pin) is None


def test_each_rule_can_be_switched_off() -> None:
    lax = PinComplexityPolicy(reject_repeats=False, reject_sequences=False, blocklist=())
    for pin in ("1111", "1212", "1234", "password"):
        assert violation(lax, pin) is None
    assert violation(replace(lax, blocklist=("0852",)), "0852") is not None


def test_the_default_blocklist_is_only_what_the_other_rules_miss() -> None:
    # One source of truth per rule: no entry the repeat or sequence rule already refuses.
    bare = replace(RULES, blocklist=())
    assert all(violation(bare, pin) is None for pin in COMMON_PINS)


@given(
    unit=st.text(st.characters(codec="utf-8"), min_size=1, max_size=4),
    times=st.integers(2, 6),
)
def test_any_repeated_unit_breaks_the_policy(unit: str, times: int) -> None:
    assert violation(RULES, unit * times) is not None


@given(start=st.integers(0, 9), length=st.integers(4, 12), up=st.booleans())
def test_any_digit_run_breaks_the_policy(start: int, length: int, up: bool) -> None:
    step = 1 if up else -1
    pin = "".join(str((start + step * i) % 10) for i in range(length))
    assert violation(RULES, pin) is not None


@given(st.text(st.sampled_from("0123456789"), min_size=4, max_size=12))
def test_a_pin_that_complies_is_no_repeat_and_no_run(pin: str) -> None:
    # An independent statement of the two structural rules, checked on arbitrary digit PINs.
    repeat = any(pin == pin[:u] * (len(pin) // u) for u in range(1, len(pin)) if len(pin) % u == 0)
    steps = {(int(b) - int(a)) % 10 for a, b in pairwise(pin)}
    run = steps in ({1}, {9})
    assert (violation(replace(RULES, blocklist=()), pin) is None) is not (repeat or run)


# -- setPIN and changePIN -------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_set_pin_refuses_a_trivial_pin_while_enforced(version: int) -> None:
    platform = PinPlatform(_auth(ENFORCING), version)
    assert platform.set_pin(SIMPLE) is CtapStatus.PIN_POLICY_VIOLATION
    assert _info(platform.auth).options["clientPin"] is False  # nothing was stored
    assert platform.set_pin("password") is CtapStatus.PIN_POLICY_VIOLATION
    assert platform.set_pin(COMPLEX) is CtapStatus.OK
    assert isinstance(platform.token(COMPLEX, Permission.MC), bytes)


def test_minimum_length_still_applies_first() -> None:
    platform = PinPlatform(_auth(ENFORCING))
    assert platform.set_pin("740") is CtapStatus.PIN_POLICY_VIOLATION  # complex but short
    assert platform.set_pin("7402") is CtapStatus.OK


def test_set_pin_takes_any_pin_while_not_enforced() -> None:
    platform = PinPlatform(_auth())
    assert platform.set_pin(SIMPLE) is CtapStatus.OK


@pytest.mark.parametrize("version", [1, 2])
def test_change_pin_refuses_a_trivial_pin_and_keeps_the_old_one(version: int) -> None:
    platform = PinPlatform(_auth(ENFORCING), version)
    assert platform.set_pin(COMPLEX) is CtapStatus.OK
    assert platform.change_pin(COMPLEX, "0000") is CtapStatus.PIN_POLICY_VIOLATION
    assert platform.retries() == (8, False)  # the old PIN was right: retries restored
    assert isinstance(platform.token(COMPLEX, Permission.MC), bytes)
    assert platform.change_pin(COMPLEX, OTHER_COMPLEX) is CtapStatus.OK
    assert isinstance(platform.token(OTHER_COMPLEX, Permission.MC), bytes)


def test_change_pin_checks_the_old_pin_before_the_new_one() -> None:
    platform = PinPlatform(_auth(ENFORCING))
    assert platform.set_pin(COMPLEX) is CtapStatus.OK
    assert platform.change_pin(OTHER_COMPLEX, "0000") is CtapStatus.PIN_INVALID
    assert platform.retries() == (7, False)


# -- authenticatorConfig setMinPINLength pinComplexityPolicy --------------------------------


def test_set_min_pin_length_turns_the_policy_on() -> None:
    platform = PinPlatform(_auth())
    assert _set_min_pin_length(platform, {K.PIN_COMPLEXITY_POLICY: True}).status is CtapStatus.OK
    assert _info(platform.auth).pin_complexity_policy is True
    assert platform.set_pin(SIMPLE) is CtapStatus.PIN_POLICY_VIOLATION
    assert platform.set_pin(COMPLEX) is CtapStatus.OK


def test_turning_it_on_over_a_pin_forces_a_change() -> None:
    platform = PinPlatform(_auth())
    assert platform.set_pin(SIMPLE) is CtapStatus.OK
    reply = _set_min_pin_length(platform, {K.PIN_COMPLEXITY_POLICY: True}, pin=SIMPLE)
    assert reply.status is CtapStatus.OK
    info = _info(platform.auth)
    assert info.pin_complexity_policy is True
    assert info.force_pin_change is True  # the old PIN's complexity is unknown: only a hash
    assert platform.token(SIMPLE, Permission.MC) is CtapStatus.PIN_POLICY_VIOLATION
    assert platform.change_pin(SIMPLE, "654321") is CtapStatus.PIN_POLICY_VIOLATION
    assert platform.change_pin(SIMPLE, COMPLEX) is CtapStatus.OK
    assert _info(platform.auth).force_pin_change is False
    assert isinstance(platform.token(COMPLEX, Permission.MC), bytes)


def test_turning_it_on_again_changes_nothing() -> None:
    platform = PinPlatform(_auth(ENFORCING))
    assert platform.set_pin(COMPLEX) is CtapStatus.OK
    reply = _set_min_pin_length(platform, {K.PIN_COMPLEXITY_POLICY: True}, pin=COMPLEX)
    assert reply.status is CtapStatus.OK
    assert _info(platform.auth).force_pin_change is False  # the PIN was checked when set


def test_false_does_not_turn_it_off() -> None:
    platform = PinPlatform(_auth(ENFORCING))
    assert _set_min_pin_length(platform, {K.PIN_COMPLEXITY_POLICY: False}).status is CtapStatus.OK
    assert _info(platform.auth).pin_complexity_policy is True
    assert platform.set_pin(SIMPLE) is CtapStatus.PIN_POLICY_VIOLATION


@pytest.mark.parametrize("value", [1, "true", b"\x01", None, [True]])
def test_a_non_boolean_is_refused_before_anything_changes(value: Any) -> None:
    platform = PinPlatform(_auth())
    params: dict[int, Any] = {K.NEW_MIN_PIN_LENGTH: 6, K.PIN_COMPLEXITY_POLICY: value}
    assert _set_min_pin_length(platform, params).status is CtapStatus.CBOR_UNEXPECTED_TYPE
    info = _info(platform.auth)
    assert info.min_pin_length == 4
    assert info.pin_complexity_policy is False


def test_with_the_other_parameters_in_one_command() -> None:
    platform = PinPlatform(_auth())
    params: dict[int, Any] = {
        K.NEW_MIN_PIN_LENGTH: 6,
        K.MIN_PIN_LENGTH_RPIDS: [RP],
        K.PIN_COMPLEXITY_POLICY: True,
    }
    assert _set_min_pin_length(platform, params).status is CtapStatus.OK
    info = _info(platform.auth)
    assert (info.min_pin_length, info.pin_complexity_policy) == (6, True)
    assert platform.set_pin("12345") is CtapStatus.PIN_POLICY_VIOLATION  # too short
    assert platform.set_pin("123456") is CtapStatus.PIN_POLICY_VIOLATION  # a run
    assert platform.set_pin(COMPLEX) is CtapStatus.OK


def test_a_device_without_a_policy_ignores_the_parameter() -> None:
    # As a CTAP 2.1 device ignores a key it does not know; getInfo says there is no policy.
    platform = PinPlatform(_auth(replace(SECURITY_KEY, pin_complexity_policy=None)))
    for value in (True, "not even a boolean"):
        reply = _set_min_pin_length(platform, {K.PIN_COMPLEXITY_POLICY: value})
        assert reply.status is CtapStatus.OK
    assert GetInfoKey.PIN_COMPLEXITY_POLICY not in _raw_info(platform.auth)
    assert platform.set_pin(SIMPLE) is CtapStatus.OK


def test_enforcement_survives_a_power_cycle_and_reset_ends_it(store: Store) -> None:
    clock = ManualClock()
    auth = Authenticator(store, clock=clock, strict=True)
    assert _set_min_pin_length(PinPlatform(auth), {K.PIN_COMPLEXITY_POLICY: True}).status is (
        CtapStatus.OK
    )
    auth = Authenticator(store, clock=clock, strict=True)  # power cycle
    assert _info(auth).pin_complexity_policy is True
    assert PinPlatform(auth).set_pin(SIMPLE) is CtapStatus.PIN_POLICY_VIOLATION
    assert call(auth, Command.RESET).status is CtapStatus.OK
    assert _info(auth).pin_complexity_policy is False  # back to the profile's setting
    assert PinPlatform(auth).set_pin(SIMPLE) is CtapStatus.OK


def test_reset_keeps_a_factory_policy() -> None:
    auth = _auth(ENFORCING)
    assert call(auth, Command.RESET).status is CtapStatus.OK
    assert _info(auth).pin_complexity_policy is True


# -- the pinComplexityPolicy extension (§12.6) -----------------------------------------------


def test_the_extension_answers_only_listed_rps() -> None:
    platform = PinPlatform(_auth())
    assert EXTENSION not in _outputs(_register(platform, None, b"u1"))
    assert _set_min_pin_length(platform, {K.MIN_PIN_LENGTH_RPIDS: [RP]}).status is CtapStatus.OK
    assert _outputs(_register(platform, None, b"u2")) == {EXTENSION: False}
    assert _set_min_pin_length(platform, {K.PIN_COMPLEXITY_POLICY: True}).status is CtapStatus.OK
    assert _outputs(_register(platform, None, b"u3")) == {EXTENSION: True}
    other = platform.make_credential(None, "other.example", b"u4", extensions={EXTENSION: True})
    assert EXTENSION not in _outputs(other)


def test_the_output_follows_getinfo_with_a_pin() -> None:
    platform = PinPlatform(_auth(ENFORCING))
    assert platform.set_pin(COMPLEX) is CtapStatus.OK
    reply = _set_min_pin_length(platform, {K.MIN_PIN_LENGTH_RPIDS: [RP]}, pin=COMPLEX)
    assert reply.status is CtapStatus.OK
    outputs = _outputs(_register(platform, COMPLEX, b"u1"))
    assert outputs[EXTENSION] is _info(platform.auth).pin_complexity_policy is True


def test_false_asks_for_nothing() -> None:
    platform = PinPlatform(_auth())
    assert _set_min_pin_length(platform, {K.MIN_PIN_LENGTH_RPIDS: [RP]}).status is CtapStatus.OK
    assert EXTENSION not in _outputs(_register(platform, None, b"u1", value=False))


@pytest.mark.parametrize("value", [1, "yes", b"", {}, None])
def test_a_malformed_input_fails_the_registration(value: Any) -> None:
    auth = _auth()
    reply = _register(PinPlatform(auth), None, b"u1", value=value)
    assert reply.status is CtapStatus.CBOR_UNEXPECTED_TYPE
    assert _raw_info(auth)[GetInfoKey.PIN_COMPLEXITY_POLICY] is False  # still serving


def test_a_profile_can_switch_the_extension_off_and_keep_the_policy() -> None:
    extensions = tuple(e for e in SECURITY_KEY.extensions if e != EXTENSION)
    platform = PinPlatform(_auth(replace(ENFORCING, extensions=extensions)))
    raw = _raw_info(platform.auth)
    assert EXTENSION not in raw[GetInfoKey.EXTENSIONS]
    assert raw[GetInfoKey.PIN_COMPLEXITY_POLICY] is True  # the policy itself is still there
    assert _set_min_pin_length(platform, {K.MIN_PIN_LENGTH_RPIDS: [RP]}).status is CtapStatus.OK
    assert EXTENSION not in _outputs(_register(platform, None, b"u1"))  # input ignored
    assert platform.set_pin(SIMPLE) is CtapStatus.PIN_POLICY_VIOLATION
