"""authenticatorCredentialManagement through python-fido2's CredentialManagement over
InProcessDevice: metadata, enumerations matching the stored set, delete, update, RP-bound and
the persistent read-only (pcmr) token across time and power cycles, and the 0x41 prototype."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
from fido2.ctap import CtapError
from fido2.ctap2 import CredentialManagement, Ctap2
from fido2.ctap2.pin import ClientPin, PinProtocolV1, PinProtocolV2
from fido2.webauthn import PublicKeyCredentialUserEntity

from authenticator import SECURITY_KEY, Authenticator, ManualClock, SqliteStore
from transports.inprocess import InProcessDevice

PIN = "4242"
CM = CredentialManagement
P = ClientPin.PERMISSION


def _register(ctap2: Ctap2, rp_id: str, user_id: bytes, token: bytes, proto: object) -> None:
    cdh = hashlib.sha256(rp_id.encode() + user_id).digest()
    ctap2.make_credential(
        cdh,
        {"id": rp_id, "name": rp_id.upper()},
        {"id": user_id, "name": user_id.decode(), "displayName": "D"},
        [{"type": "public-key", "alg": -7}],
        options={"rk": True},
        pin_uv_param=proto.authenticate(token, cdh),  # type: ignore[attr-defined]
        pin_uv_protocol=proto.VERSION,  # type: ignore[attr-defined]
    )


def _setup(ctap2: Ctap2, protocol: type = PinProtocolV2) -> tuple[ClientPin, dict[str, set[bytes]]]:
    client_pin = ClientPin(ctap2, protocol())
    client_pin.set_pin(PIN)
    stored: dict[str, set[bytes]] = {}
    for rp_id, users in {"a.example": [b"u1", b"u2"], "b.example": [b"u3"]}.items():
        for user_id in users:
            token = client_pin.get_pin_token(PIN, P.MAKE_CREDENTIAL, rp_id)
            _register(ctap2, rp_id, user_id, token, client_pin.protocol)
            stored.setdefault(rp_id, set()).add(user_id)
    return client_pin, stored


@pytest.mark.parametrize("protocol", [PinProtocolV1, PinProtocolV2])
def test_enumerate_delete_update(ctap2: Ctap2, protocol: type) -> None:
    client_pin, stored = _setup(ctap2, protocol)
    credman = CM(ctap2, client_pin.protocol, client_pin.get_pin_token(PIN, P.CREDENTIAL_MGMT))
    metadata = credman.get_metadata()
    assert metadata[CM.RESULT.EXISTING_CRED_COUNT] == 3
    rps = credman.enumerate_rps()
    assert {rp[CM.RESULT.RP]["id"] for rp in rps} == set(stored)
    for rp in rps:
        creds = credman.enumerate_creds(rp[CM.RESULT.RP_ID_HASH])
        assert {c[CM.RESULT.USER]["id"] for c in creds} == stored[rp[CM.RESULT.RP]["id"]]
    a_hash = hashlib.sha256(b"a.example").digest()
    victim = credman.enumerate_creds(a_hash)[0]
    credman.update_user_info(
        victim[CM.RESULT.CREDENTIAL_ID],
        PublicKeyCredentialUserEntity(name="renamed", id=victim[CM.RESULT.USER]["id"]),
    )
    updated = [
        c
        for c in credman.enumerate_creds(a_hash)
        if c[CM.RESULT.CREDENTIAL_ID] == victim[CM.RESULT.CREDENTIAL_ID]
    ]
    assert updated[0][CM.RESULT.USER].get("name") == "renamed"
    assert "displayName" not in updated[0][CM.RESULT.USER]
    credman.delete_cred(victim[CM.RESULT.CREDENTIAL_ID])
    assert len(credman.enumerate_creds(a_hash)) == 1
    with pytest.raises(CtapError) as err:
        credman.delete_cred(victim[CM.RESULT.CREDENTIAL_ID])
    assert err.value.code is CtapError.ERR.NO_CREDENTIALS


def test_next_without_begin_and_interrupted_enumeration(ctap2: Ctap2) -> None:
    client_pin, _ = _setup(ctap2)
    credman = CM(ctap2, client_pin.protocol, client_pin.get_pin_token(PIN, P.CREDENTIAL_MGMT))
    with pytest.raises(CtapError) as err:
        credman.enumerate_rps_next()
    assert err.value.code is CtapError.ERR.NOT_ALLOWED
    credman.enumerate_rps_begin()
    ctap2.get_info()  # any other command ends the enumeration
    with pytest.raises(CtapError) as err:
        credman.enumerate_rps_next()
    assert err.value.code is CtapError.ERR.NOT_ALLOWED


def test_rp_bound_and_read_only_tokens(ctap2: Ctap2) -> None:
    client_pin, _ = _setup(ctap2)
    bound = client_pin.get_pin_token(PIN, P.CREDENTIAL_MGMT, "a.example")
    credman = CM(ctap2, client_pin.protocol, bound)
    assert len(credman.enumerate_creds(hashlib.sha256(b"a.example").digest())) == 2
    for call in (credman.get_metadata, credman.enumerate_rps_begin):
        with pytest.raises(CtapError) as err:
            call()
        assert err.value.code is CtapError.ERR.PIN_AUTH_INVALID
    with pytest.raises(CtapError) as err:
        credman.enumerate_creds(hashlib.sha256(b"b.example").digest())
    assert err.value.code is CtapError.ERR.PIN_AUTH_INVALID
    read_only = client_pin.get_pin_token(PIN, P.PERSISTENT_CREDENTIAL_MGMT)
    assert CM.is_readonly_supported(ctap2.info)
    viewer = CM(ctap2, client_pin.protocol, read_only)
    assert len(viewer.enumerate_rps()) == 2
    # The persistent token left the RP-bound pinUvAuthToken alone (CTAP 2.2 §6.5.5.7.2).
    assert len(credman.enumerate_creds(hashlib.sha256(b"a.example").digest())) == 2
    victim = viewer.enumerate_creds(hashlib.sha256(b"b.example").digest())[0]
    with pytest.raises(CtapError) as err:
        viewer.delete_cred(victim[CM.RESULT.CREDENTIAL_ID])
    assert err.value.code is CtapError.ERR.PIN_AUTH_INVALID
    with pytest.raises(CtapError) as err:
        viewer.update_user_info(
            victim[CM.RESULT.CREDENTIAL_ID],
            PublicKeyCredentialUserEntity(name="x", id=victim[CM.RESULT.USER]["id"]),
        )
    assert err.value.code is CtapError.ERR.PIN_AUTH_INVALID


@pytest.mark.parametrize("protocol", [PinProtocolV1, PinProtocolV2])
def test_persistent_read_only_token(tmp_path: Path, protocol: type) -> None:
    """CTAP 2.2's persistentPinUvAuthToken through python-fido2: it outlives the 10-minute
    token limit and a power cycle over SqliteStore, and dies with a PIN change and a reset."""
    clock = ManualClock()
    store = SqliteStore(tmp_path / "key.sqlite")
    ctap2 = Ctap2(InProcessDevice(Authenticator(store, clock=clock, strict=True)))
    client_pin, stored = _setup(ctap2, protocol)
    read_only = client_pin.get_pin_token(PIN, P.PERSISTENT_CREDENTIAL_MGMT)
    assert client_pin.get_pin_token(PIN, P.PERSISTENT_CREDENTIAL_MGMT) == read_only
    clock.advance(15 * 60)
    viewer = CM(ctap2, client_pin.protocol, read_only)
    assert viewer.get_metadata()[CM.RESULT.EXISTING_CRED_COUNT] == 3
    store.close()

    store = SqliteStore(tmp_path / "key.sqlite")  # power cycle: a new process, same file
    ctap2 = Ctap2(InProcessDevice(Authenticator(store, clock=clock, strict=True)))
    viewer = CM(ctap2, protocol(), read_only)  # no PIN this time
    rps = viewer.enumerate_rps()
    assert {rp[CM.RESULT.RP]["id"] for rp in rps} == set(stored)
    for rp in rps:
        creds = viewer.enumerate_creds(rp[CM.RESULT.RP_ID_HASH])
        assert {c[CM.RESULT.USER]["id"] for c in creds} == stored[rp[CM.RESULT.RP]["id"]]

    client_pin = ClientPin(ctap2, protocol())
    client_pin.change_pin(PIN, "8642")
    with pytest.raises(CtapError) as err:
        viewer.get_metadata()
    assert err.value.code is CtapError.ERR.PIN_AUTH_INVALID
    read_only = client_pin.get_pin_token("8642", P.PERSISTENT_CREDENTIAL_MGMT)
    viewer = CM(ctap2, client_pin.protocol, read_only)
    assert viewer.get_metadata()[CM.RESULT.EXISTING_CRED_COUNT] == 3
    store.close()

    store = SqliteStore(tmp_path / "key.sqlite")
    ctap2 = Ctap2(InProcessDevice(Authenticator(store, clock=clock, strict=True)))
    ctap2.reset()  # within 10 s of power-up
    ClientPin(ctap2, protocol()).set_pin("8642")
    with pytest.raises(CtapError) as err:
        CM(ctap2, protocol(), read_only).get_metadata()
    assert err.value.code is CtapError.ERR.PIN_AUTH_INVALID
    store.close()


def test_prototype_command_0x41() -> None:
    config = replace(
        SECURITY_KEY,
        versions=("FIDO_2_0", "FIDO_2_1_PRE"),
        pin_uv_auth_token=False,
        credential_management=False,
        credential_management_preview=True,
    )
    ctap2 = Ctap2(InProcessDevice(Authenticator(config=config, strict=True)))
    assert "credMgmt" not in ctap2.info.options and ctap2.info.options["credentialMgmtPreview"]
    client_pin = ClientPin(ctap2, PinProtocolV2())
    client_pin.set_pin(PIN)
    _register(ctap2, "a.example", b"u1", client_pin.get_pin_token(PIN), client_pin.protocol)
    credman = CM(ctap2, client_pin.protocol, client_pin.get_pin_token(PIN))  # legacy token
    assert [rp[CM.RESULT.RP]["id"] for rp in credman.enumerate_rps()] == ["a.example"]


def test_enc_identifier(tmp_path: Path) -> None:
    """getInfo's encIdentifier (0x19): absent until a persistent token exists, then a fresh
    ciphertext per call that python-fido2 opens with the token to one stable identifier,
    through power cycles and PIN changes, and a new one after authenticatorReset."""
    clock = ManualClock()  # authenticatorReset needs to come within 10 s of power-up
    store = SqliteStore(tmp_path / "key.sqlite")
    ctap2 = Ctap2(InProcessDevice(Authenticator(store, clock=clock, strict=True)))
    assert ctap2.get_info().enc_identifier is None
    client_pin = ClientPin(ctap2, PinProtocolV2())
    client_pin.set_pin(PIN)
    client_pin.get_pin_token(PIN, P.CREDENTIAL_MGMT)
    assert ctap2.get_info().enc_identifier is None  # an ordinary token does not count
    read_only = client_pin.get_pin_token(PIN, P.PERSISTENT_CREDENTIAL_MGMT)
    first, second = ctap2.get_info(), ctap2.get_info()
    assert first.enc_identifier is not None and len(first.enc_identifier) == 32
    assert first.enc_identifier != second.enc_identifier  # a new IV every time
    identifier = first.get_identifier(read_only)
    assert identifier is not None and len(identifier) == 16
    assert second.get_identifier(read_only) == identifier
    assert first.get_identifier(bytes(32)) != identifier  # only the holder can read it
    store.close()

    store = SqliteStore(tmp_path / "key.sqlite")  # power cycle
    ctap2 = Ctap2(InProcessDevice(Authenticator(store, clock=clock, strict=True)))
    assert ctap2.get_info().get_identifier(read_only) == identifier
    client_pin = ClientPin(ctap2, PinProtocolV1())
    client_pin.change_pin(PIN, "8642")
    assert ctap2.get_info().enc_identifier is None  # the token is gone
    read_only = client_pin.get_pin_token("8642", P.PERSISTENT_CREDENTIAL_MGMT)
    assert ctap2.get_info().get_identifier(read_only) == identifier  # the same device
    ctap2.reset()
    client_pin = ClientPin(ctap2, PinProtocolV2())
    client_pin.set_pin(PIN)
    read_only = client_pin.get_pin_token(PIN, P.PERSISTENT_CREDENTIAL_MGMT)
    assert ctap2.get_info().get_identifier(read_only) not in (None, identifier)
    store.close()


def test_no_enc_identifier_without_per_cred_mgmt_ro() -> None:
    config = replace(SECURITY_KEY, per_credential_management_read_only=False)
    ctap2 = Ctap2(InProcessDevice(Authenticator(config=config, strict=True)))
    assert "perCredMgmtRO" not in ctap2.info.options
    client_pin = ClientPin(ctap2, PinProtocolV2())
    client_pin.set_pin(PIN)
    with pytest.raises(CtapError) as err:
        client_pin.get_pin_token(PIN, P.PERSISTENT_CREDENTIAL_MGMT)
    assert err.value.code is CtapError.ERR.UNAUTHORIZED_PERMISSION
    assert ctap2.get_info().enc_identifier is None
