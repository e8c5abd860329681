"""Fault injection (authenticator/faults.py): each fault reaches a py_webauthn relying party
as exactly the defect it names, everything else about the response stays valid, and the
authenticator works normally once the fault is switched off."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import decode_credential_public_key, decoded_public_key_to_cryptography
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import (
    InvalidAuthenticationResponse,
    InvalidBackupFlags,
    InvalidRegistrationResponse,
)
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AttestationFormat,
    AuthenticatorSelectionCriteria,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from authenticator import Authenticator, Command, CtapStatus
from authenticator.faults import WRONG_RP_ID, Faults
from transports.webauthn import NotAllowedError, WebAuthnClient
from transports.webauthn.checks import assert_attestation, authenticator_data

ORIGIN = "https://example.com"
RP_ID = "example.com"


class RelyingParty:
    """A minimal py_webauthn relying party: register once, then log in."""

    def __init__(self, client: WebAuthnClient, root_pem: str | None = None) -> None:
        self.client = client
        self.root_pem = root_pem
        self.public_key = b""
        self.sign_count = 0

    def register(self, *, resident: bool = True, attestation: str = "none") -> Any:
        options = generate_registration_options(
            rp_id=RP_ID,
            rp_name="Example",
            user_name="alice",
            user_id=b"alice-id",
            supported_pub_key_algs=[COSEAlgorithmIdentifier.ECDSA_SHA_256],
            attestation=AttestationConveyancePreference(attestation),
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED
                if resident
                else ResidentKeyRequirement.DISCOURAGED
            ),
        )
        response = self.client.create(options_to_json(options))
        roots = None
        if self.root_pem is not None:
            roots = {AttestationFormat.PACKED: [self.root_pem.encode()]}
        verified = verify_registration_response(
            credential=response,
            expected_challenge=options.challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
            pem_root_certs_bytes_by_fmt=roots,
        )
        self.public_key = verified.credential_public_key
        return response

    def login(self, *, require_uv: bool = False) -> tuple[Any, dict[str, Any]]:
        options = generate_authentication_options(
            rp_id=RP_ID, user_verification=UserVerificationRequirement.DISCOURAGED
        )
        response = self.client.get(options_to_json(options))
        verified = verify_authentication_response(
            credential=response,
            expected_challenge=options.challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
            credential_public_key=self.public_key,
            credential_current_sign_count=self.sign_count,
            require_user_verification=require_uv,
        )
        self.sign_count = verified.new_sign_count
        return verified, response


@pytest.fixture
def rp(webauthn_client: WebAuthnClient, authenticator: Authenticator) -> RelyingParty:
    return RelyingParty(webauthn_client, authenticator.attestation_root_pem())


def _faults(authenticator: Authenticator) -> Faults:
    assert authenticator.faults is not None
    return authenticator.faults


def _signature_valid(rp: RelyingParty, response: dict[str, Any]) -> bool:
    """Check the assertion signature independently of the RP's other checks."""
    from transports.webauthn import b64url_decode

    key = decoded_public_key_to_cryptography(decode_credential_public_key(rp.public_key))
    inner = response["response"]
    signed = (
        b64url_decode(inner["authenticatorData"], "authData")
        + hashlib.sha256(b64url_decode(inner["clientDataJSON"], "cdj")).digest()
    )
    try:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(b64url_decode(inner["signature"], "sig"), signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def test_no_fault_is_active_by_default() -> None:
    faults = Faults()
    assert not faults.active()
    faults.invalid_signature = True
    assert faults.active()
    faults.clear()
    assert not faults.active()
    assert faults == Faults()


def test_invalid_signature_is_rejected_then_recovers(
    rp: RelyingParty, authenticator: Authenticator
) -> None:
    rp.register()
    _faults(authenticator).invalid_signature = True
    with pytest.raises(InvalidAuthenticationResponse, match="signature"):
        rp.login()
    _faults(authenticator).clear()
    verified, _ = rp.login()
    assert verified.new_sign_count >= 1


def test_wrong_rp_id_hash_is_signed_correctly(
    rp: RelyingParty, authenticator: Authenticator
) -> None:
    rp.register()
    _faults(authenticator).wrong_rp_id_hash = True
    with pytest.raises(InvalidAuthenticationResponse, match="RP ID hash"):
        rp.login()
    _, response = _login_unverified(rp)
    data = authenticator_data(response)
    assert data.rp_id_hash == hashlib.sha256(WRONG_RP_ID.encode()).digest()
    assert _signature_valid(rp, response)  # the RP ID hash is the only defect


def test_wrong_rp_id_hash_at_registration(rp: RelyingParty, authenticator: Authenticator) -> None:
    _faults(authenticator).wrong_rp_id_hash = True
    with pytest.raises(InvalidRegistrationResponse, match="RP ID hash"):
        rp.register(attestation="direct")


def test_user_present_off(rp: RelyingParty, authenticator: Authenticator) -> None:
    rp.register()
    _faults(authenticator).user_present_off = True
    with pytest.raises(InvalidAuthenticationResponse, match="not present"):
        rp.login()
    _, response = _login_unverified(rp)
    assert not authenticator_data(response).user_present
    assert _signature_valid(rp, response)


def test_user_verified_on_and_off(rp: RelyingParty, authenticator: Authenticator) -> None:
    rp.register()
    faults = _faults(authenticator)
    faults.user_verified_on = True
    verified, _ = rp.login(require_uv=True)  # an authenticator lying about UV passes
    assert verified.user_verified
    faults.clear()
    faults.user_verified_off = True
    with pytest.raises(InvalidAuthenticationResponse, match="verif"):
        rp.login(require_uv=True)


def test_counter_regression_is_detected_as_a_clone(
    rp: RelyingParty, authenticator: Authenticator
) -> None:
    rp.register()
    rp.login()
    rp.login()
    assert rp.sign_count == 2
    _faults(authenticator).counter_regression = True
    with pytest.raises(InvalidAuthenticationResponse, match="sign count"):
        rp.login()  # the first faulted login already fails
    _, response = _login_unverified(rp)
    assert authenticator_data(response).sign_count == 1  # backwards, not merely stalled
    assert _signature_valid(rp, response)
    _faults(authenticator).clear()
    verified, _ = rp.login()  # the real counter kept counting underneath
    assert verified.new_sign_count == 5


def test_counter_regression_goes_backwards_on_the_first_faulted_login_fido2_server(
    webauthn_client: WebAuthnClient, authenticator: Authenticator
) -> None:
    """python-fido2's Fido2Server verifies the signature but leaves the counter to the
    relying party: the stored count and the new one show the clone at once."""
    from fido2.server import Fido2Server
    from fido2.webauthn import (
        AuthenticationResponse,
        PublicKeyCredentialRpEntity,
        PublicKeyCredentialUserEntity,
        RegistrationResponse,
        ResidentKeyRequirement,
    )

    server = Fido2Server(PublicKeyCredentialRpEntity(id=RP_ID, name="Example"))
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=b"alice-id", name="alice", display_name="Alice"),
        resident_key_requirement=ResidentKeyRequirement.REQUIRED,
    )
    created = webauthn_client.create(dict(options))
    credential = server.register_complete(state, RegistrationResponse.from_dict(created))
    stored = credential.credential_data
    assert stored is not None

    def login() -> int:
        request, login_state = server.authenticate_begin([stored])
        response = webauthn_client.get(dict(request))
        server.authenticate_complete(  # the signature is valid either way
            login_state, [stored], AuthenticationResponse.from_dict(response)
        )
        return authenticator_data(response).sign_count

    seen = [login(), login()]
    assert seen == [1, 2]
    _faults(authenticator).counter_regression = True
    first_faulted = login()
    assert first_faulted < seen[-1]  # the RP's "new <= stored" check fires at once
    assert login() == first_faulted  # and keeps firing while the clone is in use


def test_fixed_sign_count_zero(rp: RelyingParty, authenticator: Authenticator) -> None:
    rp.register()
    _faults(authenticator).sign_count = 0
    for _ in range(2):
        verified, _ = rp.login()
        assert verified.new_sign_count == 0


def test_backup_flag_flips(rp: RelyingParty, authenticator: Authenticator) -> None:
    rp.register()
    faults = _faults(authenticator)
    faults.flip_backup_eligible = True
    verified, response = rp.login()
    assert authenticator_data(response).backup_eligible  # BE appears on a device-bound key
    assert verified.credential_device_type == "multi_device"
    faults.clear()
    faults.flip_backup_state = True
    _, response = _login_unverified(rp)
    data = authenticator_data(response)
    assert data.backed_up and not data.backup_eligible  # BS without BE: invalid (§6.1.3)
    with pytest.raises(InvalidBackupFlags, match="backed up"):
        rp.login()


def test_omit_user_drops_the_user_handle(
    rp: RelyingParty, authenticator: Authenticator, webauthn_client: WebAuthnClient
) -> None:
    rp.register()
    _, response = rp.login()
    assert "userHandle" in response["response"]
    _faults(authenticator).omit_user = True
    _, response = rp.login()
    assert "userHandle" not in response["response"]


def test_malformed_attestation(rp: RelyingParty, authenticator: Authenticator) -> None:
    _faults(authenticator).malformed_attestation = True
    with pytest.raises(InvalidRegistrationResponse):
        rp.register(attestation="direct")


def test_chosen_aaguid_is_attested(rp: RelyingParty, authenticator: Authenticator) -> None:
    chosen = uuid.UUID("12345678-1234-4321-8888-123456789abc")
    _faults(authenticator).aaguid = chosen.bytes
    response = rp.register(attestation="direct")  # verifies: the batch cert carries it too
    assert_attestation(response, fmt="packed", aaguid=chosen, x5c=True)


def test_force_status(rp: RelyingParty, authenticator: Authenticator) -> None:
    rp.register()
    _faults(authenticator).force_status = {Command.GET_ASSERTION: CtapStatus.USER_ACTION_TIMEOUT}
    with pytest.raises(NotAllowedError) as error:
        rp.login()
    assert error.value.status is CtapStatus.USER_ACTION_TIMEOUT
    rp.register()  # makeCredential is unaffected


def test_faults_over_get_next_assertion(
    authenticator: Authenticator, webauthn_client: WebAuthnClient
) -> None:
    """Re-signing also works for the second account (getNextAssertion)."""
    from transports.webauthn import choose_account

    keys = {}
    for name in ("alice", "bob"):
        options = generate_registration_options(
            rp_id=RP_ID,
            rp_name="Example",
            user_name=name,
            user_id=name.encode(),
            supported_pub_key_algs=[COSEAlgorithmIdentifier.ECDSA_SHA_256],
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED
            ),
        )
        response = webauthn_client.create(options_to_json(options))
        keys[response["id"]] = verify_registration_response(
            credential=response,
            expected_challenge=options.challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
        ).credential_public_key
    _faults(authenticator).user_present_off = True
    webauthn_client.user.then(choose_account(1))
    login_options = generate_authentication_options(rp_id=RP_ID)
    response = webauthn_client.get(options_to_json(login_options))
    assert not authenticator_data(response).user_present
    accounts = webauthn_client.user.prompts[-1]
    assert accounts.kind == "account" and len(accounts.options) == 2
    # Without UV the chooser shows user handles; the second one answered.
    assert response["response"]["userHandle"] == accounts.options[1]
    fake_rp = RelyingParty(webauthn_client)
    fake_rp.public_key = keys[response["id"]]
    assert _signature_valid(fake_rp, response)


def _login_unverified(rp: RelyingParty) -> tuple[None, dict[str, Any]]:
    options = generate_authentication_options(rp_id=RP_ID)
    return None, rp.client.get(options_to_json(options))
