"""CTAP1/U2F through python-fido2's Ctap1, and U2F keys used via CTAP2 with the appid rules."""

from __future__ import annotations

import hashlib
import os

import pytest
from fido2.ctap import CtapError
from fido2.ctap1 import APDU, ApduError, Ctap1
from fido2.ctap2 import Ctap2
from fido2.webauthn import AuthenticatorData

from authenticator import Authenticator, Presence, ScriptedPresence
from authenticator.u2f import StatusWord
from transports.inprocess import InProcessDevice

APP_ID = "https://example.com/appid.json"
APP_PARAM = hashlib.sha256(APP_ID.encode()).digest()


def _ctap1(auth: Authenticator, presence: ScriptedPresence | None = None) -> Ctap1:
    device = InProcessDevice(auth) if presence is None else InProcessDevice(auth, presence=presence)
    return Ctap1(device)


def test_version() -> None:
    assert _ctap1(Authenticator(strict=True)).get_version() == "U2F_V2"


def test_register_then_authenticate_verifies() -> None:
    auth = Authenticator(strict=True)
    ctap1 = _ctap1(auth)
    challenge = os.urandom(32)
    registration = ctap1.register(challenge, APP_PARAM)
    registration.verify(APP_PARAM, challenge)  # attestation signature over the registration
    counters = []
    for _ in range(3):
        client_param = os.urandom(32)
        signature = ctap1.authenticate(client_param, APP_PARAM, registration.key_handle)
        signature.verify(APP_PARAM, client_param, registration.public_key)
        assert signature.user_presence & 0x01
        counters.append(signature.counter)
    assert counters == [1, 2, 3]


def test_check_only_reports_a_known_handle_as_conditions_not_satisfied() -> None:
    auth = Authenticator(strict=True)
    ctap1 = _ctap1(auth)
    handle = ctap1.register(os.urandom(32), APP_PARAM).key_handle
    with pytest.raises(ApduError) as known:
        ctap1.authenticate(os.urandom(32), APP_PARAM, handle, check_only=True)
    assert known.value.code == StatusWord.CONDITIONS_NOT_SATISFIED
    with pytest.raises(ApduError) as other_app:
        ctap1.authenticate(os.urandom(32), os.urandom(32), handle, check_only=True)
    assert other_app.value.code == StatusWord.WRONG_DATA


def test_denied_presence_is_conditions_not_satisfied_and_device_keeps_working() -> None:
    auth = Authenticator(strict=True)
    ctap1 = _ctap1(auth, ScriptedPresence([Presence.DENIED]))
    with pytest.raises(ApduError) as denied:
        ctap1.register(os.urandom(32), APP_PARAM)
    assert denied.value.code == StatusWord.CONDITIONS_NOT_SATISFIED
    assert int(APDU.USE_NOT_SATISFIED) == int(StatusWord.CONDITIONS_NOT_SATISFIED)
    ctap1.register(os.urandom(32), APP_PARAM)  # the next touch works


def test_dont_enforce_user_presence_signs_without_up_flag() -> None:
    auth = Authenticator(strict=True)
    presence = ScriptedPresence()
    ctap1 = _ctap1(auth, presence)
    registration = ctap1.register(os.urandom(32), APP_PARAM)
    asked = len(presence.requests)
    client_param = os.urandom(32)
    apdu = (
        client_param + APP_PARAM + bytes([len(registration.key_handle)]) + registration.key_handle
    )
    response = ctap1.send_apdu(ins=Ctap1.INS.AUTHENTICATE, p1=0x08, data=apdu)
    assert response[0] == 0x00  # no user presence
    assert len(presence.requests) == asked  # nobody was asked to touch


@pytest.mark.parametrize(
    ("apdu", "status"),
    [
        (b"\x00", StatusWord.WRONG_LENGTH),
        (b"\x80\x03\x00\x00", StatusWord.CLA_NOT_SUPPORTED),
        (b"\x00\x77\x00\x00", StatusWord.INS_NOT_SUPPORTED),
        (b"\x00\x01\x00\x00\x00\x00\x05abc", StatusWord.WRONG_LENGTH),
        (b"\x00\x01\x00\x00\x00\x00\x03abc", StatusWord.WRONG_LENGTH),  # register needs 64 bytes
        (b"\x00\x03\x00\x00\x01x", StatusWord.WRONG_LENGTH),  # version takes no data
        (b"\x00\x02\x07\x00\x00\x00\x41" + bytes(64) + b"\x00", StatusWord.WRONG_DATA),
        (b"\x00\x02\x09\x00\x00\x00\x42" + bytes(64) + b"\x01\x00", StatusWord.INCORRECT_P1P2),
    ],
)
def test_malformed_apdus_get_iso7816_status_words(apdu: bytes, status: StatusWord) -> None:
    auth = Authenticator(strict=True)
    response = auth.call_u2f(apdu)
    assert int.from_bytes(response[-2:], "big") == status
    assert auth.call_u2f(b"\x00\x03\x00\x00") == b"U2F_V2\x90\x00"


def test_u2f_key_signs_ctap2_get_assertion_for_its_appid() -> None:
    """What a browser does for the appid extension (WebAuthn §10.1.1): the rpId finds
    nothing, the AppID's hash finds the U2F credential."""
    auth = Authenticator(strict=True)
    handle = _ctap1(auth).register(os.urandom(32), APP_PARAM).key_handle
    ctap2 = Ctap2(InProcessDevice(auth))
    descriptor = {"type": "public-key", "id": handle}
    assertion = ctap2.get_assertion(APP_ID, os.urandom(32), [descriptor])
    assert AuthenticatorData(assertion.auth_data).rp_id_hash == APP_PARAM
    with pytest.raises(CtapError) as other_rp:
        ctap2.get_assertion("example.com", os.urandom(32), [descriptor])
    assert other_rp.value.code == CtapError.ERR.NO_CREDENTIALS
