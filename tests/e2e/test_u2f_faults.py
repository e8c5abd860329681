"""Faults on the CTAP1/U2F path (``Faults.apply_u2f``), checked with python-fido2's ``Ctap1``
verification: each fault is the only defect of a U2F_AUTHENTICATE response, registration is
untouched, and the key works normally once the fault is off."""

from __future__ import annotations

import hashlib
import os

import pytest
from cryptography.exceptions import InvalidSignature
from fido2.ctap1 import Ctap1, RegistrationData, SignatureData

from authenticator import Authenticator
from authenticator.faults import Faults
from transports.inprocess import InProcessDevice

APP_PARAM = hashlib.sha256(b"https://example.com").digest()


@pytest.fixture
def key() -> tuple[Authenticator, Ctap1, RegistrationData]:
    auth = Authenticator(strict=True, faults=Faults())
    ctap1 = Ctap1(InProcessDevice(auth))
    challenge = os.urandom(32)
    registration = ctap1.register(challenge, APP_PARAM)
    registration.verify(APP_PARAM, challenge)
    return auth, ctap1, registration


def authenticate(ctap1: Ctap1, registration: RegistrationData) -> tuple[bytes, SignatureData]:
    client_param = os.urandom(32)
    return client_param, ctap1.authenticate(client_param, APP_PARAM, registration.key_handle)


def test_counter_regression_goes_backwards_correctly_signed(
    key: tuple[Authenticator, Ctap1, RegistrationData],
) -> None:
    auth, ctap1, registration = key
    assert auth.faults is not None
    counters = [authenticate(ctap1, registration)[1].counter for _ in range(2)]
    assert counters == [1, 2]
    auth.faults.counter_regression = True
    cloned = []
    for _ in range(3):
        client_param, signature = authenticate(ctap1, registration)
        signature.verify(APP_PARAM, client_param, registration.public_key)  # validly signed
        assert signature.user_presence & 0x01
        cloned.append(signature.counter)
    assert cloned == [1, 1, 1]  # below the last value (2): what a clone of the key shows
    auth.faults.clear()
    client_param, signature = authenticate(ctap1, registration)
    signature.verify(APP_PARAM, client_param, registration.public_key)
    assert signature.counter == 6  # the real counter kept counting underneath


def test_invalid_signature_fails_verification_only_while_on(
    key: tuple[Authenticator, Ctap1, RegistrationData],
) -> None:
    auth, ctap1, registration = key
    assert auth.faults is not None
    auth.faults.invalid_signature = True
    client_param, signature = authenticate(ctap1, registration)
    assert signature.counter == 1 and signature.user_presence & 0x01
    with pytest.raises(InvalidSignature):
        signature.verify(APP_PARAM, client_param, registration.public_key)
    # Registration is not an assertion: its attestation signature stays valid.
    challenge = os.urandom(32)
    ctap1.register(challenge, APP_PARAM).verify(APP_PARAM, challenge)
    auth.faults.clear()
    client_param, signature = authenticate(ctap1, registration)
    signature.verify(APP_PARAM, client_param, registration.public_key)


def test_user_present_off_and_fixed_counter_are_resigned(
    key: tuple[Authenticator, Ctap1, RegistrationData],
) -> None:
    auth, ctap1, registration = key
    auth.faults = Faults(user_present_off=True, sign_count=0)
    client_param, signature = authenticate(ctap1, registration)
    assert signature.user_presence == 0
    assert signature.counter == 0
    signature.verify(APP_PARAM, client_param, registration.public_key)


def test_faults_leave_u2f_errors_alone(key: tuple[Authenticator, Ctap1, RegistrationData]) -> None:
    from fido2.ctap1 import ApduError

    from authenticator.u2f import StatusWord

    auth, ctap1, registration = key
    auth.faults = Faults(invalid_signature=True, counter_regression=True)
    with pytest.raises(ApduError) as error:
        ctap1.authenticate(os.urandom(32), os.urandom(32), registration.key_handle)
    assert error.value.code == StatusWord.WRONG_DATA
    assert ctap1.get_version() == "U2F_V2"
