"""authenticatorCredentialManagement (CTAP 2.1 §6.8) at the CBOR level: token checks in
order, metadata, enumerations that match the store, the pending-state rules (an enumeration
is continued only by its own Next and ended by anything else), delete and update; public
keys compared with the attested ones via python-fido2's AuthenticatorData."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import cbor2
import pytest
from fido2.webauthn import AuthenticatorData

from authenticator import (
    SECURITY_KEY,
    Authenticator,
    Command,
    CtapStatus,
    ManualClock,
    SqliteStore,
)
from authenticator.commands import (
    CredentialManagementResponseKey,
    CredentialManagementSubCommand,
    MakeCredentialResponseKey,
)
from authenticator.credential_management import CredentialManagementRequest
from authenticator.pin_token import Permission
from tests.pin_platform import PinPlatform, Reply, call

Sub = CredentialManagementSubCommand
Out = CredentialManagementResponseKey
PIN = "4242"
ACCOUNTS = {"a.example": [b"u1", b"u2", b"u3"], "b.example": [b"u4"], "c.example": [b"u5"]}


def rp_hash(rp_id: str) -> bytes:
    return hashlib.sha256(rp_id.encode()).digest()


class Manager:
    def __init__(self, platform: PinPlatform, token: bytes) -> None:
        self.platform, self.token = platform, token

    def __call__(
        self,
        sub: int,
        params: dict[int, Any] | None = None,
        *,
        command: int = Command.CREDENTIAL_MANAGEMENT,
        mac: bytes | None = None,
        protocol: int | None = None,
        authorize: bool = True,
    ) -> Reply:
        request: dict[int, Any] = {1: sub}
        message = bytes([sub])
        if params is not None:
            request[2] = params
            message += cbor2.dumps(params, canonical=True)
        if authorize:
            request[3] = self.platform.version if protocol is None else protocol
            request[4] = mac or self.platform.authenticate(self.token, message)
        return call(self.platform.auth, command, request)

    def next_rp(self) -> Reply:
        return self(Sub.ENUMERATE_RPS_GET_NEXT_RP, authorize=False)

    def next_credential(self) -> Reply:
        return self(Sub.ENUMERATE_CREDENTIALS_GET_NEXT_CREDENTIAL, authorize=False)

    def rps(self) -> list[dict[int, Any]]:
        first = self(Sub.ENUMERATE_RPS_BEGIN)
        assert first.status is CtapStatus.OK, first.status
        found = [first.body]
        for _ in range(first.body[Out.TOTAL_RPS] - 1):
            reply = self.next_rp()
            assert reply.status is CtapStatus.OK
            found.append(reply.body)
        return found

    def credentials(self, rp_id: str) -> list[dict[int, Any]]:
        first = self(Sub.ENUMERATE_CREDENTIALS_BEGIN, {1: rp_hash(rp_id)})
        assert first.status is CtapStatus.OK, first.status
        found = [first.body]
        for _ in range(first.body[Out.TOTAL_CREDENTIALS] - 1):
            reply = self.next_credential()
            assert reply.status is CtapStatus.OK
            found.append(reply.body)
        return found


@pytest.fixture
def platform(manual_clock: ManualClock) -> PinPlatform:
    platform = PinPlatform(Authenticator(clock=manual_clock, strict=True))
    assert platform.set_pin(PIN) is CtapStatus.OK
    return platform


@pytest.fixture
def made(platform: PinPlatform) -> dict[bytes, dict[int, Any]]:
    return make_accounts(platform)


def make_accounts(platform: PinPlatform) -> dict[bytes, dict[int, Any]]:
    """Every account in ACCOUNTS, by user ID: its makeCredential response."""
    responses = {}
    for rp_id, users in ACCOUNTS.items():
        for user_id in users:
            token = platform.token(PIN, Permission.MC, rp_id)
            assert isinstance(token, bytes)
            extensions = {"credProtect": 2, "largeBlobKey": True} if user_id == b"u2" else None
            reply = platform.make_credential(
                token, rp_id, user_id, name=user_id.decode(), extensions=extensions
            )
            assert reply.status is CtapStatus.OK
            responses[user_id] = reply.body
    # A non-discoverable credential is not managed.
    assert platform.make_credential(None, "a.example", b"u9", rk=False).status is CtapStatus.OK
    return responses


def manager(
    platform: PinPlatform, permissions: int = Permission.CM, rp_id: str | None = None
) -> Manager:
    token = platform.token(PIN, permissions, rp_id)
    assert isinstance(token, bytes)
    return Manager(platform, token)


def test_token_checks_in_order(platform: PinPlatform, made: dict[bytes, Any]) -> None:
    cm = manager(platform)
    metadata = Sub.GET_CREDS_METADATA
    assert cm(metadata, authorize=False).status is CtapStatus.PUAT_REQUIRED
    reply = call(platform.auth, Command.CREDENTIAL_MANAGEMENT, {1: metadata, 4: bytes(32)})
    assert reply.status is CtapStatus.MISSING_PARAMETER
    assert cm(metadata, protocol=3).status is CtapStatus.INVALID_PARAMETER
    assert cm(metadata, mac=bytes(32)).status is CtapStatus.PIN_AUTH_INVALID
    # The MAC covers the subcommand and its parameters.
    other = platform.authenticate(cm.token, bytes([Sub.ENUMERATE_RPS_BEGIN]))
    assert cm(metadata, mac=other).status is CtapStatus.PIN_AUTH_INVALID
    assert cm(metadata).status is CtapStatus.OK
    ga_only = manager(platform, Permission.GA | Permission.LBW, "a.example")
    assert ga_only(metadata).status is CtapStatus.PIN_AUTH_INVALID


def test_metadata(platform: PinPlatform, made: dict[bytes, Any]) -> None:
    reply = manager(platform)(Sub.GET_CREDS_METADATA)
    discoverable = sum(len(users) for users in ACCOUNTS.values())
    assert reply.body == {
        Out.EXISTING_RESIDENT_CREDENTIALS_COUNT: discoverable,
        Out.MAX_POSSIBLE_REMAINING_RESIDENT_CREDENTIALS_COUNT: (
            SECURITY_KEY.max_resident_credentials - discoverable
        ),
    }


def test_enumerations_match_the_store(platform: PinPlatform, made: dict[bytes, Any]) -> None:
    cm = manager(platform)
    rps = cm.rps()
    assert [rp[Out.RP]["id"] for rp in rps] == list(ACCOUNTS)
    assert all(rp[Out.RP_ID_HASH] == rp_hash(rp[Out.RP]["id"]) for rp in rps)
    assert {rp[Out.TOTAL_RPS] for rp in rps[:1]} == {len(ACCOUNTS)}
    for rp_id, users in ACCOUNTS.items():
        described = cm.credentials(rp_id)
        assert sorted(c[Out.USER]["id"] for c in described) == sorted(users)
        for credential in described:
            user_id = credential[Out.USER]["id"]
            assert credential[Out.USER]["name"] == user_id.decode()
            auth_data = AuthenticatorData(made[user_id][MakeCredentialResponseKey.AUTH_DATA])
            attested = auth_data.credential_data
            assert attested is not None
            assert credential[Out.CREDENTIAL_ID] == {
                "id": attested.credential_id,
                "type": "public-key",
            }
            assert credential[Out.PUBLIC_KEY] == dict(attested.public_key)
            if user_id == b"u2":
                assert credential[Out.CRED_PROTECT] == 2
                expected = made[user_id][MakeCredentialResponseKey.LARGE_BLOB_KEY]
                assert credential[Out.LARGE_BLOB_KEY] == expected
            else:
                assert credential[Out.CRED_PROTECT] == 1 and Out.LARGE_BLOB_KEY not in credential
    stored = {c.user_id for c in platform.auth.store.credentials() if c.discoverable}
    assert stored == {u for users in ACCOUNTS.values() for u in users}


def test_enumerate_credentials_errors(platform: PinPlatform, made: dict[bytes, Any]) -> None:
    cm = manager(platform)
    begin = Sub.ENUMERATE_CREDENTIALS_BEGIN
    assert cm(begin).status is CtapStatus.MISSING_PARAMETER
    assert cm(begin, {1: "a.example"}).status is CtapStatus.CBOR_UNEXPECTED_TYPE
    assert cm(begin, {1: rp_hash("nobody.example")}).status is CtapStatus.NO_CREDENTIALS


def test_an_empty_device_has_nothing_to_enumerate(platform: PinPlatform) -> None:
    cm = manager(platform)
    assert cm(Sub.ENUMERATE_RPS_BEGIN).status is CtapStatus.NO_CREDENTIALS
    assert cm(Sub.GET_CREDS_METADATA).body[Out.EXISTING_RESIDENT_CREDENTIALS_COUNT] == 0


def test_next_without_begin(platform: PinPlatform) -> None:
    cm = manager(platform)
    assert cm.next_rp().status is CtapStatus.NOT_ALLOWED
    assert cm.next_credential().status is CtapStatus.NOT_ALLOWED


def test_an_enumeration_is_continued_only_by_its_own_next(
    platform: PinPlatform, made: dict[bytes, Any]
) -> None:
    cm = manager(platform)
    assert cm(Sub.ENUMERATE_RPS_BEGIN).status is CtapStatus.OK
    assert cm.next_rp().status is CtapStatus.OK  # the second of three
    assert cm.next_credential().status is CtapStatus.NOT_ALLOWED  # the wrong Next ends it
    assert cm.next_rp().status is CtapStatus.NOT_ALLOWED
    assert cm(Sub.ENUMERATE_CREDENTIALS_BEGIN, {1: rp_hash("a.example")}).status is CtapStatus.OK
    assert cm.next_rp().status is CtapStatus.NOT_ALLOWED
    assert cm.next_credential().status is CtapStatus.NOT_ALLOWED


@pytest.mark.parametrize(
    "interruption",
    [
        "getInfo",
        "metadata",
        "clientPin",
        "largeBlobs",
        "power cycle",
        "unknown subcommand",
        "malformed request",
    ],
)
def test_anything_else_ends_an_enumeration(
    platform: PinPlatform, made: dict[bytes, Any], interruption: str
) -> None:
    cm = manager(platform)
    first = cm(Sub.ENUMERATE_CREDENTIALS_BEGIN, {1: rp_hash("a.example")})
    assert first.body[Out.TOTAL_CREDENTIALS] == 3
    auth = platform.auth
    match interruption:
        case "getInfo":
            call(auth, Command.GET_INFO)
        case "metadata":
            assert cm(Sub.GET_CREDS_METADATA).status is CtapStatus.OK
        case "clientPin":
            platform.retries()
        case "largeBlobs":
            call(auth, Command.LARGE_BLOBS, {1: 10, 3: 0})
        case "power cycle":
            platform.auth = Authenticator(auth.store, strict=True)
        case "unknown subcommand":
            assert cm(0x20).status is CtapStatus.INVALID_SUBCOMMAND
        case "malformed request":
            reply = call(auth, Command.CREDENTIAL_MANAGEMENT, {1: "next"})
            assert reply.status is CtapStatus.CBOR_UNEXPECTED_TYPE
    assert cm.next_credential().status is CtapStatus.NOT_ALLOWED


def test_the_last_next_ends_the_enumeration(platform: PinPlatform, made: dict[bytes, Any]) -> None:
    cm = manager(platform)
    assert len(cm.rps()) == 3
    assert cm.next_rp().status is CtapStatus.NOT_ALLOWED
    assert (
        cm(Sub.ENUMERATE_CREDENTIALS_BEGIN, {1: rp_hash("b.example")}).body[Out.TOTAL_CREDENTIALS]
        == 1
    )
    assert cm.next_credential().status is CtapStatus.NOT_ALLOWED  # one: nothing pending


def test_delete_credential(platform: PinPlatform, made: dict[bytes, Any]) -> None:
    cm = manager(platform)
    victim = cm.credentials("a.example")[0]
    descriptor = victim[Out.CREDENTIAL_ID]
    delete = Sub.DELETE_CREDENTIAL
    assert cm(delete).status is CtapStatus.MISSING_PARAMETER
    assert cm(delete, {2: {"type": "public-key"}}).status is CtapStatus.MISSING_PARAMETER
    assert cm(delete, {2: descriptor}).status is CtapStatus.OK
    assert cm(delete, {2: descriptor}).status is CtapStatus.NO_CREDENTIALS
    remaining = {c[Out.USER]["id"] for c in cm.credentials("a.example")}
    assert remaining == set(ACCOUNTS["a.example"]) - {victim[Out.USER]["id"]}
    assert platform.auth.store.get(descriptor["id"]) is None
    count = cm(Sub.GET_CREDS_METADATA).body[Out.EXISTING_RESIDENT_CREDENTIALS_COUNT]
    assert count == sum(len(users) for users in ACCOUNTS.values()) - 1
    # Deleting the last credential of an RP removes the RP from the enumeration.
    only = cm.credentials("b.example")[0][Out.CREDENTIAL_ID]
    assert cm(delete, {2: only}).status is CtapStatus.OK
    assert [rp[Out.RP]["id"] for rp in cm.rps()] == ["a.example", "c.example"]


def test_non_discoverable_credentials_are_not_managed(platform: PinPlatform) -> None:
    made = platform.make_credential(None, "a.example", b"u9", rk=False)
    attested = AuthenticatorData(made.body[MakeCredentialResponseKey.AUTH_DATA]).credential_data
    assert attested is not None
    cm = manager(platform)
    descriptor = {"id": attested.credential_id, "type": "public-key"}
    assert cm(Sub.DELETE_CREDENTIAL, {2: descriptor}).status is CtapStatus.NO_CREDENTIALS


def test_update_user_information(platform: PinPlatform, made: dict[bytes, Any]) -> None:
    cm = manager(platform)
    target = cm.credentials("c.example")[0]
    descriptor = target[Out.CREDENTIAL_ID]
    update = Sub.UPDATE_USER_INFORMATION
    assert cm(update, {2: descriptor}).status is CtapStatus.MISSING_PARAMETER
    wrong_user = {2: descriptor, 3: {"id": b"someone-else", "name": "x"}}
    assert cm(update, wrong_user).status is CtapStatus.INVALID_PARAMETER
    renamed = {2: descriptor, 3: {"id": b"u5", "name": "renamed", "displayName": "R"}}
    assert cm(update, renamed).status is CtapStatus.OK
    assert cm.credentials("c.example")[0][Out.USER] == renamed[3]
    # Absent fields are removed (§6.8.6).
    assert cm(update, {2: descriptor, 3: {"id": b"u5"}}).status is CtapStatus.OK
    assert cm.credentials("c.example")[0][Out.USER] == {"id": b"u5"}


def test_rp_bound_token(platform: PinPlatform, made: dict[bytes, Any]) -> None:
    cm = manager(platform, Permission.CM, "a.example")
    assert cm(Sub.GET_CREDS_METADATA).status is CtapStatus.PIN_AUTH_INVALID
    assert cm(Sub.ENUMERATE_RPS_BEGIN).status is CtapStatus.PIN_AUTH_INVALID
    assert len(cm.credentials("a.example")) == 3
    begin_b = cm(Sub.ENUMERATE_CREDENTIALS_BEGIN, {1: rp_hash("b.example")})
    assert begin_b.status is CtapStatus.PIN_AUTH_INVALID
    other = manager(platform).credentials("b.example")[0][Out.CREDENTIAL_ID]
    cm = manager(platform, Permission.CM, "a.example")
    assert cm(Sub.DELETE_CREDENTIAL, {2: other}).status is CtapStatus.PIN_AUTH_INVALID
    mine = cm.credentials("a.example")[0][Out.CREDENTIAL_ID]
    assert cm(Sub.DELETE_CREDENTIAL, {2: mine}).status is CtapStatus.OK


def test_read_only_token(platform: PinPlatform, made: dict[bytes, Any]) -> None:
    cm = manager(platform, Permission.PCMR)
    assert cm(Sub.GET_CREDS_METADATA).status is CtapStatus.OK
    assert len(cm.rps()) == 3
    victim = cm.credentials("a.example")[0]
    delete = cm(Sub.DELETE_CREDENTIAL, {2: victim[Out.CREDENTIAL_ID]})
    assert delete.status is CtapStatus.PIN_AUTH_INVALID
    update = {2: victim[Out.CREDENTIAL_ID], 3: victim[Out.USER]}
    assert cm(Sub.UPDATE_USER_INFORMATION, update).status is CtapStatus.PIN_AUTH_INVALID
    assert len(cm.credentials("a.example")) == 3  # nothing changed
    # A wrong MAC, or the right MAC under another protocol, is still PIN_AUTH_INVALID.
    assert cm(Sub.GET_CREDS_METADATA, mac=bytes(32)).status is CtapStatus.PIN_AUTH_INVALID
    other = 1 if platform.version == 2 else 2
    assert cm(Sub.GET_CREDS_METADATA, protocol=other).status is CtapStatus.PIN_AUTH_INVALID


def test_read_only_token_is_persistent(manual_clock: ManualClock, tmp_path: Path) -> None:
    """CTAP 2.2: no usage timers, survives power cycles (SqliteStore), and a new ordinary
    token neither replaces it nor is replaced by it."""
    store = SqliteStore(tmp_path / "device.sqlite")
    platform = PinPlatform(Authenticator(store, clock=manual_clock, strict=True))
    assert platform.set_pin(PIN) is CtapStatus.OK
    make_accounts(platform)
    live = manager(platform, Permission.CM | Permission.MC)
    viewer = manager(platform, Permission.PCMR)
    assert live(Sub.GET_CREDS_METADATA).status is CtapStatus.OK  # not reset by the grant
    assert platform.make_credential(live.token, "d.example", b"u6").status is CtapStatus.OK
    manual_clock.advance(11 * 60)  # past MAX_USAGE_TIME_PERIOD
    assert live(Sub.GET_CREDS_METADATA).status is CtapStatus.PIN_AUTH_INVALID
    assert viewer(Sub.GET_CREDS_METADATA).body[Out.EXISTING_RESIDENT_CREDENTIALS_COUNT] == 6
    store.close()
    store = SqliteStore(tmp_path / "device.sqlite")  # power cycle, a new process
    platform.auth = Authenticator(store, clock=manual_clock, strict=True)
    manual_clock.advance(3600)
    assert len(viewer.rps()) == 4
    assert [c[Out.USER]["id"] for c in viewer.credentials("b.example")] == [b"u4"]
    store.close()


def test_read_only_token_next_to_an_rp_bound_token(
    platform: PinPlatform, made: dict[bytes, Any]
) -> None:
    viewer = manager(platform, Permission.PCMR)
    bound = manager(platform, Permission.CM, "a.example")
    # The bound token's RP does not restrict the persistent token, nor the other way round.
    assert len(viewer.rps()) == 3
    assert len(viewer.credentials("b.example")) == 1
    assert bound(Sub.ENUMERATE_RPS_BEGIN).status is CtapStatus.PIN_AUTH_INVALID
    mine = bound.credentials("a.example")[0][Out.CREDENTIAL_ID]
    assert viewer(Sub.DELETE_CREDENTIAL, {2: mine}).status is CtapStatus.PIN_AUTH_INVALID
    assert bound(Sub.DELETE_CREDENTIAL, {2: mine}).status is CtapStatus.OK


def test_read_only_token_dies_with_the_pin_and_on_reset(
    platform: PinPlatform, made: dict[bytes, Any]
) -> None:
    viewer = manager(platform, Permission.PCMR)
    assert platform.change_pin(PIN, "5678") is CtapStatus.OK
    assert viewer(Sub.GET_CREDS_METADATA).status is CtapStatus.PIN_AUTH_INVALID
    new_pin = platform.token("5678", Permission.PCMR)
    assert isinstance(new_pin, bytes)
    viewer = Manager(platform, new_pin)
    assert viewer(Sub.GET_CREDS_METADATA).status is CtapStatus.OK
    platform.auth = Authenticator(platform.auth.context.store, strict=True)  # power cycle
    assert viewer(Sub.GET_CREDS_METADATA).status is CtapStatus.OK
    assert call(platform.auth, Command.RESET).status is CtapStatus.OK
    assert viewer(Sub.GET_CREDS_METADATA).status is CtapStatus.PIN_AUTH_INVALID


def test_unknown_subcommand(platform: PinPlatform) -> None:
    assert manager(platform)(0x42).status is CtapStatus.INVALID_SUBCOMMAND


def test_request_repr_hides_the_mac() -> None:
    assert "ab" * 8 not in repr(CredentialManagementRequest(1, None, 2, b"\xab" * 32))
