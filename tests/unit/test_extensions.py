"""Extension processing without PIN/UV (CTAP 2.1 §12): credProtect enforcement, credBlob,
largeBlobKey, thirdPartyPayment, input validation, and the registry as the one source of
getInfo's extension list. Driven through python-fido2's ``Ctap2`` over ``InProcessDevice``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pytest
from fido2.ctap import CtapError as FidoCtapError
from fido2.ctap2 import ClientPin, Ctap2
from fido2.ctap2.base import AttestationResponse

from authenticator import Authenticator, CtapStatus, ManualClock, MemoryStore
from authenticator.config import (
    BIO_SECURITY_KEY,
    CTAP2_0_KEY,
    PROFILES,
    AuthenticatorConfig,
    NonResident,
)
from authenticator.extensions import REGISTRY, CredProtect, advertised, enabled
from authenticator.presence import ScriptedPresence
from transports.inprocess import InProcessDevice

RP = {"id": "example.com", "name": "Example"}
ES256: list[Mapping[str, Any]] = [{"type": "public-key", "alg": -7}]


def register(
    ctap2: Ctap2, extensions: dict[str, Any], *, rk: bool = False, user: bytes = b"user"
) -> AttestationResponse:
    return ctap2.make_credential(
        os.urandom(32),
        RP,
        {"id": user, "name": "u"},
        ES256,
        extensions=extensions,
        options={"rk": rk} if rk else None,
    )


def credential_id(response: AttestationResponse) -> bytes:
    data = response.auth_data.credential_data
    assert data is not None
    return data.credential_id


def allow(*ids: bytes) -> list[Mapping[str, Any]]:
    return [{"type": "public-key", "id": i} for i in ids]


def status_of(error: pytest.ExceptionInfo[FidoCtapError]) -> CtapStatus:
    return CtapStatus(error.value.code)


def test_get_info_lists_exactly_the_enabled_registry_extensions() -> None:
    for config in PROFILES.values():
        auth = Authenticator(config=config, strict=True)
        info = Ctap2(InProcessDevice(auth)).info
        names = advertised(auth.context)
        assert list(info.extensions) == names
        assert set(names) <= set(config.extensions) <= set(REGISTRY)
        # Every listed extension has a processor, and every enabled one is listed or (for
        # minPinLength, CTAP 2.1 §12.4) signalled by its option instead.
        for extension in enabled(auth.context):
            assert extension.name in names or "setMinPINLength" in info.options
        assert ("credBlob" in names) == bool(info.max_cred_blob_length)  # 0 when absent


def test_a_ctap_2_0_profile_advertises_only_hmac_secret() -> None:
    info = Ctap2(InProcessDevice(Authenticator(config=CTAP2_0_KEY, strict=True))).info
    assert info.extensions == ["hmac-secret"]
    assert "largeBlobs" not in info.options


def test_an_unknown_extension_in_a_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="credRandom"):
        Authenticator(config=AuthenticatorConfig(extensions=("credRandom",)))


def test_disabled_extensions_are_ignored_not_processed() -> None:
    auth = Authenticator(config=AuthenticatorConfig(extensions=("credProtect",)), strict=True)
    plain = Ctap2(InProcessDevice(auth))
    response = register(plain, {"credBlob": b"blob", "credProtect": 2})
    assert response.auth_data.extensions == {"credProtect": 2}


def test_unknown_extension_inputs_are_ignored(ctap2: Ctap2) -> None:
    response = register(ctap2, {"fidoemu-unknown": {"any": [1, 2]}})
    assert response.auth_data.extensions is None


# -- credProtect ----------------------------------------------------------------------------


@pytest.mark.parametrize("rk", [False, True])
@pytest.mark.parametrize("level", list(CredProtect))
def test_cred_protect_is_reported_and_enforced(ctap2: Ctap2, level: CredProtect, rk: bool) -> None:
    response = register(ctap2, {"credProtect": int(level)}, rk=rk)
    assert response.auth_data.extensions == {"credProtect": level}
    cid = credential_id(response)
    # With the ID in an allowList: usable without UV unless userVerificationRequired.
    if level is CredProtect.UV_REQUIRED:
        with pytest.raises(FidoCtapError) as error:
            ctap2.get_assertion(RP["id"], os.urandom(32), allow(cid))
        assert status_of(error) is CtapStatus.NO_CREDENTIALS
    else:
        assertion = ctap2.get_assertion(RP["id"], os.urandom(32), allow(cid))
        assert assertion.credential is not None
        assert assertion.credential["id"] == cid
    if rk:
        # Discovered without an allowList: only userVerificationOptional.
        if level is CredProtect.UV_OPTIONAL:
            assert ctap2.get_assertion(RP["id"], os.urandom(32)).credential is not None
        else:
            with pytest.raises(FidoCtapError) as error:
                ctap2.get_assertion(RP["id"], os.urandom(32))
            assert status_of(error) is CtapStatus.NO_CREDENTIALS


def test_cred_protect_hides_only_the_protected_credential_among_several(ctap2: Ctap2) -> None:
    register(ctap2, {"credProtect": 3}, rk=True, user=b"alice")
    bob = register(ctap2, {"credProtect": 1}, rk=True, user=b"bob")
    assertion = ctap2.get_assertion(RP["id"], os.urandom(32))
    assert assertion.number_of_credentials is None  # only one is eligible
    assert assertion.credential is not None
    assert assertion.credential["id"] == credential_id(bob)


def test_cred_protect_survives_a_power_cycle_for_wrapped_and_stored_ids() -> None:
    store, clock = MemoryStore(), ManualClock()
    for mode in NonResident:
        config = AuthenticatorConfig(non_resident=mode)
        first = Ctap2(InProcessDevice(Authenticator(store, config=config, clock=clock)))
        cid = credential_id(register(first, {"credProtect": 3}))
        again = Ctap2(InProcessDevice(Authenticator(store, config=config, clock=clock)))
        with pytest.raises(FidoCtapError) as error:
            again.get_assertion(RP["id"], os.urandom(32), allow(cid))
        assert status_of(error) is CtapStatus.NO_CREDENTIALS


def test_exclude_list_ignores_uv_required_credentials_without_uv(ctap2: Ctap2) -> None:
    """CTAP 2.1 §6.1.2 step 12: without UV a platform cannot learn that a
    userVerificationRequired credential exists; lower levels are excluded as usual."""
    hidden = credential_id(register(ctap2, {"credProtect": 3}))
    visible = credential_id(register(ctap2, {"credProtect": 2}))
    response = ctap2.make_credential(
        os.urandom(32), RP, {"id": b"x", "name": "x"}, ES256, exclude_list=allow(hidden)
    )
    assert response.auth_data.credential_data is not None
    with pytest.raises(FidoCtapError) as error:
        ctap2.make_credential(
            os.urandom(32), RP, {"id": b"x", "name": "x"}, ES256, exclude_list=allow(visible)
        )
    assert status_of(error) is CtapStatus.CREDENTIAL_EXCLUDED


@pytest.mark.parametrize(
    ("value", "status"),
    [
        (0, CtapStatus.INVALID_PARAMETER),
        (4, CtapStatus.INVALID_PARAMETER),
        ("2", CtapStatus.CBOR_UNEXPECTED_TYPE),
        (True, CtapStatus.CBOR_UNEXPECTED_TYPE),
    ],
)
def test_bad_cred_protect_inputs(ctap2: Ctap2, value: Any, status: CtapStatus) -> None:
    with pytest.raises(FidoCtapError) as error:
        register(ctap2, {"credProtect": value})
    assert status_of(error) is status


# -- credBlob -------------------------------------------------------------------------------


@pytest.mark.parametrize("rk", [False, True])
def test_cred_blob_round_trip(ctap2: Ctap2, rk: bool) -> None:
    blob = os.urandom(32)
    response = register(ctap2, {"credBlob": blob}, rk=rk)
    assert response.auth_data.extensions == {"credBlob": True}
    cid = credential_id(response)
    assert len(cid) <= 128
    assertion = ctap2.get_assertion(
        RP["id"], os.urandom(32), allow(cid), extensions={"credBlob": True}
    )
    assert assertion.auth_data.extensions == {"credBlob": blob}


def test_a_cred_blob_over_the_limit_is_not_stored(ctap2: Ctap2) -> None:
    response = register(ctap2, {"credBlob": b"x" * 33})
    assert response.auth_data.extensions == {"credBlob": False}
    cid = credential_id(response)
    assertion = ctap2.get_assertion(
        RP["id"], os.urandom(32), allow(cid), extensions={"credBlob": True}
    )
    assert assertion.auth_data.extensions == {"credBlob": b""}


def test_cred_blob_not_asked_for_is_not_returned(ctap2: Ctap2) -> None:
    cid = credential_id(register(ctap2, {"credBlob": b"secret-ish"}))
    assertion = ctap2.get_assertion(RP["id"], os.urandom(32), allow(cid))
    assert assertion.auth_data.extensions is None


# -- largeBlobKey and thirdPartyPayment -----------------------------------------------------


def test_large_blob_key_for_discoverable_credentials_only(ctap2: Ctap2) -> None:
    resident = register(ctap2, {"largeBlobKey": True}, rk=True)
    assert resident.large_blob_key is not None
    assert len(resident.large_blob_key) == 32
    assert resident.auth_data.extensions is None  # not an authenticator-data output
    again = ctap2.get_assertion(RP["id"], os.urandom(32), extensions={"largeBlobKey": True})
    assert again.large_blob_key == resident.large_blob_key
    other = register(ctap2, {"largeBlobKey": True}, rk=True, user=b"other")
    assert other.large_blob_key != resident.large_blob_key
    assert register(ctap2, {"largeBlobKey": True}).large_blob_key is None


def test_large_blob_key_false_is_an_invalid_option(ctap2: Ctap2) -> None:
    with pytest.raises(FidoCtapError) as error:
        register(ctap2, {"largeBlobKey": False}, rk=True)
    assert status_of(error) is CtapStatus.INVALID_OPTION


def test_large_blob_key_is_sealed_in_the_store(auth: Authenticator, ctap2: Ctap2) -> None:
    key = register(ctap2, {"largeBlobKey": True}, rk=True).large_blob_key
    assert key is not None
    (stored,) = auth.store.credentials()
    assert key not in stored.to_record()
    assert key.hex() not in repr(stored)


@pytest.mark.parametrize("rk", [False, True])
def test_third_party_payment_marks_the_credential(ctap2: Ctap2, rk: bool) -> None:
    paying = register(ctap2, {"thirdPartyPayment": True}, rk=rk, user=b"pay")
    plain = register(ctap2, {}, rk=rk, user=b"plain")
    assert paying.auth_data.extensions == {"thirdPartyPayment": True}
    for response, expected in ((paying, True), (plain, False)):
        assertion = ctap2.get_assertion(
            RP["id"],
            os.urandom(32),
            allow(credential_id(response)),
            extensions={"thirdPartyPayment": True},
        )
        assert assertion.auth_data.extensions == {"thirdPartyPayment": expected}


def test_bio_profile_keeps_every_extension() -> None:
    assert set(BIO_SECURITY_KEY.extensions) == set(REGISTRY)


# -- hmac-secret at the CTAP level ----------------------------------------------------------


def _hmac_input(ctap2: Ctap2, salt: bytes) -> tuple[dict[int, Any], Any, bytes]:
    client_pin = ClientPin(ctap2)
    key_agreement, shared_secret = client_pin._get_shared_secret()  # type: ignore[no-untyped-call]
    protocol = client_pin.protocol
    salt_enc = protocol.encrypt(shared_secret, salt)
    return (
        {
            1: key_agreement,
            2: salt_enc,
            3: protocol.authenticate(shared_secret, salt_enc),
            4: protocol.VERSION,
        },
        protocol,
        shared_secret,
    )


def test_hmac_secret_answers_for_every_credential_of_get_next_assertion(ctap2: Ctap2) -> None:
    for user in (b"one", b"two", b"three"):
        register(ctap2, {"hmac-secret": True}, rk=True, user=user)
    salt = os.urandom(32)
    hmac_input, protocol, shared_secret = _hmac_input(ctap2, salt)
    first = ctap2.get_assertion(RP["id"], os.urandom(32), extensions={"hmac-secret": hmac_input})
    assertions = [first] + [ctap2.get_next_assertion() for _ in range(2)]
    outputs = set()
    for assertion in assertions:
        assert assertion.auth_data.extensions is not None
        encrypted = assertion.auth_data.extensions["hmac-secret"]
        outputs.add(protocol.decrypt(shared_secret, encrypted))
    assert len(outputs) == 3  # one CredRandom per credential


@pytest.mark.parametrize(
    ("tamper", "status"),
    [
        ("salt_auth", CtapStatus.PIN_AUTH_INVALID),
        ("salt_length", CtapStatus.INVALID_LENGTH),
        ("protocol", CtapStatus.INVALID_PARAMETER),
        ("key_agreement", CtapStatus.INVALID_PARAMETER),
        ("missing", CtapStatus.MISSING_PARAMETER),
        ("type", CtapStatus.CBOR_UNEXPECTED_TYPE),
    ],
)
def test_bad_hmac_secret_inputs_fail_before_any_touch(
    auth: Authenticator, ctap2: Ctap2, tamper: str, status: CtapStatus
) -> None:
    cid = credential_id(register(ctap2, {"hmac-secret": True}))
    hmac_input, protocol, shared_secret = _hmac_input(ctap2, os.urandom(32))
    if tamper == "salt_auth":
        hmac_input[3] = bytes(len(hmac_input[3]))
    elif tamper == "salt_length":
        salt_enc = protocol.encrypt(shared_secret, os.urandom(48))
        hmac_input[2], hmac_input[3] = salt_enc, protocol.authenticate(shared_secret, salt_enc)
    elif tamper == "protocol":
        hmac_input[4] = 7
    elif tamper == "key_agreement":
        hmac_input[1] = {**hmac_input[1], -2: bytes(32)}
    elif tamper == "missing":
        del hmac_input[3]
    else:
        hmac_input[2] = "not bytes"
    touches = ScriptedPresence()
    device = InProcessDevice(auth, presence=touches)
    with pytest.raises(FidoCtapError) as error:
        Ctap2(device).get_assertion(
            RP["id"], os.urandom(32), allow(cid), extensions={"hmac-secret": hmac_input}
        )
    assert status_of(error) is status
    assert touches.requests == []


def test_hmac_secret_needs_user_presence(ctap2: Ctap2) -> None:
    cid = credential_id(register(ctap2, {"hmac-secret": True}))
    hmac_input, _, _ = _hmac_input(ctap2, os.urandom(32))
    with pytest.raises(FidoCtapError) as error:
        ctap2.get_assertion(
            RP["id"],
            os.urandom(32),
            allow(cid),
            extensions={"hmac-secret": hmac_input},
            options={"up": False},
        )
    assert status_of(error) is CtapStatus.UNSUPPORTED_OPTION
