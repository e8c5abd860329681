"""pinUvAuthToken state (timers, flags, permissions, RP binding), CTAP 2.2's
persistentPinUvAuthToken record, and the PIN/UV protocols, with python-fido2's
PinProtocolV1/V2 as the independent peer."""

from __future__ import annotations

from typing import Any

import pytest
from fido2.ctap2.pin import PinProtocolV1, PinProtocolV2

from authenticator import CtapStatus, ManualClock, SeededEntropy, Store
from authenticator.keys import Sealer, SystemEntropy
from authenticator.pin_protocol import PinProtocol, PinUvAuthProtocol, authenticate
from authenticator.pin_token import (
    INITIAL_USAGE_TIME_LIMIT,
    MAX_USAGE_TIME_PERIOD,
    PERSISTENT_TOKEN_STATE,
    USER_PRESENT_TIME_LIMIT,
    Permission,
    PersistentToken,
    PinUvAuthToken,
    authorize_persistent,
    grant_persistent_token,
    reset_persistent_token,
)
from authenticator.status import CtapError

PEERS = {PinUvAuthProtocol.ONE: PinProtocolV1, PinUvAuthProtocol.TWO: PinProtocolV2}


@pytest.mark.parametrize("version", list(PinUvAuthProtocol))
def test_shared_secret_agrees_with_python_fido2(version: PinUvAuthProtocol) -> None:
    ours = PinProtocol(version, SystemEntropy())
    peer: Any = PEERS[version]()  # python-fido2's protocol classes are untyped
    key_agreement, peer_secret = peer.encapsulate(ours.public_cose_key())
    secret = ours.decapsulate(dict(key_agreement))
    message = b"\x42" * 64
    # The platform encrypts and MACs; we decrypt and verify, and the other way round.
    assert secret.decrypt(peer.encrypt(peer_secret, message)) == message
    assert peer.decrypt(peer_secret, secret.encrypt(message)) == message
    assert secret.verify(message, peer.authenticate(peer_secret, message))
    assert not secret.verify(message + b"x", peer.authenticate(peer_secret, message))
    # A regenerated key-agreement key makes a different secret.
    ours.regenerate()
    assert ours.decapsulate(dict(key_agreement)) != secret
    assert "hmac_key" not in repr(secret) or secret.hmac_key.hex() not in repr(secret)


@pytest.mark.parametrize(
    "peer_key",
    [
        {},
        {1: 2, 3: -25, -1: 1, -2: b"\x01" * 32, -3: b"\x02" * 32},  # not on the curve
        {1: 2, 3: -25, -1: 2, -2: b"\x01" * 32, -3: b"\x02" * 32},  # P-384 label
        {1: 2, 3: -25, -1: 1, -2: b"\x01" * 31, -3: b"\x02" * 32},
    ],
)
def test_bad_key_agreement_is_invalid_parameter(peer_key: dict[int, object]) -> None:
    with pytest.raises(CtapError) as err:
        PinProtocol(PinUvAuthProtocol.TWO, SystemEntropy()).decapsulate(peer_key)
    assert err.value.status is CtapStatus.INVALID_PARAMETER


def _issued(
    clock: ManualClock, permissions: Permission, rp_id: str | None = None
) -> PinUvAuthToken:
    token = PinUvAuthToken(clock, SeededEntropy(1))
    token.begin_using(PinUvAuthProtocol.TWO, permissions, rp_id, user_present=False)
    return token


def _mac(token: PinUvAuthToken, message: bytes, peer: Any = None) -> bytes:
    peer = peer or PinProtocolV2()
    return bytes(peer.authenticate(token.value, message))


def test_token_verifies_its_own_mac_only() -> None:
    token = _issued(ManualClock(), Permission.MC | Permission.GA, "example.com")
    token.verify(2, b"m", _mac(token, b"m"))
    for protocol, param in [(2, _mac(token, b"other")), (1, _mac(token, b"m")[:16]), (2, None)]:
        with pytest.raises(CtapError) as err:
            token.verify(protocol, b"m", param)
        assert err.value.status is CtapStatus.PIN_AUTH_INVALID


def test_permissions_and_rp_binding() -> None:
    token = _issued(ManualClock(), Permission.GA)
    with pytest.raises(CtapError) as err:
        token.require_permission(Permission.CM)
    assert err.value.status is CtapStatus.PIN_AUTH_INVALID
    token.require_permission(Permission.GA, "a.example", bind=True)
    assert token.rp_id == "a.example"
    with pytest.raises(CtapError):
        token.require_permission(Permission.GA, "b.example")
    token.clear_permissions_except_lbw()
    with pytest.raises(CtapError):
        token.require_permission(Permission.GA, "a.example")


def test_unused_token_expires_after_initial_usage_limit() -> None:
    clock = ManualClock()
    token = _issued(clock, Permission.GA)
    clock.advance(INITIAL_USAGE_TIME_LIMIT + 1)
    assert not token.in_use
    with pytest.raises(CtapError):
        token.verify(2, b"m", _mac(token, b"m"))


def test_used_token_lives_until_max_usage_period() -> None:
    clock = ManualClock()
    token = _issued(clock, Permission.GA)
    token.verify(2, b"m", _mac(token, b"m"))
    clock.advance(INITIAL_USAGE_TIME_LIMIT + 1)
    token.verify(2, b"m", _mac(token, b"m"))
    clock.advance(MAX_USAGE_TIME_PERIOD)
    assert not token.in_use
    assert not token.user_verified


def test_user_present_flag_lapses() -> None:
    clock = ManualClock()
    token = PinUvAuthToken(clock, SeededEntropy(2))
    token.begin_using(PinUvAuthProtocol.ONE, Permission.MC, None, user_present=True)
    assert token.user_present and token.user_verified
    token.verify(1, b"m", _mac(token, b"m", PinProtocolV1()))
    clock.advance(USER_PRESENT_TIME_LIMIT + 1)
    assert token.in_use and not token.user_present and token.user_verified


def test_reset_changes_the_value_and_stops_the_token() -> None:
    token = _issued(ManualClock(), Permission.GA)
    old = token.value
    token.reset()
    assert token.value != old and not token.in_use
    assert old.hex() not in repr(token) and token.value.hex() not in repr(token)


# -- the persistentPinUvAuthToken (CTAP 2.2) ------------------------------------------------


def _sealer() -> Sealer:
    return Sealer(b"\x07" * 32, SystemEntropy())


def test_persistent_token_is_granted_once_and_then_reused(store: Store) -> None:
    sealer, entropy = _sealer(), SystemEntropy()
    assert PersistentToken.load(store, sealer) is None
    value = grant_persistent_token(store, sealer, entropy, Permission.PCMR)
    assert len(value) == 32
    assert grant_persistent_token(store, sealer, entropy, Permission.PCMR) == value
    loaded = PersistentToken.load(store, sealer)
    assert loaded == PersistentToken(value, Permission.PCMR)
    assert value.hex() not in repr(loaded)
    # Sealed in the store, never in clear; bound to its name and to the device key.
    raw = store.get_state(PERSISTENT_TOKEN_STATE)
    assert raw is not None and value not in raw
    assert PersistentToken.load(store, Sealer(b"\x08" * 32, entropy)) is None
    reset_persistent_token(store)
    assert store.get_state(PERSISTENT_TOKEN_STATE) is None
    assert grant_persistent_token(store, sealer, entropy, Permission.PCMR) != value


@pytest.mark.parametrize("version", list(PinUvAuthProtocol))
def test_authorize_persistent(store: Store, version: PinUvAuthProtocol) -> None:
    sealer = _sealer()

    def check(protocol: int | None, param: bytes | None, permission: Permission) -> CtapStatus:
        try:
            authorize_persistent(store, sealer, protocol, param, b"m", permission)
        except CtapError as error:
            return error.status
        return CtapStatus.OK

    mac_of_nothing = authenticate(version, bytes(32), b"m")
    assert check(version, mac_of_nothing, Permission.PCMR) is CtapStatus.PIN_AUTH_INVALID
    value = grant_persistent_token(store, sealer, SystemEntropy(), Permission.PCMR)
    mac = authenticate(version, value, b"m")
    assert check(version, mac, Permission.PCMR) is CtapStatus.OK
    assert check(version, mac, Permission.CM) is CtapStatus.PIN_AUTH_INVALID  # pcmr only
    assert check(version, authenticate(version, value, b"n"), Permission.PCMR) is (
        CtapStatus.PIN_AUTH_INVALID
    )
    assert check(3, mac, Permission.PCMR) is CtapStatus.PIN_AUTH_INVALID
    assert check(None, mac, Permission.PCMR) is CtapStatus.PIN_AUTH_INVALID
    assert check(version, None, Permission.PCMR) is CtapStatus.PIN_AUTH_INVALID
    store.put_state(PERSISTENT_TOKEN_STATE, b"\x00" * 61)  # damaged: never a grant
    assert check(version, mac, Permission.PCMR) is CtapStatus.PIN_AUTH_INVALID
