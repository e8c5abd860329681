"""Client extensions through WebAuthnClient (WebAuthn L3 §10, CTAP 2.1 §12): PRF and
hmac-secret outputs agree with python-fido2's Fido2Client on the same authenticator, large
blobs round-trip, credProtect is enforced, credBlob and credProps come back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.webauthn import PublicKeyCredentialRequestOptions
from webauthn import generate_registration_options, options_to_json
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.structs import AuthenticatorSelectionCriteria, ResidentKeyRequirement

from authenticator import Authenticator
from transports.inprocess import InProcessDevice
from transports.pytest_plugin import AuthenticatorFactory
from transports.webauthn import NotAllowedError, NotSupportedError, WebAuthnClient, b64url

ORIGIN = "https://example.com"
RP_ID = "example.com"


def create_options(extensions: dict[str, Any], *, resident: bool = True) -> dict[str, Any]:
    options: dict[str, Any] = json.loads(
        options_to_json(
            generate_registration_options(
                rp_id=RP_ID,
                rp_name="Example",
                user_name="alice",
                user_id=b"alice",
                supported_pub_key_algs=[COSEAlgorithmIdentifier.ECDSA_SHA_256],
                authenticator_selection=AuthenticatorSelectionCriteria(
                    resident_key=ResidentKeyRequirement.REQUIRED
                    if resident
                    else ResidentKeyRequirement.DISCOURAGED
                ),
            )
        )
    )
    options["extensions"] = extensions
    return options


def get_options(extensions: dict[str, Any], allow: list[str] | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "challenge": b64url(b"challenge-0123456789"),
        "rpId": RP_ID,
        "extensions": extensions,
    }
    if allow is not None:
        options["allowCredentials"] = [{"type": "public-key", "id": i} for i in allow]
    return options


def test_prf_matches_python_fido2(
    webauthn_client: WebAuthnClient, authenticator: Authenticator
) -> None:
    first, second = b64url(b"first input"), b64url(b"second input")
    created = webauthn_client.create(create_options({"prf": {"eval": {"first": first}}}))
    prf = created["clientExtensionResults"]["prf"]
    assert prf["enabled"] is True
    at_registration = prf["results"]["first"]  # hmac-secret-mc (CTAP 2.2)

    ours = webauthn_client.get(get_options({"prf": {"eval": {"first": first, "second": second}}}))
    results = ours["clientExtensionResults"]["prf"]["results"]
    assert results["first"] == at_registration  # stable across ceremonies
    assert results["second"] != results["first"]

    oracle = Fido2Client(InProcessDevice(authenticator), DefaultClientDataCollector(ORIGIN))
    request = get_options({"prf": {"eval": {"first": first}}})
    request["userVerification"] = "discouraged"  # no PIN set: both sides skip UV
    theirs = oracle.get_assertion(PublicKeyCredentialRequestOptions.from_dict(request))
    expected = dict(theirs.get_response(0))["clientExtensionResults"]["prf"]["results"]
    assert expected["first"] == results["first"]


def test_prf_eval_by_credential(webauthn_client: WebAuthnClient) -> None:
    created = webauthn_client.create(create_options({"prf": {}}))
    assert created["clientExtensionResults"]["prf"] == {"enabled": True}
    one, two = b64url(b"one"), b64url(b"two")
    by_credential = {
        "prf": {"eval": {"first": one}, "evalByCredential": {created["id"]: {"first": two}}}
    }
    chosen = webauthn_client.get(get_options(by_credential, [created["id"]]))
    plain = webauthn_client.get(get_options({"prf": {"eval": {"first": two}}}))
    assert (
        chosen["clientExtensionResults"]["prf"]["results"]
        == plain["clientExtensionResults"]["prf"]["results"]
    )
    with pytest.raises(NotSupportedError):
        webauthn_client.get(get_options(by_credential))  # needs allowCredentials


def test_hmac_secret_legacy_names(webauthn_client: WebAuthnClient) -> None:
    created = webauthn_client.create(create_options({"hmacCreateSecret": True}))
    assert created["clientExtensionResults"] == {"hmacCreateSecret": True}
    salt = b64url(bytes(range(32)))
    outputs = [
        webauthn_client.get(get_options({"hmacGetSecret": {"salt1": salt}}))[
            "clientExtensionResults"
        ]["hmacGetSecret"]["output1"]
        for _ in range(2)
    ]
    assert outputs[0] == outputs[1] and len(outputs[0]) == 43  # 32 bytes, base64url


def test_large_blob_write_then_read(webauthn_client: WebAuthnClient) -> None:
    created = webauthn_client.create(create_options({"largeBlob": {"support": "required"}}))
    assert created["clientExtensionResults"] == {"largeBlob": {"supported": True}}
    payload = b64url(b"a certificate, say")
    written = webauthn_client.get(get_options({"largeBlob": {"write": payload}}, [created["id"]]))
    assert written["clientExtensionResults"] == {"largeBlob": {"written": True}}
    read = webauthn_client.get(get_options({"largeBlob": {"read": True}}))
    assert read["clientExtensionResults"] == {"largeBlob": {"blob": payload}}
    with pytest.raises(NotSupportedError):
        webauthn_client.get(get_options({"largeBlob": {"write": payload}}))


def test_large_blob_required_but_unsupported(
    authenticator_factory: AuthenticatorFactory,
) -> None:
    client = WebAuthnClient(ORIGIN, authenticator_factory("ctap2.0-key"))
    with pytest.raises(NotAllowedError):
        client.create(create_options({"largeBlob": {"support": "required"}}))
    preferred = client.create(create_options({"largeBlob": {"support": "preferred"}}))
    assert preferred["clientExtensionResults"] == {"largeBlob": {"supported": False}}


def test_cred_protect_and_enforcement(
    webauthn_client: WebAuthnClient, authenticator_factory: AuthenticatorFactory
) -> None:
    policy = {"credentialProtectionPolicy": "userVerificationRequired"}
    created = webauthn_client.create(create_options(policy, resident=False))
    assert created["clientExtensionResults"] == {}
    with pytest.raises(NotAllowedError):  # without UV the credential is invisible (§12.1)
        webauthn_client.get(get_options({}, [created["id"]]))

    old_key = WebAuthnClient(ORIGIN, authenticator_factory("ctap2.0-key"))
    with pytest.raises(NotAllowedError):
        old_key.create(create_options({**policy, "enforceCredentialProtectionPolicy": True}))
    assert old_key.create(create_options(policy))["type"] == "public-key"  # not enforced


def test_cred_blob(webauthn_client: WebAuthnClient) -> None:
    blob = b64url(b"small secret-ish state")
    created = webauthn_client.create(create_options({"credBlob": blob}))
    assert created["clientExtensionResults"] == {"credBlob": True}
    got = webauthn_client.get(get_options({"getCredBlob": True}))
    assert got["clientExtensionResults"] == {"getCredBlob": blob}
