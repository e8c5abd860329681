"""clientPIN, pinUvAuthToken, built-in UV and authenticatorConfig driven by python-fido2's own
classes (ClientPin over both protocols, Config, Fido2Client with a PIN) over InProcessDevice;
Fido2Server and py_webauthn verify the ceremonies."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import CtapError
from fido2.ctap2 import Config, Ctap2
from fido2.ctap2.pin import ClientPin, PinProtocol, PinProtocolV1, PinProtocolV2
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestationConveyancePreference,
    AuthenticatorData,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    UserVerificationRequirement,
)

from authenticator import (
    PLATFORM,
    SECURITY_KEY,
    Authenticator,
    ManualClock,
    Presence,
    ScriptedPresence,
    SqliteStore,
)
from authenticator.pin_token import INITIAL_USAGE_TIME_LIMIT
from transports.inprocess import InProcessDevice

ORIGIN = "https://example.com"
RP = PublicKeyCredentialRpEntity(name="Example", id="example.com")
ALICE = PublicKeyCredentialUserEntity(name="alice", id=b"alice-id", display_name="Alice")
PIN = "4242"
PROTOCOLS = [PinProtocolV1, PinProtocolV2]
ERR = CtapError.ERR
P = ClientPin.PERMISSION


class PinInteraction(UserInteraction):
    def __init__(self, pin: str | None) -> None:
        self.pin = pin
        self.asked = 0

    def request_pin(self, permissions: ClientPin.PERMISSION, rp_id: str | None) -> str | None:
        self.asked += 1
        return self.pin


def _pin(ctap2: Ctap2, protocol: type[PinProtocol] = PinProtocolV2) -> ClientPin:
    return ClientPin(ctap2, protocol())


class _Mc:
    """A makeCredential for ``rp_id`` with fixed arguments, through python-fido2's Ctap2."""

    def __init__(self, ctap2: Ctap2, cdh: bytes, rp_id: str) -> None:
        self.ctap2, self.cdh, self.rp_id = ctap2, cdh, rp_id

    def call(self, **kwargs: Any) -> Any:
        es256: list[Mapping[str, Any]] = [{"type": "public-key", "alg": -7}]
        return self.ctap2.make_credential(
            self.cdh, {"id": self.rp_id}, {"id": b"u"}, es256, **kwargs
        )


def _code(call: object, *args: object, **kwargs: object) -> ERR:
    with pytest.raises(CtapError) as err:
        call(*args, **kwargs)  # type: ignore[operator]
    return err.value.code


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_set_change_and_token_with_both_protocols(
    ctap2: Ctap2, protocol: type[PinProtocol]
) -> None:
    client_pin = _pin(ctap2, protocol)
    assert ctap2.get_info().options["clientPin"] is False
    assert _code(client_pin.get_pin_token, PIN) is ERR.PIN_NOT_SET
    client_pin.set_pin(PIN)
    assert ctap2.get_info().options["clientPin"] is True
    assert client_pin.get_pin_retries() == (8, False)
    assert _code(client_pin.set_pin, "9999") is ERR.PIN_AUTH_INVALID  # already set
    token = client_pin.get_pin_token(PIN, ClientPin.PERMISSION.GET_ASSERTION, "example.com")
    assert len(token) == 32
    client_pin.change_pin(PIN, "new-pin")
    assert _code(client_pin.get_pin_token, PIN) is ERR.PIN_INVALID
    assert client_pin.get_pin_retries()[0] == 7
    client_pin.get_pin_token("new-pin")  # legacy getPinToken, no permissions
    assert client_pin.get_pin_retries()[0] == 8  # a correct PIN restores the retries


@pytest.mark.parametrize(
    ("pin", "status"),
    [("abc", ERR.PIN_POLICY_VIOLATION), ("x" * 64, ERR.PIN_POLICY_VIOLATION)],
)
def test_pin_rules(ctap2: Ctap2, pin: str, status: ERR) -> None:
    client_pin = _pin(ctap2)
    if len(pin) < 4:
        # python-fido2 refuses to send a PIN under 4 characters; raise minPINLength instead.
        Config(ctap2).set_min_pin_length(6)
        pin = "12345"
    assert _code(client_pin.set_pin, pin) is status
    client_pin.set_pin("é" * 6)  # six code points, twelve bytes of UTF-8
    client_pin.get_pin_token("é" * 6)


def test_lockout_sequence_and_power_cycles(tmp_path: Path) -> None:
    path = tmp_path / "pin.sqlite"

    def power_up() -> tuple[SqliteStore, ClientPin]:
        store = SqliteStore(path)
        device = InProcessDevice(Authenticator(store, strict=True))
        return store, _pin(Ctap2(device))

    store, client_pin = power_up()
    client_pin.set_pin(PIN)
    retries = 8
    for _ in range(2):  # 3 wrong PINs per power cycle, then PIN_AUTH_BLOCKED
        assert _code(client_pin.get_pin_token, "0000") is ERR.PIN_INVALID
        assert _code(client_pin.get_pin_token, "0000") is ERR.PIN_INVALID
        assert _code(client_pin.get_pin_token, "0000") is ERR.PIN_AUTH_BLOCKED
        retries -= 3
        assert client_pin.get_pin_retries() == (retries, True)
        # Even the right PIN is refused until the power cycle, and costs nothing.
        assert _code(client_pin.get_pin_token, PIN) is ERR.PIN_AUTH_BLOCKED
        assert client_pin.get_pin_retries()[0] == retries
        store.close()
        store, client_pin = power_up()
        assert client_pin.get_pin_retries() == (retries, False)
    assert _code(client_pin.get_pin_token, "0000") is ERR.PIN_INVALID
    assert _code(client_pin.get_pin_token, "0000") is ERR.PIN_BLOCKED
    assert client_pin.get_pin_retries()[0] == 0
    assert _code(client_pin.get_pin_token, PIN) is ERR.PIN_BLOCKED
    store.close()
    store, client_pin = power_up()
    assert _code(client_pin.get_pin_token, PIN) is ERR.PIN_BLOCKED  # until authenticatorReset
    client_pin.ctap.reset()
    assert client_pin.ctap.get_info().options["clientPin"] is False
    store.close()


def test_pin_state_is_sealed_in_the_store(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    _pin(Ctap2(InProcessDevice(Authenticator(store, strict=True)))).set_pin("correct horse")
    store.close()
    raw = (tmp_path / "s.sqlite").read_bytes()
    import hashlib

    digest = hashlib.sha256(b"correct horse").digest()
    assert b"correct horse" not in raw
    assert digest[:16] not in raw and digest[:8] not in raw


def _client(device: InProcessDevice, pin: str | None) -> tuple[Fido2Client, PinInteraction]:
    interaction = PinInteraction(pin)
    return Fido2Client(device, DefaultClientDataCollector(ORIGIN), interaction), interaction


@pytest.mark.parametrize("uv", ["required", "preferred"])
def test_fido2_client_with_pin(device: InProcessDevice, ctap2: Ctap2, uv: str) -> None:
    _pin(ctap2).set_pin(PIN)
    client, interaction = _client(device, PIN)
    server = Fido2Server(RP)
    requirement = UserVerificationRequirement(uv)
    creation, state = server.register_begin(ALICE, user_verification=requirement)
    registration = client.make_credential(creation.public_key)
    auth_data = server.register_complete(state, registration).credential_data
    assert auth_data is not None
    assert registration.response.attestation_object.auth_data.is_user_verified()
    request, state = server.authenticate_begin([auth_data], user_verification=requirement)
    assertion = client.get_assertion(request.public_key).get_response(0)
    server.authenticate_complete(state, [auth_data], assertion)
    assert AuthenticatorData(bytes(assertion.response.authenticator_data)).is_user_verified()
    assert interaction.asked == 2


def test_pin_required_without_token_and_wrong_pin_in_client(
    device: InProcessDevice, ctap2: Ctap2
) -> None:
    _pin(ctap2).set_pin(PIN)
    # makeCredUvNotRqd: a non-discoverable registration needs no UV...
    client, _ = _client(device, None)
    creation, _state = Fido2Server(RP).register_begin(
        ALICE, user_verification=UserVerificationRequirement.DISCOURAGED
    )
    response = client.make_credential(creation.public_key)
    assert not response.response.attestation_object.auth_data.is_user_verified()
    # ...but a discoverable one does (CTAP 2.1 §6.1.2 step 7).
    assert (
        _code(
            ctap2.make_credential,
            b"\x01" * 32,
            {"id": "example.com"},
            {"id": b"u"},
            [{"type": "public-key", "alg": -7}],
            options={"rk": True},
        )
        is ERR.PUAT_REQUIRED
    )


def test_permissions_misuse(ctap2: Ctap2) -> None:
    from fido2.ctap2 import CredentialManagement

    client_pin = _pin(ctap2)
    client_pin.set_pin(PIN)
    protocol = client_pin.protocol
    ga_only = client_pin.get_pin_token(PIN, ClientPin.PERMISSION.GET_ASSERTION, "example.com")
    assert _code(CredentialManagement(ctap2, protocol, ga_only).get_metadata) is (
        ERR.PIN_AUTH_INVALID
    )
    # A token bound to example.com cannot make a credential for another RP.
    token = client_pin.get_pin_token(PIN, ClientPin.PERMISSION.MAKE_CREDENTIAL, "example.com")
    cdh = b"\x02" * 32
    param = protocol.authenticate(token, cdh)
    args = _Mc(ctap2, cdh, "other.example")
    assert _code(args.call, pin_uv_param=param, pin_uv_protocol=2) is ERR.PIN_AUTH_INVALID
    # The other protocol's MAC of the same token is not accepted either.
    args = _Mc(ctap2, cdh, "example.com")
    assert _code(args.call, pin_uv_param=param[:16], pin_uv_protocol=1) is ERR.PIN_AUTH_INVALID
    # The right one works once; afterwards the token keeps no mc permission.
    args.call(pin_uv_param=param, pin_uv_protocol=2)
    assert _code(args.call, pin_uv_param=param, pin_uv_protocol=2) is ERR.PIN_AUTH_INVALID
    # An mc token without an rpId binds to the first RP it is used for (CTAP 2.1 §6.1.2
    # step 11.5); unsupported permissions are refused.
    unbound = client_pin.get_pin_token(PIN, ClientPin.PERMISSION.GET_ASSERTION)
    param = protocol.authenticate(unbound, cdh)
    silent = {"up": False}  # a silent assertion keeps the token's permissions

    def assertion(rp_id: str) -> ERR:
        return _code(ctap2.get_assertion, rp_id, cdh, None, None, silent, param, 2)

    assert assertion("example.com") is ERR.NO_CREDENTIALS  # verified, now bound
    assert assertion("other.example") is ERR.PIN_AUTH_INVALID
    assert assertion("example.com") is ERR.NO_CREDENTIALS
    assert (
        _code(client_pin.get_pin_token, PIN, ClientPin.PERMISSION.BIO_ENROLL)
        is ERR.UNAUTHORIZED_PERMISSION
    )


def test_expired_token(manual_clock: ManualClock, ctap2: Ctap2) -> None:
    client_pin = _pin(ctap2)
    client_pin.set_pin(PIN)
    token = client_pin.get_pin_token(PIN, ClientPin.PERMISSION.GET_ASSERTION, "example.com")
    manual_clock.advance(INITIAL_USAGE_TIME_LIMIT + 1)
    cdh = b"\x03" * 32
    param = client_pin.protocol.authenticate(token, cdh)
    assert (
        _code(ctap2.get_assertion, "example.com", cdh, pin_uv_param=param, pin_uv_protocol=2)
        is ERR.PIN_AUTH_INVALID
    )


def test_zero_length_pin_uv_auth_param_probe(ctap2: Ctap2) -> None:
    args = _Mc(ctap2, b"\x04" * 32, "example.com")
    assert _code(args.call, pin_uv_param=b"", pin_uv_protocol=2) is (ERR.PIN_NOT_SET)
    _pin(ctap2).set_pin(PIN)
    assert _code(args.call, pin_uv_param=b"", pin_uv_protocol=2) is (ERR.PIN_INVALID)


def test_built_in_uv_token_retries_and_pin_fallback() -> None:
    presence = ScriptedPresence()
    auth = Authenticator(config=PLATFORM, strict=True)
    ctap2 = Ctap2(InProcessDevice(auth, presence=presence))
    client_pin = _pin(ctap2)
    info = ctap2.get_info()
    assert info.options["uv"] is True and "clientPin" not in info.options
    token = client_pin.get_uv_token(ClientPin.PERMISSION.GET_ASSERTION, "example.com")
    assert len(token) == 32 and presence.requests[-1].user_verification
    assert client_pin.get_uv_retries() == 5
    presence.push(*[Presence.UV_FAILED] * 4)
    for _ in range(4):
        assert _code(client_pin.get_uv_token, ClientPin.PERMISSION.GET_ASSERTION, "x") is (
            ERR.UV_INVALID
        )
    assert client_pin.get_uv_retries() == 1
    presence.push(Presence.UV_FAILED)
    assert _code(client_pin.get_uv_token, ClientPin.PERMISSION.GET_ASSERTION, "x") is (
        ERR.UV_BLOCKED
    )
    assert _code(client_pin.get_uv_token, ClientPin.PERMISSION.GET_ASSERTION, "x") is (
        ERR.UV_BLOCKED
    )


def test_fido2_client_with_built_in_uv_asks_once() -> None:
    presence = ScriptedPresence()
    device = InProcessDevice(Authenticator(config=PLATFORM, strict=True), presence=presence)
    client, _ = _client(device, None)
    server = Fido2Server(RP)
    creation, state = server.register_begin(
        ALICE, user_verification=UserVerificationRequirement.REQUIRED
    )
    registration = client.make_credential(creation.public_key)
    server.register_complete(state, registration)
    assert registration.response.attestation_object.auth_data.is_user_verified()
    # The UV gesture doubles as the touch: one request for the whole registration.
    assert len(presence.requests) == 1


def test_always_uv_and_config(ctap2: Ctap2, device: InProcessDevice) -> None:
    info = ctap2.get_info()
    assert info.options["alwaysUv"] is False and info.options["authnrCfg"] is True
    Config(ctap2).toggle_always_uv()  # no PIN yet: no token needed
    info = ctap2.get_info()
    assert info.options["alwaysUv"] is True and "makeCredUvNotRqd" not in info.options
    args = _Mc(ctap2, b"\x05" * 32, "example.com")
    assert _code(args.call) is ERR.PUAT_REQUIRED
    client_pin = _pin(ctap2)
    client_pin.set_pin(PIN)
    assert _code(Config(ctap2).toggle_always_uv) is ERR.PUAT_REQUIRED
    token = client_pin.get_pin_token(PIN, ClientPin.PERMISSION.AUTHENTICATOR_CFG)
    Config(ctap2, client_pin.protocol, token).toggle_always_uv()
    assert ctap2.get_info().options["alwaysUv"] is False


def test_set_min_pin_length_forces_a_pin_change(ctap2: Ctap2) -> None:
    client_pin = _pin(ctap2)
    client_pin.set_pin(PIN)
    token = client_pin.get_pin_token(PIN, ClientPin.PERMISSION.AUTHENTICATOR_CFG)
    config = Config(ctap2, client_pin.protocol, token)
    config.set_min_pin_length(6, rp_ids=["example.com"])
    info = ctap2.get_info()
    assert info.min_pin_length == 6 and info.force_pin_change is True
    assert _code(config.set_min_pin_length, 5) is ERR.PIN_POLICY_VIOLATION
    # Without permissions python-fido2 sends the superseded getPinToken (0x05): PIN_INVALID
    # (CTAP 2.1 §6.5.5.7.1 step 11); with them, 0x09: PIN_POLICY_VIOLATION (§6.5.5.7.2).
    assert _code(client_pin.get_pin_token, PIN) is ERR.PIN_INVALID
    assert _code(client_pin.get_pin_token, PIN, P.GET_ASSERTION) is ERR.PIN_POLICY_VIOLATION
    assert client_pin.get_pin_retries()[0] == 8  # the PIN was right both times
    assert _code(client_pin.change_pin, PIN, "12345") is ERR.PIN_POLICY_VIOLATION
    client_pin.change_pin(PIN, "123456")
    assert ctap2.get_info().force_pin_change is False
    client_pin.get_pin_token("123456")
    client_pin.get_pin_token("123456", P.GET_ASSERTION)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_forced_pin_change_codes_per_subcommand(ctap2: Ctap2, protocol: type[PinProtocol]) -> None:
    """The two PIN token subcommands answer a pending forced change differently, and
    neither spends a retry on a correct PIN; a wrong PIN is still just wrong."""
    client_pin = _pin(ctap2, protocol)
    client_pin.set_pin(PIN)
    token = client_pin.get_pin_token(PIN, P.AUTHENTICATOR_CFG)
    Config(ctap2, client_pin.protocol, token).set_min_pin_length(force_change_pin=True)
    assert ctap2.get_info().force_pin_change is True
    legacy = ClientPin.CMD.GET_TOKEN_USING_PIN_LEGACY
    with_permissions = ClientPin.CMD.GET_TOKEN_USING_PIN
    for cmd, permissions, expected in [
        (legacy, None, ERR.PIN_INVALID),
        (with_permissions, P.MAKE_CREDENTIAL, ERR.PIN_POLICY_VIOLATION),
        (with_permissions, P.PERSISTENT_CREDENTIAL_MGMT, ERR.PIN_POLICY_VIOLATION),
    ]:
        agreement = ctap2.client_pin(protocol.VERSION, ClientPin.CMD.GET_KEY_AGREEMENT)
        peer_key = agreement[ClientPin.RESULT.KEY_AGREEMENT]
        key_agreement, secret = client_pin.protocol.encapsulate(peer_key)
        pin_hash_enc = client_pin.protocol.encrypt(
            secret, hashlib.sha256(PIN.encode()).digest()[:16]
        )
        with pytest.raises(CtapError) as err:
            ctap2.client_pin(
                protocol.VERSION,
                cmd,
                key_agreement=key_agreement,
                pin_hash_enc=pin_hash_enc,
                permissions=permissions,
            )
        assert err.value.code is expected, cmd
        assert client_pin.get_pin_retries() == (8, False)
    assert _code(client_pin.get_pin_token, "0000") is ERR.PIN_INVALID
    assert client_pin.get_pin_retries() == (7, False)


def test_enterprise_attestation() -> None:
    config = replace(SECURITY_KEY, enterprise_attestation=True, enterprise_rp_ids=("corp.example",))
    auth = Authenticator(config=config, strict=True)
    ctap2 = Ctap2(InProcessDevice(auth))
    assert ctap2.get_info().options["ep"] is False
    args = _Mc(ctap2, b"\x06" * 32, "corp.example")
    assert _code(args.call, enterprise_attestation=1) is (ERR.INVALID_PARAMETER)
    Config(ctap2).enable_enterprise_attestation()
    assert ctap2.get_info().options["ep"] is True
    assert args.call(enterprise_attestation=1).ep_att is True
    other = _Mc(ctap2, b"\x06" * 32, "other.example")
    assert not other.call(enterprise_attestation=1).ep_att
    assert other.call(enterprise_attestation=2).ep_att is True
    assert _code(args.call, enterprise_attestation=3) is ERR.INVALID_OPTION
    # Fido2Client asks for platform-managed EA when the RP is on its list.
    client = Fido2Client(InProcessDevice(auth), DefaultClientDataCollector("https://corp.example"))
    client._enterprise_rpid_list = ["corp.example"]
    server = Fido2Server(
        PublicKeyCredentialRpEntity(name="Corp", id="corp.example"),
        attestation=AttestationConveyancePreference.ENTERPRISE,
    )
    creation, _state = server.register_begin(
        ALICE, user_verification=UserVerificationRequirement.DISCOURAGED
    )
    response = client.make_credential(creation.public_key)
    attestation = response.response.attestation_object
    assert attestation.fmt == "packed" and "x5c" in attestation.att_stmt
