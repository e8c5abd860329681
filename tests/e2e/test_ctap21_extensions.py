"""Extensions end to end through python-fido2's ``Fido2Client`` (prf, hmac-secret, largeBlob,
credBlob, credProtect, minPinLength) with ``Fido2Server`` and py_webauthn verifying every
ceremony. The PRF checks are WebAuthn L3 §10.1.4's: outputs are stable across assertions,
the same at registration (hmac-secret-mc) as later, and differ with and without UV."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fido2 import cbor
from fido2.client import ClientError, DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap2 import ClientPin, Config, Ctap2
from fido2.ctap2.extensions import (
    CredBlobExtension,
    CredPropsExtension,
    CredProtectExtension,
    HmacSecretExtension,
    LargeBlobExtension,
    MinPinLengthExtension,
)
from fido2.server import Fido2Server
from fido2.utils import websafe_encode
from fido2.webauthn import (
    AttestedCredentialData,
    AuthenticationResponse,
    PublicKeyCredentialCreationOptions,
    PublicKeyCredentialRequestOptions,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    RegistrationResponse,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from webauthn import verify_authentication_response, verify_registration_response

from authenticator import Authenticator, ManualClock, SqliteStore
from authenticator.config import SECURITY_KEY
from authenticator.extensions.hmac_secret import SECRET_WITH_UV, SECRET_WITHOUT_UV
from transports.inprocess import InProcessDevice

ORIGIN = "https://example.com"
RP_ID = "example.com"
PIN = "271828"


class PinEntry(UserInteraction):
    def request_pin(self, permissions: ClientPin.PERMISSION, rp_id: str | None) -> str | None:
        return PIN

    def request_uv(self, permissions: ClientPin.PERMISSION, rp_id: str | None) -> bool:
        return True


EXTENSIONS = [
    HmacSecretExtension(allow_hmac_secret=True),  # type: ignore[no-untyped-call]
    LargeBlobExtension(),
    CredBlobExtension(),
    CredProtectExtension(),
    MinPinLengthExtension(),
    CredPropsExtension(),
]


class Relying:
    """One RP (Fido2Server) and one browser (Fido2Client) in front of one authenticator."""

    def __init__(self, auth: Authenticator, *, pin: bool = True) -> None:
        self.auth = auth
        self.device = InProcessDevice(auth)
        if pin:
            ClientPin(Ctap2(self.device)).set_pin(PIN)
        self.client = Fido2Client(
            self.device,
            DefaultClientDataCollector(ORIGIN),
            user_interaction=PinEntry(),
            extensions=EXTENSIONS,
        )
        self.server = Fido2Server(PublicKeyCredentialRpEntity(name="Example", id=RP_ID))

    def register(
        self,
        extensions: Mapping[str, Any],
        *,
        uv: str = "required",
        resident: bool = False,
        user: bytes = b"user-1",
    ) -> tuple[AttestedCredentialData, RegistrationResponse]:
        options, state = self.server.register_begin(
            PublicKeyCredentialUserEntity(id=user, name="alice", display_name="Alice"),
            user_verification=UserVerificationRequirement(uv),
            resident_key_requirement=ResidentKeyRequirement.REQUIRED
            if resident
            else ResidentKeyRequirement.DISCOURAGED,
        )
        public_key = PublicKeyCredentialCreationOptions.from_dict(
            {**dict(options.public_key), "extensions": dict(extensions)}
        )
        response = self.client.make_credential(public_key)
        auth_data = self.server.register_complete(state, response)
        assert auth_data.credential_data is not None
        verify_registration_response(
            credential=json.dumps(dict(response)),
            expected_challenge=public_key.challenge,
            expected_origin=ORIGIN,
            expected_rp_id=RP_ID,
        )
        return auth_data.credential_data, response

    def authenticate(
        self,
        credentials: list[AttestedCredentialData],
        extensions: Mapping[str, Any],
        *,
        uv: str = "required",
    ) -> AuthenticationResponse:
        options, state = self.server.authenticate_begin(
            credentials, user_verification=UserVerificationRequirement(uv)
        )
        public_key = PublicKeyCredentialRequestOptions.from_dict(
            {**dict(options.public_key), "extensions": dict(extensions)}
        )
        response = self.client.get_assertion(public_key).get_response(0)
        self.server.authenticate_complete(state, credentials, response)
        (credential,) = [c for c in credentials if c.credential_id == response.raw_id]
        verify_authentication_response(
            credential=json.dumps(dict(response)),
            expected_challenge=public_key.challenge,
            expected_origin=ORIGIN,
            expected_rp_id=RP_ID,
            credential_public_key=_cose(credential),
            credential_current_sign_count=0,
            require_user_verification=uv == "required",
        )
        return response


def _cose(credential: AttestedCredentialData) -> bytes:
    return cbor.encode(dict(credential.public_key))


def prf(results: Mapping[str, Any]) -> tuple[bytes, bytes | None]:
    outputs = results["prf"]["results"]
    return outputs["first"], outputs.get("second")


def salts(first: bytes, second: bytes | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {"first": websafe_encode(first)}
    if second is not None:
        values["second"] = websafe_encode(second)
    return {"prf": {"eval": values}}


# -- prf / hmac-secret ----------------------------------------------------------------------


@pytest.mark.parametrize("resident", [False, True], ids=["wrapped", "resident"])
@pytest.mark.parametrize("protocol", [1, 2])
def test_prf_is_stable_and_depends_on_uv(resident: bool, protocol: int) -> None:
    config = replace(SECURITY_KEY, pin_uv_protocols=(protocol,))
    rp = Relying(Authenticator(config=config, clock=ManualClock(), strict=True))
    first, second = os.urandom(32), os.urandom(32)
    credential, registration = rp.register(
        {"prf": {"eval": {"first": websafe_encode(first)}}}, resident=resident
    )
    created = dict(registration.client_extension_results)["prf"]
    assert created["enabled"] is True
    at_registration = created["results"]["first"]  # hmac-secret-mc, with UV

    with_uv = [
        prf(rp.authenticate([credential], salts(first, second)).client_extension_results)
        for _ in range(2)
    ]
    without_uv = [
        prf(
            rp.authenticate(
                [credential], salts(first, second), uv="discouraged"
            ).client_extension_results
        )
        for _ in range(2)
    ]
    assert with_uv[0] == with_uv[1]  # stable
    assert without_uv[0] == without_uv[1]
    assert with_uv[0][0] == at_registration  # registration used CredRandomWithUV
    assert with_uv[0][0] != without_uv[0][0]  # separate CredRandom with and without UV
    assert with_uv[0][0] != with_uv[0][1]  # two salts, two outputs
    assert len({with_uv[0][0], with_uv[0][1], without_uv[0][0], without_uv[0][1]}) == 4
    other = prf(rp.authenticate([credential], salts(os.urandom(32))).client_extension_results)
    assert other[0] != with_uv[0][0]


def test_prf_without_uv_at_registration_matches_later_assertions_without_uv() -> None:
    rp = Relying(Authenticator(clock=ManualClock(), strict=True), pin=False)
    salt = os.urandom(32)
    credential, registration = rp.register(salts(salt), uv="discouraged")
    created = dict(registration.client_extension_results)["prf"]["results"]["first"]
    later = prf(
        rp.authenticate([credential], salts(salt), uv="discouraged").client_extension_results
    )
    assert later[0] == created


def test_prf_outputs_differ_between_credentials_and_devices() -> None:
    salt = os.urandom(32)
    outputs = []
    for _ in range(2):
        rp = Relying(Authenticator(clock=ManualClock(), strict=True))
        for user in (b"a", b"b"):
            credential, _ = rp.register(salts(salt), user=user)
            outputs.append(prf(rp.authenticate([credential], salts(salt)).client_extension_results))
    assert len({o[0] for o in outputs}) == 4


def test_prf_survives_a_power_cycle_with_sqlite(tmp_path: Path) -> None:
    salt = os.urandom(32)
    store = SqliteStore(tmp_path / "store.sqlite")
    clock = ManualClock()
    rp = Relying(Authenticator(store, clock=clock, strict=True))
    wrapped, _ = rp.register(salts(salt))
    resident, _ = rp.register(salts(salt), resident=True, user=b"r")
    before = [
        prf(rp.authenticate([c], salts(salt)).client_extension_results) for c in (wrapped, resident)
    ]
    again = Relying(Authenticator(store, clock=clock, strict=True), pin=False)
    again.server = rp.server
    after = [
        prf(again.authenticate([c], salts(salt)).client_extension_results)
        for c in (wrapped, resident)
    ]
    assert before == after
    store.close()


def test_hmac_secret_client_extension_with_two_salts() -> None:
    rp = Relying(Authenticator(clock=ManualClock(), strict=True))
    credential, registration = rp.register({"hmacCreateSecret": True})
    assert dict(registration.client_extension_results)["hmacCreateSecret"] is True
    salt1, salt2 = os.urandom(32), os.urandom(32)
    one = rp.authenticate(
        [credential], {"hmacGetSecret": {"salt1": websafe_encode(salt1)}}
    ).client_extension_results
    two = rp.authenticate(
        [credential],
        {"hmacGetSecret": {"salt1": websafe_encode(salt1), "salt2": websafe_encode(salt2)}},
    ).client_extension_results
    assert one["hmacGetSecret"]["output1"] == two["hmacGetSecret"]["output1"]
    assert two["hmacGetSecret"]["output2"] != two["hmacGetSecret"]["output1"]


def test_a_credential_without_hmac_secret_gets_no_prf_output() -> None:
    rp = Relying(Authenticator(clock=ManualClock(), strict=True))
    credential, _ = rp.register({})
    results = rp.authenticate([credential], salts(os.urandom(32))).client_extension_results
    assert "prf" not in results or not results["prf"].get("results")


def test_cred_random_is_sealed_and_never_logged(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    store = SqliteStore(tmp_path / "store.sqlite")
    auth = Authenticator(store, clock=ManualClock(), strict=True)
    rp = Relying(auth)
    salt = os.urandom(32)
    credential, _ = rp.register(salts(salt), resident=True)
    rp.authenticate([credential], salts(salt))
    (stored,) = store.credentials()
    secrets = auth.context.open_secrets(stored)
    cred_randoms = [secrets.extra[SECRET_WITH_UV], secrets.extra[SECRET_WITHOUT_UV]]
    assert all(len(r) == 32 for r in cred_randoms)
    exposed = [
        stored.to_record(),
        repr(stored).encode(),
        repr(secrets).encode(),
        repr(auth.context).encode(),
        caplog.text.encode(),
    ]
    store.close()
    exposed += [path.read_bytes() for path in tmp_path.iterdir()]  # the database, in clear
    for secret in cred_randoms:
        for text in exposed:
            assert secret not in text
            assert secret.hex().encode() not in text


# -- largeBlob ------------------------------------------------------------------------------


def test_large_blob_write_and_read_through_the_client() -> None:
    rp = Relying(Authenticator(clock=ManualClock(), strict=True))
    credential, registration = rp.register({"largeBlob": {"support": "required"}}, resident=True)
    assert dict(registration.client_extension_results)["largeBlob"] == {"supported": True}
    blob = os.urandom(3000)  # compressed and encrypted by the client; several fragments
    written = rp.authenticate([credential], {"largeBlob": {"write": websafe_encode(blob)}})
    assert written.client_extension_results["largeBlob"] == {"written": True}
    read = rp.authenticate([credential], {"largeBlob": {"read": True}})
    assert read.client_extension_results["largeBlob"]["blob"] == websafe_encode(blob)


def test_large_blobs_of_two_credentials_are_kept_apart() -> None:
    rp = Relying(Authenticator(clock=ManualClock(), strict=True))
    alice, _ = rp.register({"largeBlob": {"support": "required"}}, resident=True, user=b"a")
    bob, _ = rp.register({"largeBlob": {"support": "required"}}, resident=True, user=b"b")
    rp.authenticate([alice], {"largeBlob": {"write": websafe_encode(b"alice's")}})
    rp.authenticate([bob], {"largeBlob": {"write": websafe_encode(b"bob's")}})
    for credential, blob in ((alice, b"alice's"), (bob, b"bob's")):
        read = rp.authenticate([credential], {"largeBlob": {"read": True}})
        assert read.client_extension_results["largeBlob"]["blob"] == websafe_encode(blob)


# -- credBlob, credProtect, minPinLength ----------------------------------------------------


def test_cred_blob_through_the_client() -> None:
    rp = Relying(Authenticator(clock=ManualClock(), strict=True))
    blob = os.urandom(32)
    credential, registration = rp.register({"credBlob": blob}, resident=True)
    assert registration.response.attestation_object.auth_data.extensions == {"credBlob": True}
    response = rp.authenticate([credential], {"getCredBlob": True})
    assert response.response.authenticator_data.extensions == {"credBlob": blob}


def test_cred_protect_through_the_client() -> None:
    rp = Relying(Authenticator(clock=ManualClock(), strict=True))
    credential, registration = rp.register(
        {
            "credentialProtectionPolicy": "userVerificationRequired",
            "enforceCredentialProtectionPolicy": True,
        },
        resident=True,
    )
    assert registration.response.attestation_object.auth_data.extensions == {"credProtect": 3}
    assert rp.authenticate([credential], {}).response.authenticator_data.is_user_verified()
    with pytest.raises(ClientError):
        rp.authenticate([credential], {}, uv="discouraged")


def test_min_pin_length_only_for_listed_rps() -> None:
    auth = Authenticator(clock=ManualClock(), strict=True)
    rp = Relying(auth)
    _, registration = rp.register({"minPinLength": True})
    assert registration.response.attestation_object.auth_data.extensions is None
    ctap2 = Ctap2(rp.device)
    client_pin = ClientPin(ctap2)
    token = client_pin.get_pin_token(PIN, ClientPin.PERMISSION.AUTHENTICATOR_CFG)
    Config(ctap2, client_pin.protocol, token).set_min_pin_length(min_pin_length=6, rp_ids=[RP_ID])
    _, listed = rp.register({"minPinLength": True}, user=b"user-2")
    assert listed.response.attestation_object.auth_data.extensions == {"minPinLength": 6}


@pytest.mark.parametrize("resident", [False, True])
def test_cred_props_reports_what_the_device_made(resident: bool) -> None:
    rp = Relying(Authenticator(clock=ManualClock(), strict=True), pin=False)
    _, registration = rp.register({"credProps": True}, uv="discouraged", resident=resident)
    assert dict(registration.client_extension_results)["credProps"] == {"rk": resident}
