"""The CTAP 2.2 PIN complexity policy end to end through python-fido2: ``ClientPin`` sets and
changes PINs, ``Config.set_min_pin_length(pin_complexity_policy=True)`` turns the policy on,
``Ctap2.get_info()`` reports it, and ``Fido2Client`` with python-fido2's
``PinComplexityPolicyExtension`` registers credentials that ``Fido2Server`` and py_webauthn
verify, the authenticator data carrying the policy for RPs on minPinLengthRPIDs only."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

import pytest
from fido2.client import ClientError, DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin, Config, Ctap2
from fido2.ctap2.extensions import (
    CredPropsExtension,
    Ctap2Extension,
    MinPinLengthExtension,
    PinComplexityPolicyExtension,
)
from fido2.server import Fido2Server
from fido2.webauthn import (
    AuthenticatorData,
    PublicKeyCredentialCreationOptions,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    UserVerificationRequirement,
)
from webauthn import verify_registration_response

from authenticator import SECURITY_KEY, Authenticator, ManualClock
from authenticator.config import PinComplexityPolicy
from transports.inprocess import InProcessDevice

RP_ID = "example.com"
OTHER_RP_ID = "other.example"
SIMPLE = "123456"
COMPLEX = "740291"
EXTENSIONS: Sequence[Ctap2Extension] = [
    PinComplexityPolicyExtension(),
    MinPinLengthExtension(),
    CredPropsExtension(),
]


class PinEntry(UserInteraction):
    def __init__(self) -> None:
        self.pin = COMPLEX

    def request_pin(self, permissions: ClientPin.PERMISSION, rp_id: str | None) -> str | None:
        return self.pin


class Site:
    """One RP (Fido2Server) and one browser (Fido2Client) in front of one device."""

    def __init__(self, device: InProcessDevice, rp_id: str, pin: PinEntry) -> None:
        self.rp_id = rp_id
        self.origin = f"https://{rp_id}"
        self.client = Fido2Client(
            device,
            DefaultClientDataCollector(self.origin),
            user_interaction=pin,
            extensions=EXTENSIONS,
        )
        self.server = Fido2Server(PublicKeyCredentialRpEntity(name="Example", id=rp_id))

    def register(self, user: bytes) -> AuthenticatorData:
        options, state = self.server.register_begin(
            PublicKeyCredentialUserEntity(id=user, name="alice", display_name="Alice"),
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        public_key = PublicKeyCredentialCreationOptions.from_dict(
            {**dict(options.public_key), "extensions": {"pinComplexityPolicy": True}}
        )
        response = self.client.make_credential(public_key)
        auth_data = self.server.register_complete(state, response)
        verified = verify_registration_response(
            credential=json.dumps(dict(response)),
            expected_challenge=public_key.challenge,
            expected_origin=self.origin,
            expected_rp_id=self.rp_id,
            require_user_verification=True,
        )
        assert verified.user_verified
        return auth_data


def _ctap2(auth: Authenticator) -> tuple[InProcessDevice, Ctap2]:
    device = InProcessDevice(auth)
    return device, Ctap2(device)


def _config(ctap2: Ctap2, pin: str) -> Config:
    client_pin = ClientPin(ctap2)
    token = client_pin.get_pin_token(pin, ClientPin.PERMISSION.AUTHENTICATOR_CFG)
    return Config(ctap2, client_pin.protocol, token)


def _violation(error: CtapError) -> bool:
    return error.code == CtapError.ERR.PIN_POLICY_VIOLATION


@pytest.mark.parametrize("protocol", [1, 2])
def test_a_pin_user_turns_the_policy_on_and_must_choose_a_better_pin(protocol: int) -> None:
    config = replace(SECURITY_KEY, pin_uv_protocols=(protocol,))
    device, ctap2 = _ctap2(Authenticator(config=config, clock=ManualClock(), strict=True))
    assert ctap2.info.pin_complexity_policy is False  # supported, not enforced
    assert "pinComplexityPolicy" in ctap2.info.extensions
    client_pin = ClientPin(ctap2)
    client_pin.set_pin(SIMPLE)  # nothing enforced yet

    _config(ctap2, SIMPLE).set_min_pin_length(rp_ids=[RP_ID], pin_complexity_policy=True)
    info = ctap2.get_info()
    assert info.pin_complexity_policy is True
    assert info.force_pin_change is True

    with pytest.raises(CtapError) as refused:
        client_pin.get_pin_token(SIMPLE, ClientPin.PERMISSION.MAKE_CREDENTIAL, RP_ID)
    assert _violation(refused.value)  # forcePINChange: change the PIN first
    for trivial in ("654321", "111111", "password", "7890"):
        with pytest.raises(CtapError) as refused:
            client_pin.change_pin(SIMPLE, trivial)
        assert _violation(refused.value), trivial
    client_pin.change_pin(SIMPLE, COMPLEX)
    assert ctap2.get_info().force_pin_change is False

    pin = PinEntry()
    site = Site(device, RP_ID, pin)
    assert site.register(b"alice").extensions == {"pinComplexityPolicy": True}
    # An RP not on minPinLengthRPIDs learns nothing about the user's PIN.
    assert Site(device, OTHER_RP_ID, pin).register(b"alice").extensions is None


def test_a_browser_sees_a_bad_request_until_the_pin_is_changed() -> None:
    device, ctap2 = _ctap2(Authenticator(clock=ManualClock(), strict=True))
    ClientPin(ctap2).set_pin(SIMPLE)
    _config(ctap2, SIMPLE).set_min_pin_length(pin_complexity_policy=True)
    pin = PinEntry()
    pin.pin = SIMPLE
    with pytest.raises(ClientError) as refused:
        Site(device, RP_ID, pin).register(b"alice")
    assert refused.value.code is ClientError.ERR.BAD_REQUEST
    assert isinstance(refused.value.cause, CtapError) and _violation(refused.value.cause)


def test_a_factory_policy_refuses_trivial_pins_from_the_start() -> None:
    url = "https://example.com/pin-rules"
    enforcing = replace(
        SECURITY_KEY, pin_complexity_policy=PinComplexityPolicy(enforced=True, url=url)
    )
    device, ctap2 = _ctap2(Authenticator(config=enforcing, clock=ManualClock(), strict=True))
    assert ctap2.info.pin_complexity_policy is True
    assert ctap2.info.pin_complexity_policy_url == url.encode()
    client_pin = ClientPin(ctap2)
    with pytest.raises(CtapError) as refused:
        client_pin.set_pin(SIMPLE)
    assert _violation(refused.value)
    assert ctap2.get_info().options["clientPin"] is False
    client_pin.set_pin(COMPLEX)
    # Not listed yet: no output; listed: the policy, as getInfo reports it.
    site = Site(device, RP_ID, PinEntry())
    assert site.register(b"alice").extensions is None
    _config(ctap2, COMPLEX).set_min_pin_length(rp_ids=[RP_ID])
    assert site.register(b"bob").extensions == {"pinComplexityPolicy": True}


def test_python_fido2_needs_getinfo_support_to_ask() -> None:
    # Without a policy the device reports none, and python-fido2 refuses to send the
    # parameter: what getInfo advertises is what the client can use.
    plain = replace(SECURITY_KEY, pin_complexity_policy=None)
    _, ctap2 = _ctap2(Authenticator(config=plain, clock=ManualClock(), strict=True))
    assert ctap2.info.pin_complexity_policy is None
    assert "pinComplexityPolicy" not in ctap2.info.extensions
    ClientPin(ctap2).set_pin(SIMPLE)
    with pytest.raises(ValueError, match="PIN complexity"):
        _config(ctap2, SIMPLE).set_min_pin_length(pin_complexity_policy=True)
