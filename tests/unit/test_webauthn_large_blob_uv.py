"""largeBlob writes on a key with built-in UV through WebAuthnClient (WebAuthn L3 §10.1.5,
CTAP 2.1 §6.10.2): the lbw token comes from getPinUvAuthTokenUsingUvWithPermissions (§6.5.5.7.3),
the gesture answered by the scripted user, before the PIN; the PIN when built-in UV fails or is
blocked and a PIN is set. python-fido2's ``Fido2Client`` and ``LargeBlobs`` read back the bytes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pytest
from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2
from fido2.ctap2.blob import LargeBlobs
from fido2.ctap2.extensions import LargeBlobExtension
from fido2.ctap2.pin import ClientPin
from fido2.webauthn import (
    PublicKeyCredentialDescriptor,
    PublicKeyCredentialRequestOptions,
    PublicKeyCredentialType,
)

from authenticator import Authenticator
from authenticator.commands import Command
from authenticator.presence import NeedPresence, Presence
from authenticator.status import CtapStatus
from tests.unit.test_webauthn_client_extensions import create_options, get_options
from transports.inprocess import Decision, InProcessDevice
from transports.pytest_plugin import AuthenticatorFactory
from transports.webauthn import (
    AbortError,
    NotAllowedError,
    WebAuthnClient,
    WebAuthnError,
    abort,
    approve,
    b64url,
    b64url_decode,
    deny,
    enter_pin,
    time_out,
    uv_fail,
)
from transports.webauthn.trace import Exchange, Trace
from transports.webauthn.user import Touch

ORIGIN = "https://example.com"
RP_ID = "example.com"
PIN = "314159"
GET_UV_TOKEN = 0x06  # clientPIN getPinUvAuthTokenUsingUvWithPermissions
GET_PIN_TOKEN = 0x09  # clientPIN getPinUvAuthTokenUsingPinWithPermissions
GA_LBW = int(ClientPin.PERMISSION.GET_ASSERTION | ClientPin.PERMISSION.LARGE_BLOB_WRITE)


class PinEntry(UserInteraction):
    def request_pin(self, permissions: ClientPin.PERMISSION, rp_id: str | None) -> str | None:
        return PIN


def fido2_reads(authenticator: Authenticator, credential_id: str) -> tuple[Any, bytes | None]:
    """The independent readers: python-fido2's client with its largeBlob extension, and its
    ``LargeBlobs`` under the largeBlobKey that a plain getAssertion returns."""
    device = InProcessDevice(authenticator)
    oracle = Fido2Client(
        device,
        DefaultClientDataCollector(ORIGIN),
        user_interaction=PinEntry(),
        extensions=[LargeBlobExtension()],
    )
    descriptor = PublicKeyCredentialDescriptor(
        type=PublicKeyCredentialType.PUBLIC_KEY, id=b64url_decode(credential_id, "id")
    )
    options = PublicKeyCredentialRequestOptions(
        challenge=os.urandom(32),
        rp_id=RP_ID,
        allow_credentials=[descriptor],
        extensions={"largeBlob": {"read": True}},
    )
    response = oracle.get_assertion(options).get_response(0)
    ctap2 = Ctap2(device)
    allow: list[Mapping[str, Any]] = [{"type": "public-key", "id": descriptor.id}]
    assertion = ctap2.get_assertion(RP_ID, os.urandom(32), allow, {"largeBlobKey": True})
    key = assertion.large_blob_key
    assert key is not None
    return dict(response.client_extension_results)["largeBlob"], LargeBlobs(ctap2).get_blob(key)


def client_pin(trace: Trace, sub_command: int) -> list[Exchange]:
    return [
        e
        for e in trace.exchanges
        if e.request[:1] == bytes([Command.CLIENT_PIN])
        and e.decoded()[0].get("subCommand") == sub_command
    ]


def register(client: WebAuthnClient) -> str:
    created = client.create(create_options({"largeBlob": {"support": "required"}}))
    assert created["clientExtensionResults"] == {"largeBlob": {"supported": True}}
    credential_id: str = created["id"]
    return credential_id


def write(client: WebAuthnClient, credential_id: str, blob: bytes, uv: str = "preferred") -> Any:
    options = get_options({"largeBlob": {"write": b64url(blob)}}, [credential_id])
    options["userVerification"] = uv
    return client.get(options)["clientExtensionResults"]


@pytest.mark.parametrize("uv", ["preferred", "required", "discouraged"])
def test_platform_writes_with_a_built_in_uv_token(
    authenticator_factory: AuthenticatorFactory, uv: str
) -> None:
    platform = authenticator_factory("platform")
    client = WebAuthnClient(ORIGIN, platform, trace=Trace())
    credential_id = register(client)
    blob = os.urandom(700)
    client.user.then(approve())  # the fingerprint, asked for by the clientPIN subcommand
    assert write(client, credential_id, blob, uv) == {"largeBlob": {"written": True}}
    client.user.assert_done()
    assert [p.detail for p in client.user.prompts if p.kind == "presence"] == [
        "user verification with UV"
    ]
    assert not [p for p in client.user.prompts if p.kind == "pin"]
    assert client.trace is not None
    (exchange,) = client_pin(client.trace, GET_UV_TOKEN)
    request, response = exchange.decoded()
    assert (exchange.status, request["permissions"], request["rpId"]) == ("OK", GA_LBW, RP_ID)
    assert "pinUvAuthToken" in response
    commands = client.trace.commands()
    token_at = commands.index("CLIENT_PIN", commands.index("GET_INFO", 2))
    assert commands[token_at + 1 :].count("GET_ASSERTION") == 1
    assert "LARGE_BLOBS" in commands[commands.index("GET_ASSERTION", token_at) :]

    read = client.get(get_options({"largeBlob": {"read": True}}, [credential_id]))
    assert read["clientExtensionResults"] == {"largeBlob": {"blob": b64url(blob)}}
    assert fido2_reads(platform, credential_id) == ({"blob": b64url(blob)}, blob)


def test_failed_fingerprint_without_a_pin_writes_nothing(
    authenticator_factory: AuthenticatorFactory,
) -> None:
    platform = authenticator_factory("platform")
    client = WebAuthnClient(ORIGIN, platform, trace=Trace())
    credential_id = register(client)
    client.user.then(uv_fail())
    with pytest.raises(NotAllowedError) as raised:
        write(client, credential_id, b"never")
    assert raised.value.status is CtapStatus.UV_INVALID
    assert client.trace is not None
    assert [e.status for e in client_pin(client.trace, GET_UV_TOKEN)] == ["UV_INVALID"]
    assert fido2_reads(platform, credential_id) == ({}, None)


def uv_and_pin(factory: AuthenticatorFactory, uv_retries: int = 5) -> Authenticator:
    """Built-in UV and a PIN: the UV token comes first, the PIN when UV fails."""
    authenticator = factory("platform", client_pin=True, uv_retries=uv_retries)
    ClientPin(Ctap2(InProcessDevice(authenticator))).set_pin(PIN)
    return authenticator


def test_built_in_uv_is_preferred_to_the_pin(authenticator_factory: AuthenticatorFactory) -> None:
    authenticator = uv_and_pin(authenticator_factory)
    client = WebAuthnClient(ORIGIN, authenticator, trace=Trace())
    credential_id = register(client)
    client.user.then(approve())
    assert write(client, credential_id, b"by fingerprint") == {"largeBlob": {"written": True}}
    assert client.trace is not None
    assert len(client_pin(client.trace, GET_UV_TOKEN)) == 1
    assert not client_pin(client.trace, GET_PIN_TOKEN)
    assert not [p for p in client.user.prompts if p.kind == "pin"]
    assert fido2_reads(authenticator, credential_id)[1] == b"by fingerprint"


@pytest.mark.parametrize(
    ("uv_retries", "status"),
    [(2, "UV_INVALID"), (1, "UV_BLOCKED")],  # a retry spent; the last one spent
)
def test_failed_or_blocked_built_in_uv_falls_back_to_the_pin(
    authenticator_factory: AuthenticatorFactory, uv_retries: int, status: str
) -> None:
    authenticator = uv_and_pin(authenticator_factory, uv_retries)
    client = WebAuthnClient(ORIGIN, authenticator, trace=Trace())
    credential_id = register(client)
    client.user.then(uv_fail(), enter_pin(PIN))
    assert write(client, credential_id, b"by PIN") == {"largeBlob": {"written": True}}
    client.user.assert_done()
    assert client.trace is not None
    assert [e.status for e in client_pin(client.trace, GET_UV_TOKEN)] == [status]
    (pin_token,) = client_pin(client.trace, GET_PIN_TOKEN)
    assert (pin_token.status, pin_token.decoded()[0]["permissions"]) == ("OK", GA_LBW)
    assert fido2_reads(authenticator, credential_id)[1] == b"by PIN"


def test_blocked_built_in_uv_asks_for_the_pin_without_a_gesture(
    authenticator_factory: AuthenticatorFactory,
) -> None:
    """Blocked before the ceremony (uvRetries 0): UV_BLOCKED at once, no fingerprint asked."""
    authenticator = uv_and_pin(authenticator_factory, 1)
    client = WebAuthnClient(ORIGIN, authenticator, trace=Trace())
    credential_id = register(client)

    def fingerprint_fails(need: NeedPresence) -> Decision:
        return Decision(Presence.UV_FAILED, 0.0)

    with pytest.raises(CtapError) as spent:
        ClientPin(Ctap2(InProcessDevice(authenticator, presence=fingerprint_fails))).get_uv_token(
            ClientPin.PERMISSION.GET_ASSERTION, RP_ID
        )
    assert spent.value.code == CtapError.ERR.UV_BLOCKED
    client.user.then(enter_pin(PIN))
    assert write(client, credential_id, b"blocked") == {"largeBlob": {"written": True}}
    client.user.assert_done()
    assert client.trace is not None
    assert [e.status for e in client_pin(client.trace, GET_UV_TOKEN)] == ["UV_BLOCKED"]
    assert not [p for p in client.user.prompts if p.detail.endswith("with UV")]
    assert fido2_reads(authenticator, credential_id)[1] == b"blocked"


@pytest.mark.parametrize("hid", [False, True])
def test_over_a_ctap_device_the_scripted_user_answers_the_uv_gesture(
    authenticator_factory: AuthenticatorFactory, hid: bool
) -> None:
    """A DevicePort (an InProcessDevice, through CTAPHID too): the token's fingerprint is the
    scripted user's, so a failed one reaches the client as the subcommand's UV_INVALID."""
    platform = authenticator_factory("platform")
    client = WebAuthnClient(ORIGIN, InProcessDevice(platform, hid=hid), trace=Trace())
    credential_id = register(client)
    client.user.then(uv_fail())
    with pytest.raises(NotAllowedError) as raised:
        write(client, credential_id, b"refused")
    assert raised.value.status is CtapStatus.UV_INVALID
    client.user.then(approve(after=0.5))
    assert write(client, credential_id, b"accepted") == {"largeBlob": {"written": True}}
    client.user.assert_done()
    assert client.trace is not None
    assert [e.status for e in client_pin(client.trace, GET_UV_TOKEN)] == ["UV_INVALID", "OK"]
    assert fido2_reads(platform, credential_id)[1] == b"accepted"


@pytest.mark.parametrize(
    ("gesture", "error", "status"),
    [
        (time_out(after=1.0), NotAllowedError, CtapStatus.USER_ACTION_TIMEOUT),
        (deny(), NotAllowedError, CtapStatus.OPERATION_DENIED),
        (abort(), AbortError, None),
    ],
)
def test_other_gestures_end_the_ceremony_without_a_write(
    authenticator_factory: AuthenticatorFactory,
    gesture: Touch,
    error: type[WebAuthnError],
    status: CtapStatus | None,
) -> None:
    """Not a failed match: no PIN fallback even with a PIN set; nothing is written."""
    authenticator = uv_and_pin(authenticator_factory)
    client = WebAuthnClient(ORIGIN, authenticator, trace=Trace())
    credential_id = register(client)
    client.user.then(gesture)
    with pytest.raises(error) as raised:
        write(client, credential_id, b"never")
    assert raised.value.status is status
    assert not [p for p in client.user.prompts if p.kind == "pin"]
    assert fido2_reads(authenticator, credential_id) == ({}, None)


def test_without_the_token_option_no_lbw_token_is_asked_for(
    authenticator_factory: AuthenticatorFactory,
) -> None:
    """Without "pinUvAuthToken" neither built-in UV nor the PIN (legacy getPinToken: mc|ga)
    yields lbw: the client verifies with the "uv" option, asks for no PIN, and the
    authenticator refuses the write (CTAP 2.1 §6.10.2), which the RP sees as written: false."""
    authenticator = authenticator_factory("platform", client_pin=True, pin_uv_auth_token=False)
    ClientPin(Ctap2(InProcessDevice(authenticator))).set_pin(PIN)
    client = WebAuthnClient(ORIGIN, authenticator, trace=Trace())
    credential_id = register(client)
    client.user.then(approve())
    assert write(client, credential_id, b"refused") == {"largeBlob": {"written": False}}
    client.user.assert_done()
    assert client.trace is not None
    assert not client_pin(client.trace, GET_UV_TOKEN)
    assert not [p for p in client.user.prompts if p.kind == "pin"]
    assert fido2_reads(authenticator, credential_id) == ({}, None)
