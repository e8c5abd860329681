"""Traces record every CTAP2 exchange a WebAuthnClient has with an authenticator (getInfo,
each clientPIN step and PIN attempt, the hmac-secret key agreement, largeBlobs reads and
writes), not only the ceremony's own command, with secrets redacted."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from fido2.ctap2 import Ctap2
from fido2.ctap2.pin import ClientPin

from authenticator import Authenticator, CtapStatus
from authenticator.commands import ClientPinSubCommand
from transports.inprocess import InProcessDevice
from transports.webauthn import NotAllowedError, Trace, WebAuthnClient, b64url, enter_pin
from transports.webauthn.user import wrong_pin

ORIGIN = "https://example.com"
RP_ID = "example.com"
PIN = "271828"


def create_options(extensions: dict[str, Any] | None = None, uv: str = "preferred") -> Any:
    return {
        "rp": {"id": RP_ID, "name": "Example"},
        "user": {"id": b64url(b"alice"), "name": "alice", "displayName": "Alice"},
        "challenge": b64url(b"registration challenge"),
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": uv},
        "extensions": extensions or {},
    }


def get_options(extensions: dict[str, Any] | None = None, allow: list[str] | None = None) -> Any:
    options: dict[str, Any] = {
        "challenge": b64url(b"authentication challenge"),
        "rpId": RP_ID,
        "userVerification": "discouraged",
        "extensions": extensions or {},
    }
    if allow:
        options["allowCredentials"] = [{"type": "public-key", "id": i} for i in allow]
    return options


def client_pin_steps(trace: Trace) -> list[tuple[int, str]]:
    """(subCommand, status) of each recorded clientPIN exchange."""
    return [
        (e.decoded()[0]["subCommand"], e.status)
        for e in trace.exchanges
        if e.command == "CLIENT_PIN"
    ]


def test_each_wrong_pin_attempt_is_recorded_and_redacted(authenticator: Authenticator) -> None:
    ClientPin(Ctap2(InProcessDevice(authenticator))).set_pin(PIN)
    trace = Trace()
    client = WebAuthnClient(ORIGIN, authenticator, trace=trace)
    client.user.then(wrong_pin(2, "999999"), enter_pin(PIN))
    client.create(create_options(uv="required"))

    token = ClientPinSubCommand.GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS
    attempts = [step for step in client_pin_steps(trace) if step[0] == token]
    assert attempts == [(token, "PIN_INVALID"), (token, "PIN_INVALID"), (token, "OK")]
    assert trace.commands()[0] == "GET_INFO"
    assert trace.commands()[-1] == "MAKE_CREDENTIAL"
    text = trace.format()
    assert PIN not in text and "999999" not in text
    # The encrypted token the authenticator sent is on record only as "<redacted ...>".
    answered = [e for e in trace.exchanges if e.command == "CLIENT_PIN" and e.status == "OK"]
    for exchange in answered:
        body = cbor2.loads(exchange.response[1:])
        for secret in (body.get(2), body.get(1, {}).get(-2)):
            if isinstance(secret, bytes):
                assert secret.hex()[:16] not in text
                assert repr(secret) not in text


def test_pin_blocked_attempts_are_all_recorded(authenticator: Authenticator) -> None:
    ClientPin(Ctap2(InProcessDevice(authenticator))).set_pin(PIN)
    trace = Trace()
    client = WebAuthnClient(ORIGIN, authenticator, trace=trace)
    client.user.then(wrong_pin(3))
    with pytest.raises(NotAllowedError) as error:
        client.create(create_options(uv="required"))
    assert error.value.status is CtapStatus.PIN_AUTH_BLOCKED
    statuses = [status for sub, status in client_pin_steps(trace) if sub != 2]
    assert statuses == ["PIN_INVALID", "PIN_INVALID", "PIN_AUTH_BLOCKED"]


def test_prf_key_agreement_is_recorded_and_salts_redacted(
    webauthn_client: WebAuthnClient,
) -> None:
    trace = webauthn_client.trace
    assert trace is not None
    created = webauthn_client.create(create_options({"prf": {}}))
    before = len(trace)
    webauthn_client.get(
        get_options({"prf": {"eval": {"first": b64url(b"input")}}}, [created["id"]])
    )
    commands = [e.command for e in trace.exchanges[before:] if e.request]
    assert "CLIENT_PIN" in commands and commands[-1] == "GET_ASSERTION"
    assert [sub for sub, _ in client_pin_steps(trace)] == [ClientPinSubCommand.GET_KEY_AGREEMENT]
    request, _ = trace.exchanges[-1].decoded()
    assert request["extensions"]["hmac-secret"].startswith("<redacted")


def test_large_blob_reads_and_writes_are_recorded(webauthn_client: WebAuthnClient) -> None:
    trace = webauthn_client.trace
    assert trace is not None
    created = webauthn_client.create(create_options({"largeBlob": {"support": "required"}}))
    payload = b64url(b"certificate")
    webauthn_client.get(get_options({"largeBlob": {"write": payload}}, [created["id"]]))
    writes = [e.decoded()[0] for e in trace.exchanges if e.command == "LARGE_BLOBS"]
    assert any("set" in request for request in writes)
    assert any("get" in request for request in writes)  # the read before the write
    count = len(trace)
    webauthn_client.get(get_options({"largeBlob": {"read": True}}))
    reads = [e for e in trace.exchanges[count:] if e.command == "LARGE_BLOBS"]
    assert reads and all(e.status == "OK" for e in reads)
    assert "config" in reads[0].decoded()[1]


def test_a_device_port_records_getinfo_and_pin_traffic(authenticator: Authenticator) -> None:
    ClientPin(Ctap2(InProcessDevice(authenticator))).set_pin(PIN)
    trace = Trace()
    client = WebAuthnClient(ORIGIN, InProcessDevice(authenticator), trace=trace)
    client.user.then(enter_pin(PIN))
    client.create(create_options(uv="required"))
    assert trace.commands()[0] == "GET_INFO"
    assert [sub for sub, _ in client_pin_steps(trace)] == [
        ClientPinSubCommand.GET_KEY_AGREEMENT,
        ClientPinSubCommand.GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS,
    ]
