"""One contract for every cloud backend: SQLite (memory and a shared file) and PostgreSQL.

PostgreSQL comes from ``FIDOEMU_TEST_POSTGRES_DSN`` (a libpq connection string) or, when that is
unset, from a throwaway server the session starts from Debian's binaries (tests/postgres_server.py).
Without either, the PostgreSQL cases are skipped on a developer machine and FAIL under CI=true,
so CI can't go green without having run them. Each test gets a fresh schema, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.server import Fido2Server
from fido2.webauthn import (
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
)

from authenticator.credential import CredentialSecrets
from tests.postgres_server import temporary_postgres
from transports.inprocess import InProcessDevice
from transports.sync import GOOGLE_PASSWORD_MANAGER, ICLOUD_KEYCHAIN, Cloud, Envelope
from transports.sync.backend import CloudBackend, Conflict, SqliteCloudBackend

DSN_VARIABLE = "FIDOEMU_TEST_POSTGRES_DSN"


def _postgres(schema: str) -> CloudBackend:
    dsn = os.environ.get(DSN_VARIABLE)
    if not dsn:
        if os.environ.get("CI"):
            pytest.fail(f"CI=true but {DSN_VARIABLE} is not set: the PostgreSQL cloud is untested")
        pytest.skip(f"set {DSN_VARIABLE} to run the PostgreSQL cloud contract")
    from transports.sync.postgres import PostgresCloudBackend

    return PostgresCloudBackend(dsn, schema=schema)


class Opener:
    """Opens connections to one cloud storage (each a new backend object)."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.path = tmp_path / "cloud.sqlite"
        self.schema = f"fidoemu_test_{uuid.uuid4().hex[:12]}"
        self.opened: list[CloudBackend] = []

    def __call__(self) -> CloudBackend:
        backend: CloudBackend
        if self.kind == "sqlite-memory":
            backend = SqliteCloudBackend()
        elif self.kind == "sqlite-file":
            backend = SqliteCloudBackend(self.path)
        else:
            backend = _postgres(self.schema)
        self.opened.append(backend)
        return backend

    def close(self) -> None:
        if self.opened and self.kind == "postgres":
            from transports.sync.postgres import PostgresCloudBackend

            first = self.opened[0]
            assert isinstance(first, PostgresCloudBackend)
            first.drop_schema()
        for backend in self.opened:
            backend.close()


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[None]:
    """Point DSN_VARIABLE at a server: the given one, or one started for this session."""
    if os.environ.get(DSN_VARIABLE):
        yield
        return
    with temporary_postgres() as dsn:
        if dsn is not None:
            os.environ[DSN_VARIABLE] = dsn
        try:
            yield
        finally:
            os.environ.pop(DSN_VARIABLE, None)


@pytest.fixture(params=["sqlite-memory", "sqlite-file", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    if request.param == "postgres":
        request.getfixturevalue("postgres_dsn")
    result = Opener(str(request.param), tmp_path)
    yield result
    result.close()


@pytest.fixture(params=["sqlite-file", "postgres"])
def shared_opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Only storage that several connections (processes, machines) can share."""
    if request.param == "postgres":
        request.getfixturevalue("postgres_dsn")
    result = Opener(str(request.param), tmp_path)
    yield result
    result.close()


def _open(opener: Opener) -> CloudBackend:
    return opener()


def _envelope(routing_id: bytes, author: str = "phone", body: bytes = b"ct") -> Envelope:
    return Envelope(routing_id, 1, False, author, wrapped_key=b"wk", ciphertext=body)


def test_accounts_are_created_once(opener: Opener) -> None:
    backend = _open(opener)
    first = backend.create_account("alice", "icloud-keychain", 1.0)
    again = backend.create_account("alice", "google-password-manager", 2.0)
    assert first == again and first.provider == "icloud-keychain" and first.generation == 1
    assert backend.get_account("bob") is None


def test_put_records_is_compare_and_set(opener: Opener) -> None:
    backend = _open(opener)
    backend.create_account("alice", "icloud-keychain", 1.0)
    (stored,) = backend.put_records("alice", [(_envelope(b"r1"), 0)], 5.0)
    assert isinstance(stored, Envelope) and stored.revision == 1 and stored.server_time == 5.0
    (stale,) = backend.put_records("alice", [(_envelope(b"r1", body=b"late"), 0)], 6.0)
    assert isinstance(stale, Conflict) and stale.current == stored
    (updated,) = backend.put_records("alice", [(_envelope(b"r1", body=b"v2"), 1)], 7.0)
    assert isinstance(updated, Envelope) and updated.revision == 2 and updated.seq > stored.seq
    assert backend.record("alice", b"r1") == updated
    (missing,) = backend.put_records("alice", [(_envelope(b"r2"), 3)], 8.0)
    assert isinstance(missing, Conflict) and missing.current is None


def test_changes_are_the_latest_versions_in_log_order(opener: Opener) -> None:
    backend = _open(opener)
    backend.create_account("alice", "icloud-keychain", 1.0)
    backend.create_account("bob", "icloud-keychain", 1.0)
    backend.put_records("alice", [(_envelope(b"a"), 0), (_envelope(b"b"), 0)], 1.0)
    backend.put_records("bob", [(_envelope(b"x"), 0)], 1.0)
    backend.put_records("alice", [(_envelope(b"a", body=b"a2"), 1)], 2.0)
    changes = backend.changes("alice", 0)
    assert [(c.routing_id, c.revision) for c in changes] == [(b"b", 1), (b"a", 2)]
    assert [c.seq for c in changes] == sorted(c.seq for c in changes)
    assert backend.changes("alice", changes[-1].seq) == []
    assert [c.routing_id for c in backend.changes("bob", 0)] == [b"x"]


def test_members_shares_and_removal(opener: Opener) -> None:
    backend = _open(opener)
    backend.create_account("alice", "icloud-keychain", 1.0)
    backend.add_member("alice", "phone", b"P" * 32, 1.0)
    backend.add_member("alice", "laptop", b"L" * 32, 2.0)
    backend.put_shares("alice", [("phone", 1, b"s1"), ("laptop", 1, b"s2"), ("phone", 2, b"s3")])
    assert backend.shares("alice", "phone") == {1: b"s1", 2: b"s3"}
    backend.remove_member("alice", "laptop", 3.0)
    members = {m.name: m for m in backend.members("alice")}
    assert members["phone"].active and not members["laptop"].active
    assert backend.shares("alice", "laptop") == {}
    backend.add_member("alice", "laptop", b"N" * 32, 4.0)  # rejoins with a new identity
    assert {m.name: m.public_key for m in backend.members("alice")}["laptop"] == b"N" * 32


def test_hsm_counts_attempts_apart_from_the_cloud_database(opener: Opener) -> None:
    backend = _open(opener)
    backend.create_account("alice", "icloud-keychain", 1.0)
    backend.put_escrow("alice", b"sealed")
    hsm = backend.hsm
    assert hsm.master_key(b"K" * 32) == b"K" * 32 == hsm.master_key(b"other")
    assert hsm.attempts("alice") is None and hsm.take_attempt("alice") is None
    hsm.set_attempts("alice", 2)
    assert [hsm.take_attempt("alice"), hsm.take_attempt("alice")] == [1, 0]
    assert hsm.take_attempt("alice") is None, "no attempt below zero"
    hsm.return_attempt("alice")
    assert hsm.attempts("alice") == 1
    blob = b"".join(v for row in backend.dump() for v in row if isinstance(v, bytes))
    assert b"sealed" in blob and b"K" * 32 not in blob, "the HSM's key is in the cloud database"
    hsm.forget("alice")
    assert hsm.attempts("alice") is None and backend.escrow("alice") == b"sealed"
    backend.delete_escrow("alice")
    assert backend.escrow("alice") is None


def test_reset_wipes_the_account_and_bumps_the_generation(opener: Opener) -> None:
    backend = _open(opener)
    backend.create_account("alice", "icloud-keychain", 1.0)
    backend.add_member("alice", "phone", b"P" * 32, 1.0)
    backend.put_records("alice", [(_envelope(b"a"), 0)], 1.0)
    backend.put_escrow("alice", b"sealed")
    row = backend.reset_account("alice")
    assert row.generation == 2 and row.epoch == 0
    assert backend.members("alice") == [] and backend.changes("alice", 0) == []
    assert backend.escrow("alice") is None


def test_two_connections_share_one_account(shared_opener: Opener) -> None:
    """Several processes (SQLite file) or machines (PostgreSQL) on one account."""
    first, second = shared_opener(), shared_opener()
    first.create_account("alice", "icloud-keychain", 1.0)
    (a,) = first.put_records("alice", [(_envelope(b"a"), 0)], 1.0)
    (b,) = second.put_records("alice", [(_envelope(b"b", author="laptop"), 0)], 2.0)
    (late,) = second.put_records("alice", [(_envelope(b"a", author="laptop"), 0)], 3.0)
    assert isinstance(a, Envelope) and isinstance(b, Envelope) and b.seq == a.seq + 1
    assert isinstance(late, Conflict)
    assert [c.routing_id for c in first.changes("alice", 0)] == [b"a", b"b"]
    assert first.hsm.master_key(b"1" * 32) == second.hsm.master_key(b"2" * 32) == b"1" * 32
    first.hsm.set_attempts("alice", 2)
    assert second.hsm.take_attempt("alice") == 1 and first.hsm.attempts("alice") == 1


def test_a_synced_keychain_leaves_only_ciphertext_in_the_cloud(opener: Opener) -> None:
    backend = _open(opener)
    cloud = Cloud(backend=backend, strict=True)
    account = cloud.account("alice@example.com", provider=ICLOUD_KEYCHAIN, recovery_code="1357")
    phone, laptop = account.device("phone"), account.device("laptop")
    server = Fido2Server(PublicKeyCredentialRpEntity(name="Secret RP", id="secret-rp.example"))
    client = Fido2Client(
        InProcessDevice(phone.authenticator),
        DefaultClientDataCollector("https://secret-rp.example"),
    )
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=b"user-handle-7", name="carol", display_name="Carol Q"),
        resident_key_requirement=ResidentKeyRequirement.REQUIRED,
    )
    credential = server.register_complete(state, client.make_credential(options.public_key))
    assert credential.credential_data is not None
    credential_id = credential.credential_data.credential_id
    account.sync()
    assert laptop.store.record(credential_id) is not None

    (stored,) = phone.passkeys()
    secrets = CredentialSecrets.open(
        phone.store.sealer(), stored.sealed_secrets, stored.credential_id
    )
    assert secrets is not None
    forbidden = {
        "private key": secrets.key.private_bytes(),
        "credential ID": credential_id,
        "user handle": b"user-handle-7",
        "rp ID": b"secret-rp.example",
        "user name": b"carol",
        "display name": b"Carol Q",
    }
    membership = phone._membership
    assert membership is not None
    for epoch, secret in membership.secrets.epochs.items():
        forbidden[f"epoch {epoch} secret"] = secret
    forbidden["routing key"] = membership.secrets.routing_key
    blob = b"".join(
        v if isinstance(v, bytes) else str(v).encode() for row in backend.dump() for v in row
    )
    for what, value in forbidden.items():
        assert value not in blob, f"the cloud can read the {what}"


def test_a_gpm_keychain_syncs_over_every_backend(opener: Opener) -> None:
    cloud = Cloud(backend=_open(opener), strict=True)
    account = cloud.account("bob@example.com", provider=GOOGLE_PASSWORD_MANAGER)
    phone, laptop = account.device("pixel"), account.device("chromebook")
    server = Fido2Server(PublicKeyCredentialRpEntity(name="Example", id="example.com"))
    client = Fido2Client(
        InProcessDevice(phone.authenticator), DefaultClientDataCollector("https://example.com")
    )
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=b"bob", name="bob"),
        resident_key_requirement=ResidentKeyRequirement.REQUIRED,
    )
    data = server.register_complete(state, client.make_credential(options.public_key))
    assert data.credential_data is not None
    cloud.advance(seconds=GOOGLE_PASSWORD_MANAGER.propagation_delay)
    other = Fido2Client(
        InProcessDevice(laptop.authenticator), DefaultClientDataCollector("https://example.com")
    )
    request, login_state = server.authenticate_begin([data.credential_data])
    assertion = other.get_assertion(request.public_key).get_response(0)
    server.authenticate_complete(login_state, [data.credential_data], assertion)
    assert assertion.raw_id == data.credential_data.credential_id
