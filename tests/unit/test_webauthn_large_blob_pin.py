"""largeBlob writes on a PIN-protected key through WebAuthnClient (WebAuthn L3 §10.1.5,
CTAP 2.1 §6.10.2): the client gets a pinUvAuthToken with the lbw permission from the PIN the
scripted user types, and python-fido2's ``Fido2Client`` reads back what was written."""

from __future__ import annotations

import os
from typing import Any

import pytest
from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap2 import Ctap2
from fido2.ctap2.extensions import LargeBlobExtension
from fido2.ctap2.pin import ClientPin
from fido2.webauthn import (
    PublicKeyCredentialDescriptor,
    PublicKeyCredentialRequestOptions,
    PublicKeyCredentialType,
)

from authenticator import Authenticator
from tests.unit.test_webauthn_client_extensions import create_options, get_options
from transports.inprocess import InProcessDevice
from transports.webauthn import (
    NotAllowedError,
    WebAuthnClient,
    b64url,
    b64url_decode,
    enter_pin,
    wrong_pin,
)
from transports.webauthn.ctap_extensions import write_large_blob

ORIGIN = "https://example.com"
RP_ID = "example.com"
PIN = "314159"


class PinEntry(UserInteraction):
    def request_pin(self, permissions: ClientPin.PERMISSION, rp_id: str | None) -> str | None:
        return PIN


@pytest.fixture
def protected(authenticator: Authenticator) -> Authenticator:
    ClientPin(Ctap2(InProcessDevice(authenticator))).set_pin(PIN)
    return authenticator


def register(client: WebAuthnClient) -> str:
    client.user.then(enter_pin(PIN))
    created = client.create(create_options({"largeBlob": {"support": "required"}}))
    assert created["clientExtensionResults"] == {"largeBlob": {"supported": True}}
    credential_id: str = created["id"]
    return credential_id


def read_with_fido2(authenticator: Authenticator, credential_id: str) -> Any:
    """The independent reader: python-fido2's client and its largeBlob extension."""
    oracle = Fido2Client(
        InProcessDevice(authenticator),
        DefaultClientDataCollector(ORIGIN),
        user_interaction=PinEntry(),
        extensions=[LargeBlobExtension()],
    )
    options = PublicKeyCredentialRequestOptions(
        challenge=os.urandom(32),
        rp_id=RP_ID,
        allow_credentials=[
            PublicKeyCredentialDescriptor(
                type=PublicKeyCredentialType.PUBLIC_KEY, id=b64url_decode(credential_id, "id")
            )
        ],
        extensions={"largeBlob": {"read": True}},
    )
    response = oracle.get_assertion(options).get_response(0)
    return dict(response.client_extension_results)["largeBlob"]


def test_write_on_a_pin_protected_key_uses_an_lbw_token(protected: Authenticator) -> None:
    client = WebAuthnClient(ORIGIN, protected)
    credential_id = register(client)
    blob = os.urandom(700)
    client.user.then(enter_pin(PIN))
    written = client.get(get_options({"largeBlob": {"write": b64url(blob)}}, [credential_id]))
    assert written["clientExtensionResults"] == {"largeBlob": {"written": True}}
    assert [p.kind for p in client.user.prompts].count("pin") == 2  # one PIN per ceremony
    client.user.assert_done()
    assert read_with_fido2(protected, credential_id) == {"blob": b64url(blob)}
    client.user.then(enter_pin(PIN))
    read = client.get(get_options({"largeBlob": {"read": True}}, [credential_id]))
    assert read["clientExtensionResults"] == {"largeBlob": {"blob": b64url(blob)}}


def test_without_a_token_the_protected_key_refuses_the_write(protected: Authenticator) -> None:
    """What the client did before asking for lbw: the authenticator rejects the write."""
    from fido2.ctap2.blob import LargeBlobs

    credential_id = register(WebAuthnClient(ORIGIN, protected))
    info = Ctap2(InProcessDevice(protected)).info
    assert info.options["clientPin"] is True
    key = os.urandom(32)
    assert write_large_blob(InProcessDevice(protected), key, b"data") is False
    assert LargeBlobs(Ctap2(InProcessDevice(protected))).get_blob(key) is None
    assert read_with_fido2(protected, credential_id) == {}


def test_pin_asked_even_when_verification_is_discouraged(protected: Authenticator) -> None:
    client = WebAuthnClient(ORIGIN, protected)
    credential_id = register(client)
    options = get_options({"largeBlob": {"write": b64url(b"discouraged")}}, [credential_id])
    options["userVerification"] = "discouraged"
    client.user.then(wrong_pin(1), enter_pin(PIN))  # a typo first: asked again
    written = client.get(options)
    assert written["clientExtensionResults"] == {"largeBlob": {"written": True}}
    assert read_with_fido2(protected, credential_id) == {"blob": b64url(b"discouraged")}


def test_no_pin_typed_means_not_allowed_and_nothing_written(protected: Authenticator) -> None:
    client = WebAuthnClient(ORIGIN, protected)
    credential_id = register(client)
    with pytest.raises(NotAllowedError):
        client.get(get_options({"largeBlob": {"write": b64url(b"x")}}, [credential_id]))
    assert read_with_fido2(protected, credential_id) == {}
