"""No secret ever leaves in clear: full PIN, token, credential-management, large-blob and
hmac-secret/PRF flows (with their errors) through python-fido2 over InProcessDevice and a
SQLite store, with every ``fidoemu`` logger at DEBUG. Neither the PIN, its hash, the PIN/UV
shared secrets, the pinUvAuthToken nor the hmac-secret CredRandom values may appear in a log
record, in the repr of any core object, or in the store's files."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest
from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import CtapError
from fido2.ctap2 import Config, CredentialManagement, Ctap2, LargeBlobs
from fido2.ctap2.pin import ClientPin, PinProtocolV1, PinProtocolV2
from fido2.server import Fido2Server
from fido2.utils import websafe_decode
from fido2.webauthn import (
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from authenticator import Authenticator, SqliteStore
from authenticator.extensions.hmac_secret import SECRET_WITH_UV, SECRET_WITHOUT_UV
from transports.inprocess import InProcessDevice

PIN = "correct horse 42"
NEW_PIN = "battery staple 7"
RP = PublicKeyCredentialRpEntity(name="Example", id="example.com")
ALICE = PublicKeyCredentialUserEntity(name="alice", id=b"alice-id", display_name="Alice")


class Recording:
    """Wraps a python-fido2 PIN protocol and keeps every shared secret it agrees on."""

    def __init__(self, protocol: Any, secrets: list[bytes]) -> None:
        self._protocol, self._secrets = protocol, secrets

    def encapsulate(self, peer: Any) -> Any:
        key_agreement, secret = self._protocol.encapsulate(peer)
        self._secrets.append(bytes(secret))
        return key_agreement, secret

    def __getattr__(self, name: str) -> Any:
        return getattr(self._protocol, name)


class Pin(UserInteraction):
    def request_pin(self, permissions: ClientPin.PERMISSION, rp_id: str | None) -> str | None:
        return NEW_PIN


def _forms(secret: bytes) -> list[bytes]:
    """The ways a secret could show up: raw, hex (either case), and in a repr."""
    return [secret, secret.hex().encode(), secret.hex().upper().encode(), repr(secret).encode()]


@pytest.mark.parametrize("protocol", [PinProtocolV1, PinProtocolV2])
def test_no_secret_in_logs_reprs_or_the_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, protocol: type
) -> None:
    caplog.set_level(logging.DEBUG, logger="fidoemu")
    path = tmp_path / "store.sqlite"
    store = SqliteStore(path)
    auth = Authenticator(store, strict=True)
    device = InProcessDevice(auth)
    ctap2 = Ctap2(device)
    shared: list[bytes] = []
    tokens: list[bytes] = []
    client_pin = ClientPin(ctap2, Recording(protocol(), shared))  # type: ignore[arg-type]

    client_pin.set_pin(PIN)
    for wrong in ("0000", "1111"):
        with pytest.raises(CtapError):
            client_pin.get_pin_token(wrong)
    with pytest.raises(CtapError):
        client_pin.set_pin(PIN)  # already set: an error path with the PIN in the request
    client_pin.change_pin(PIN, NEW_PIN)
    with pytest.raises(CtapError):
        client_pin.change_pin(PIN, "whatever")  # the old PIN is wrong now
    permissions = (
        ClientPin.PERMISSION.CREDENTIAL_MGMT
        | ClientPin.PERMISSION.LARGE_BLOB_WRITE
        | ClientPin.PERMISSION.AUTHENTICATOR_CFG
    )
    token = client_pin.get_pin_token(NEW_PIN, permissions)
    tokens.append(token)
    Config(ctap2, client_pin.protocol, token).set_min_pin_length(rp_ids=["example.com"])

    # Registration and sign-in with PRF (hmac-secret) and a large blob, as a browser would.
    client = Fido2Client(device, DefaultClientDataCollector("https://example.com"), Pin())
    server = Fido2Server(RP)
    creation, state = server.register_begin(
        ALICE,
        resident_key_requirement=ResidentKeyRequirement.REQUIRED,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    options = dict(creation.public_key)
    options["extensions"] = {"prf": {}, "largeBlob": {"support": "required"}}
    registration = client.make_credential(options)  # type: ignore[arg-type]
    credential = server.register_complete(state, registration).credential_data
    assert credential is not None
    request, state = server.authenticate_begin([credential])
    get_options = dict(request.public_key)
    get_options["extensions"] = {
        "prf": {"eval": {"first": b"\x01" * 32}},
        "largeBlob": {"write": b"a secret note"},
    }
    assertion = client.get_assertion(get_options).get_response(0)  # type: ignore[arg-type]
    prf = assertion.client_extension_results["prf"]["results"]["first"]
    assert len(websafe_decode(prf)) == 32

    token = client_pin.get_pin_token(NEW_PIN, permissions)
    tokens.append(token)
    credman = CredentialManagement(ctap2, client_pin.protocol, token)
    assert credman.get_metadata()[CredentialManagement.RESULT.EXISTING_CRED_COUNT] == 1
    assert len(credman.enumerate_creds(hashlib.sha256(b"example.com").digest())) == 1
    LargeBlobs(ctap2, client_pin.protocol, token).read_blob_array()
    with pytest.raises(CtapError):
        CredentialManagement(ctap2, client_pin.protocol, b"\x00" * 32).get_metadata()

    # The secrets of this run.
    secrets: dict[str, bytes] = {}
    for pin in (PIN, NEW_PIN):
        secrets[f"PIN {pin}"] = pin.encode()
        digest = hashlib.sha256(pin.encode()).digest()
        secrets[f"hash of {pin}"] = digest[:16]
        secrets[f"SHA-256 of {pin}"] = digest
    for i, secret in enumerate(shared):
        secrets[f"shared secret {i}"] = secret
    for i, value in enumerate([*tokens, auth.context.pin_token.value]):
        secrets[f"token {i}"] = value
    stored = store.credentials()
    assert len(stored) == 1
    opened = auth.context.open_secrets(stored[0])
    for name in (SECRET_WITH_UV, SECRET_WITHOUT_UV):
        secrets[name] = opened.extra[name]
    assert shared and all(len(s) >= 32 for s in shared)

    # Logs: every record of every fidoemu logger, formatted, with any traceback.
    records = [r for r in caplog.records if r.name.startswith("fidoemu")]
    assert records, "the flow logged nothing: the test would prove nothing"
    log_text = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in records
    ).encode()
    # Reprs of everything that holds or handles a secret.
    ctx = auth.context
    reprs = "\n".join(
        repr(o)
        for o in (
            auth,
            ctx,
            ctx.pin_token,
            ctx.sealer,
            ctx.entropy,
            *ctx.pin_protocols.values(),
            *stored,
            opened,
        )
    ).encode()
    store.close()
    files = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(path.name))
    for name, secret in secrets.items():
        for form in _forms(secret):
            assert form not in log_text, f"{name} in the logs"
            assert form not in reprs, f"{name} in a repr"
            if name.startswith("PIN") or len(secret) >= 16:
                assert form not in files, f"{name} in the store file"
