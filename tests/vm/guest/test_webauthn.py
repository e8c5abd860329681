"""In the guest: WebAuthn registration and login through python-fido2's ``Fido2Client`` and
``Fido2Server`` over /dev/hidrawN, and U2F (CTAPHID_MSG) through ``Ctap1``."""

from __future__ import annotations

import hashlib
import os

import pytest
from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.ctap1 import Ctap1
from fido2.server import Fido2Server
from fido2.webauthn import (
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from tests.vm.guest.guestlib import CALL_TIMEOUT, Key, within

RP = PublicKeyCredentialRpEntity(id="example.com", name="Example")
ORIGIN = "https://example.com"


@pytest.mark.parametrize("resident", [False, True], ids=["server-side", "discoverable"])
def test_register_and_log_in(auto_key: Key, resident: bool) -> None:
    device = auto_key.open()
    try:
        client = Fido2Client(device, DefaultClientDataCollector(ORIGIN))
        server = Fido2Server(RP)
        user = PublicKeyCredentialUserEntity(id=os.urandom(16), name="alice", display_name="A")
        options, state = server.register_begin(
            user,
            resident_key_requirement=(
                ResidentKeyRequirement.REQUIRED if resident else ResidentKeyRequirement.DISCOURAGED
            ),
            user_verification=UserVerificationRequirement.DISCOURAGED,
        )
        registration = within(CALL_TIMEOUT, lambda: client.make_credential(options.public_key))
        credential = server.register_complete(state, registration).credential_data
        assert credential is not None

        request, login_state = server.authenticate_begin(
            [] if resident else [credential],
            user_verification=UserVerificationRequirement.DISCOURAGED,
        )
        selection = within(CALL_TIMEOUT, lambda: client.get_assertion(request.public_key))
        result = server.authenticate_complete(login_state, [credential], selection.get_response(0))
        assert result.credential_id == credential.credential_id
    finally:
        device.close()


def test_u2f_register_and_authenticate(auto_key: Key) -> None:
    device = auto_key.open()
    try:
        ctap1 = Ctap1(device)
        assert within(CALL_TIMEOUT, ctap1.get_version) == "U2F_V2"
        app = hashlib.sha256(b"https://u2f.example.com").digest()
        challenge = os.urandom(32)
        registration = within(CALL_TIMEOUT, lambda: ctap1.register(challenge, app))
        registration.verify(app, challenge)
        challenge = os.urandom(32)
        signature = within(
            CALL_TIMEOUT, lambda: ctap1.authenticate(challenge, app, registration.key_handle)
        )
        signature.verify(app, challenge, registration.public_key)
        assert signature.user_presence & 1
    finally:
        device.close()
