"""The bio profile through python-fido2: ``FPBioEnrollment`` enrolls, names, lists and
removes fingerprints over a scripted sensor; an enrolled finger then verifies the user in
``Fido2Client`` ceremonies (built-in UV), checked by ``Fido2Server`` and py_webauthn."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from fido2.client import ClientError, DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import CtapError as FidoCtapError
from fido2.ctap2 import ClientPin, Ctap2, FPBioEnrollment
from fido2.ctap2.bio import CaptureError
from fido2.server import Fido2Server
from fido2.webauthn import (
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    RegistrationResponse,
    UserVerificationRequirement,
)
from webauthn import verify_registration_response

from authenticator import Authenticator, CtapStatus, ManualClock, MemoryStore, Presence
from authenticator.bio_enrollment import SampleStatus, sensor
from authenticator.config import BIO_SECURITY_KEY, AuthenticatorConfig
from authenticator.presence import ScriptedPresence
from transports.inprocess import InProcessDevice

PIN = "112358"
ORIGIN = "https://example.com"


class BioKey:
    def __init__(
        self, store: MemoryStore | None = None, config: AuthenticatorConfig = BIO_SECURITY_KEY
    ) -> None:
        self.clock = ManualClock()
        self.presence = ScriptedPresence()
        self.auth = Authenticator(store, config=config, clock=self.clock, strict=True)
        self.device = InProcessDevice(self.auth, presence=self.presence)
        self.ctap2 = Ctap2(self.device)

    def bio(self, *, set_pin: bool = True) -> FPBioEnrollment:
        client_pin = ClientPin(self.ctap2)
        if set_pin:
            client_pin.set_pin(PIN)
        token = client_pin.get_pin_token(PIN, ClientPin.PERMISSION.BIO_ENROLL)
        return FPBioEnrollment(self.ctap2, client_pin.protocol, token)

    def options(self) -> dict[str, bool]:
        return dict(Ctap2(self.device).info.options)


def enroll(bio: FPBioEnrollment) -> tuple[bytes, list[int]]:
    context = bio.enroll()
    errors: list[int] = []
    while True:
        try:
            template_id = context.capture()
        except CaptureError as error:
            errors.append(error.code)
            continue
        if template_id is not None:
            return template_id, errors


def test_enroll_name_list_and_remove() -> None:
    key = BioKey()
    assert key.options()["bioEnroll"] is False
    assert key.options().get("uv") is False
    bio = key.bio()
    info = bio.get_fingerprint_sensor_info()
    assert (
        info[FPBioEnrollment.RESULT.MAX_SAMPLES_REQUIRED]
        == BIO_SECURITY_KEY.bio_samples_per_enrollment
    )
    sensor(key.auth.context).push(
        SampleStatus.POOR_QUALITY, SampleStatus.GOOD, SampleStatus.TOO_LOW
    )
    thumb, errors = enroll(bio)
    assert errors == [FPBioEnrollment.FEEDBACK.FP_POOR_QUALITY, FPBioEnrollment.FEEDBACK.FP_TOO_LOW]
    captures = [r for r in key.presence.requests if r.reason == "fingerprint sample"]
    assert len(captures) == BIO_SECURITY_KEY.bio_samples_per_enrollment + 2
    index, errors = enroll(bio)
    assert errors == []
    bio.set_name(thumb, "thumb")
    assert bio.enumerate_enrollments() == {thumb: "thumb", index: ""}
    assert key.options()["bioEnroll"] is True
    assert key.options()["uv"] is True
    bio.remove_enrollment(thumb)
    bio.remove_enrollment(index)
    assert bio.enumerate_enrollments() == {}
    assert key.options()["bioEnroll"] is False


def test_cancel_then_enroll_again() -> None:
    key = BioKey()
    bio = key.bio()
    context = bio.enroll()
    assert context.capture() is None
    context.cancel()
    with pytest.raises(FidoCtapError) as error:
        bio.enroll_capture_next(context.template_id or b"\x00\x00")
    assert CtapStatus(error.value.code) is CtapStatus.INVALID_PARAMETER
    template_id, _ = enroll(bio)
    assert list(bio.enumerate_enrollments()) == [template_id]


def test_enrollments_survive_power_cycles_but_not_reset() -> None:
    store = MemoryStore()
    first = BioKey(store)
    template_id, _ = enroll(first.bio())
    second = BioKey(store)
    assert second.bio(set_pin=False).enumerate_enrollments() == {template_id: ""}
    second.ctap2.reset()
    assert second.options()["bioEnroll"] is False
    assert "clientPin" in second.options() and second.options()["clientPin"] is False


def test_a_token_without_be_is_refused() -> None:
    key = BioKey()
    client_pin = ClientPin(key.ctap2)
    client_pin.set_pin(PIN)
    token = client_pin.get_pin_token(PIN, ClientPin.PERMISSION.CREDENTIAL_MGMT)
    bio = FPBioEnrollment(key.ctap2, client_pin.protocol, token)
    with pytest.raises(FidoCtapError) as error:
        bio.enumerate_enrollments()
    assert CtapStatus(error.value.code) is CtapStatus.PIN_AUTH_INVALID


class NoPin(UserInteraction):
    def request_pin(self, permissions: ClientPin.PERMISSION, rp_id: str | None) -> str | None:
        raise AssertionError("built-in UV should be used, not the PIN")

    def request_uv(self, permissions: ClientPin.PERMISSION, rp_id: str | None) -> bool:
        return True


def test_an_enrolled_finger_verifies_the_user_in_a_ceremony() -> None:
    key = BioKey()
    enroll(key.bio())
    client = Fido2Client(key.device, DefaultClientDataCollector(ORIGIN), user_interaction=NoPin())
    server = Fido2Server(PublicKeyCredentialRpEntity(name="Example", id="example.com"))
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=b"dave", name="dave"),
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    response = client.make_credential(options.public_key)
    auth_data = server.register_complete(state, response)
    assert auth_data.is_user_verified()
    verify_registration_response(
        credential=json.dumps(dict(response)),
        expected_challenge=options.public_key.challenge,
        expected_origin=ORIGIN,
        expected_rp_id="example.com",
        require_user_verification=True,
    )
    assert any(r.user_verification for r in key.presence.requests)

    # A wrong finger: the ceremony fails and one UV retry is spent.
    key.presence.push(Presence.UV_FAILED)
    credential = auth_data.credential_data
    assert credential is not None
    request, state = server.authenticate_begin(
        [credential], user_verification=UserVerificationRequirement.REQUIRED
    )
    with pytest.raises(ClientError):
        client.get_assertion(request.public_key)
    assert ClientPin(key.ctap2).get_uv_retries() == BIO_SECURITY_KEY.uv_retries - 1


def test_a_failed_finger_in_a_uv_option_ceremony_through_fido2_client() -> None:
    """A key without pinUvAuthToken (as a CTAP 2.0 bio key): Fido2Client sends "uv": true
    and the key runs built-in UV inside the ceremony; a failure answers CTAP 2.1 §6.1.2 step
    11.2.3 / §6.2.2 step 6.2.3's codes, which Fido2Client maps to its ClientError codes."""
    store = MemoryStore()
    enroll(BioKey(store).bio())  # sets the PIN too
    key = BioKey(store, config=replace(BIO_SECURITY_KEY, pin_uv_auth_token=False))
    client = Fido2Client(key.device, DefaultClientDataCollector(ORIGIN), user_interaction=NoPin())
    server = Fido2Server(PublicKeyCredentialRpEntity(name="Example", id="example.com"))
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=b"erin", name="erin"),
        user_verification=UserVerificationRequirement.REQUIRED,
    )

    def failure(ceremony: Callable[[], object], outcome: Presence) -> tuple[Any, CtapStatus]:
        key.presence.push(outcome)
        with pytest.raises(ClientError) as error:
            ceremony()
        cause = error.value.cause
        assert isinstance(cause, FidoCtapError)
        return error.value.code, CtapStatus(cause.code)

    def register() -> RegistrationResponse:
        return client.make_credential(options.public_key)

    # A PIN is set, so the platform is told to use it; a timeout stays a timeout.
    assert failure(register, Presence.UV_FAILED) == (
        ClientError.ERR.BAD_REQUEST,
        CtapStatus.PUAT_REQUIRED,
    )
    assert failure(register, Presence.TIMED_OUT) == (
        ClientError.ERR.TIMEOUT,
        CtapStatus.USER_ACTION_TIMEOUT,
    )
    auth_data = server.register_complete(state, register())
    assert auth_data.is_user_verified()
    assert any(r.user_verification for r in key.presence.requests)

    credential = auth_data.credential_data
    assert credential is not None
    request, _ = server.authenticate_begin(
        [credential], user_verification=UserVerificationRequirement.REQUIRED
    )
    assert failure(lambda: client.get_assertion(request.public_key), Presence.UV_FAILED) == (
        ClientError.ERR.BAD_REQUEST,
        CtapStatus.PUAT_REQUIRED,
    )
    # The match in between restored the retries; the wrong finger since spent one.
    assert ClientPin(key.ctap2).get_uv_retries() == BIO_SECURITY_KEY.uv_retries - 1
