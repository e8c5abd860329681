"""Registration and login through python-fido2 (Fido2Client + Fido2Server) and py_webauthn,
for every algorithm x attestation format x credential kind: the peers are the oracle."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fido2.attestation import AttestationVerifier, UntrustedAttestation
from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestationConveyancePreference,
    AttestedCredentialData,
    AuthenticatorData,
    PublicKeyCredentialParameters,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialType,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from webauthn import verify_authentication_response, verify_registration_response
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.structs import AttestationFormat as WebauthnFormat

from authenticator import AuthDataFlag, Authenticator, CoseAlgorithm, SqliteStore
from transports.inprocess import InProcessDevice

ORIGIN = "https://example.com"
RP_ID = "example.com"
RP = PublicKeyCredentialRpEntity(name="Example", id=RP_ID)
ALGORITHMS = [CoseAlgorithm.ES256, CoseAlgorithm.EDDSA, CoseAlgorithm.ES384, CoseAlgorithm.RS256]
FORMATS = ["packed", "self", "none", "fido-u2f"]


class Server(Fido2Server):
    """Asks for no UV: these ceremonies use a key without a PIN, and python-fido2's client
    refuses "preferred" UV on a PIN-capable key with no PIN set (PIN flows: test_ctap21_*)."""

    def register_begin(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("user_verification", UserVerificationRequirement.DISCOURAGED)
        return super().register_begin(*args, **kwargs)

    def authenticate_begin(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("user_verification", UserVerificationRequirement.DISCOURAGED)
        return super().authenticate_begin(*args, **kwargs)


class RootVerifier(AttestationVerifier):
    def __init__(self, root_pem: str) -> None:
        super().__init__()
        self._root = x509.load_pem_x509_certificate(root_pem.encode()).public_bytes(Encoding.DER)

    def ca_lookup(self, attestation_result: Any, auth_data: AuthenticatorData) -> bytes | None:
        return self._root


def _server(auth: Authenticator, alg: int, fmt: str) -> Fido2Server:
    conveyance = (
        AttestationConveyancePreference.NONE
        if fmt == "none"
        else AttestationConveyancePreference.DIRECT
    )
    verifier = RootVerifier(auth.attestation_root_pem()) if fmt in ("packed", "fido-u2f") else None
    server = Server(RP, attestation=conveyance, verify_attestation=verifier)
    server.allowed_algorithms = [
        PublicKeyCredentialParameters(type=PublicKeyCredentialType.PUBLIC_KEY, alg=alg)
    ]
    return server


def _register(
    auth: Authenticator, alg: int, fmt: str, resident: bool, user_id: bytes = b"user-1"
) -> tuple[Fido2Server, Fido2Client, AttestedCredentialData, dict[str, Any], bytes]:
    server = _server(auth, alg, fmt)
    client = Fido2Client(InProcessDevice(auth), DefaultClientDataCollector(ORIGIN))
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=user_id, name="alice", display_name="Alice"),
        resident_key_requirement=ResidentKeyRequirement.REQUIRED
        if resident
        else ResidentKeyRequirement.DISCOURAGED,
    )
    response = client.make_credential(options.public_key)
    auth_data = server.register_complete(state, response)
    assert auth_data.credential_data is not None
    return server, client, auth_data.credential_data, dict(response), options.public_key.challenge


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("alg", ALGORITHMS, ids=lambda a: a.name)
@pytest.mark.parametrize("resident", [True, False], ids=["resident", "non-resident"])
def test_register_and_login_verified_by_both_peers(
    alg: CoseAlgorithm, fmt: str, resident: bool
) -> None:
    auth = Authenticator(attestation=fmt, strict=True)
    if fmt == "fido-u2f" and alg != CoseAlgorithm.ES256:
        server = _server(auth, alg, fmt)
        client = Fido2Client(InProcessDevice(auth), DefaultClientDataCollector(ORIGIN))
        options, _ = server.register_begin(PublicKeyCredentialUserEntity(id=b"u", name="u"))
        with pytest.raises(Exception, match="UNSUPPORTED_ALGORITHM"):
            client.make_credential(options.public_key)
        return

    server, client, credential, response_json, challenge = _register(auth, alg, fmt, resident)
    assert credential.public_key[3] == alg

    server_only = alg == CoseAlgorithm.ES384  # py_webauthn 3.x has no ES384 (-35) verifier
    if server_only:
        _login_three_times_with_server(server, client, credential, resident)
        return

    # py_webauthn verifies the same registration independently.
    roots = {
        WebauthnFormat(f): [auth.attestation_root_pem().encode()] for f in ("packed", "fido-u2f")
    }
    verified = verify_registration_response(
        credential=json.dumps(response_json),
        expected_challenge=challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        supported_pub_key_algs=[COSEAlgorithmIdentifier(alg)],
        pem_root_certs_bytes_by_fmt=roots,
    )
    assert WebauthnFormat(verified.fmt) == WebauthnFormat("packed" if fmt == "self" else fmt)
    assert verified.credential_id == credential.credential_id

    counters: list[int] = []
    for _ in range(3):
        request, state = server.authenticate_begin([credential] if not resident else None)
        selection = client.get_assertion(request.public_key)
        assertion = selection.get_response(0)
        server.authenticate_complete(state, [credential], assertion)
        result = verify_authentication_response(
            credential=json.dumps(dict(assertion)),
            expected_challenge=request.public_key.challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
            credential_public_key=verified.credential_public_key,
            credential_current_sign_count=counters[-1] if counters else 0,
        )
        counters.append(result.new_sign_count)
        if resident:
            assert assertion.response.user_handle == b"user-1"
    assert counters == sorted(set(counters)) and counters[0] >= 1


def _login_three_times_with_server(
    server: Fido2Server, client: Fido2Client, credential: AttestedCredentialData, resident: bool
) -> None:
    counters = []
    for _ in range(3):
        options, state = server.authenticate_begin([credential] if not resident else None)
        assertion = client.get_assertion(options.public_key).get_response(0)
        server.authenticate_complete(state, [credential], assertion)
        counters.append(AuthenticatorData(assertion.response.authenticator_data).counter)
    assert counters == sorted(set(counters)) and counters[0] >= 1


def test_exclude_list_answers_credential_excluded() -> None:
    auth = Authenticator(strict=True)
    server, client, credential, _, _ = _register(auth, CoseAlgorithm.ES256, "packed", False)
    options, _ = server.register_begin(
        PublicKeyCredentialUserEntity(id=b"user-1", name="alice"), credentials=[credential]
    )
    with pytest.raises(Exception, match="CREDENTIAL_EXCLUDED"):
        client.make_credential(options.public_key)


def test_two_discoverable_credentials_come_back_through_get_next_assertion() -> None:
    auth = Authenticator(strict=True)
    server, client, first, _, _ = _register(auth, CoseAlgorithm.ES256, "none", True, b"user-1")
    _, _, second, _, _ = _register(auth, CoseAlgorithm.ES256, "none", True, b"user-2")
    options, state = server.authenticate_begin()
    selection = client.get_assertion(options.public_key)
    responses = [selection.get_response(i) for i in range(len(selection.get_assertions()))]
    assert len(responses) == 2
    assert {r.response.user_handle for r in responses} == {b"user-1", b"user-2"}
    # Newest first (CTAP 2.1 §6.2.2).
    assert responses[0].response.user_handle == b"user-2"
    for response in responses:
        server.authenticate_complete(state, [first, second], response)


def test_same_user_handle_overwrites_the_resident_credential() -> None:
    auth = Authenticator(strict=True)
    _register(auth, CoseAlgorithm.ES256, "none", True, b"user-1")
    _, _, newer, _, _ = _register(auth, CoseAlgorithm.ES256, "none", True, b"user-1")
    stored = auth.store.discoverable("example.com")
    assert [c.credential_id for c in stored] == [newer.credential_id]


def test_persistence_across_power_cycle_with_sqlite(tmp_path: Any) -> None:
    path = tmp_path / "keys.sqlite"
    auth = Authenticator(store=SqliteStore(path), strict=True)
    server, _, credential, _, _ = _register(auth, CoseAlgorithm.ES256, "packed", True)
    root = auth.attestation_root_pem()
    auth.store.close()  # type: ignore[attr-defined]

    rebooted = Authenticator(store=SqliteStore(path), strict=True)  # a power cycle
    assert rebooted.attestation_root_pem() == root
    client = Fido2Client(InProcessDevice(rebooted), DefaultClientDataCollector(ORIGIN))
    options, state = server.authenticate_begin()
    assertion = client.get_assertion(options.public_key).get_response(0)
    server.authenticate_complete(state, [credential], assertion)
    assert AuthenticatorData(assertion.response.authenticator_data).counter == 1


def test_packed_chain_is_rejected_with_another_stores_root() -> None:
    auth, other = Authenticator(strict=True), Authenticator(strict=True)
    server = Server(
        RP,
        attestation=AttestationConveyancePreference.DIRECT,
        verify_attestation=RootVerifier(other.attestation_root_pem()),
    )
    client = Fido2Client(InProcessDevice(auth), DefaultClientDataCollector(ORIGIN))
    options, state = server.register_begin(PublicKeyCredentialUserEntity(id=b"u", name="u"))
    response = client.make_credential(options.public_key)
    with pytest.raises(UntrustedAttestation):
        server.register_complete(state, response)


def test_flags_up_set_and_uv_clear_without_verification() -> None:
    auth = Authenticator(strict=True)
    server, client, credential, _, _ = _register(auth, CoseAlgorithm.ES256, "none", False)
    options, _ = server.authenticate_begin([credential])
    assertion = client.get_assertion(options.public_key).get_response(0)
    flags = AuthenticatorData(assertion.response.authenticator_data).flags
    assert flags & AuthDataFlag.UP and not flags & AuthDataFlag.UV
