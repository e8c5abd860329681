"""Unit tests of the sync pieces: provider profiles -> core config, record encryption and key
shares, the recovery escrow HSM, CXF input validation (bad input is reported, never raised),
and the benchmark."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authenticator import AttestationFormat, CounterMode, SeededEntropy, cbor
from transports.sync import (
    BITWARDEN,
    GOOGLE_PASSWORD_MANAGER,
    ICLOUD_KEYCHAIN,
    ONEPASSWORD,
    PROVIDERS,
    BackupState,
    Cloud,
    CryptoError,
    RecoveryError,
)
from transports.sync.backend import SqliteCloudBackend
from transports.sync.bench import run
from transports.sync.crypto import (
    DeviceIdentity,
    DomainSecrets,
    open_escrow,
    open_record,
    recovery_verifier,
    seal_record,
    wrap_share,
)
from transports.sync.cxf import CxfError, b64url, import_cxf

ENTROPY = SeededEntropy(5)


@pytest.mark.parametrize("provider", list(PROVIDERS.values()), ids=list(PROVIDERS))
def test_profiles_become_passkey_configs(provider: object) -> None:
    from transports.sync import ProviderProfile

    assert isinstance(provider, ProviderProfile)
    config = provider.authenticator_config()
    assert config.aaguid == provider.aaguid.bytes
    assert config.attestation is AttestationFormat.NONE
    assert config.counter is CounterMode.ZERO
    assert config.backup_eligible and config.backup_state
    assert config.algorithms == provider.algorithms
    assert not config.u2f


def test_profile_overrides() -> None:
    synced_only = ONEPASSWORD.with_(backup_state=BackupState.SYNCED)
    assert not synced_only.authenticator_config().backup_state
    assert not GOOGLE_PASSWORD_MANAGER.authenticator_config(has_biometrics=False).built_in_uv
    assert ICLOUD_KEYCHAIN.authenticator_config(has_biometrics=False).built_in_uv
    assert BITWARDEN.authenticator_config().discoverable_only is False
    assert ICLOUD_KEYCHAIN.with_(propagation_delay=9.0).propagation_delay == 9.0
    assert ICLOUD_KEYCHAIN.propagation_delay == 2.0


def test_records_open_only_with_their_epoch_and_header() -> None:
    secrets = DomainSecrets.create(ENTROPY)
    envelope = seal_record(
        secrets, "alice", b"cred", b"plaintext", tombstone=False, author="phone", entropy=ENTROPY
    )
    assert open_record(secrets, "alice", envelope) == b"plaintext"
    with pytest.raises(CryptoError):
        open_record(secrets, "mallory", envelope)  # moved to another account
    with pytest.raises(CryptoError):
        open_record(secrets, "alice", replace(envelope, tombstone=True))
    with pytest.raises(CryptoError):
        open_record(secrets, "alice", replace(envelope, ciphertext=envelope.ciphertext[:-1]))
    rotated = secrets.rotated(ENTROPY)
    newer = seal_record(
        rotated, "alice", b"cred", b"v2", tombstone=False, author="phone", entropy=ENTROPY
    )
    assert newer.epoch == envelope.epoch + 1
    with pytest.raises(CryptoError):
        open_record(secrets, "alice", newer)  # a removed member holds only the old epoch
    assert open_record(rotated, "alice", envelope) == b"plaintext"  # members keep old epochs
    assert secrets.routing_id(b"cred") == rotated.routing_id(b"cred") != b"cred"


def test_shares_open_only_for_their_member() -> None:
    alice, bob = DeviceIdentity.generate(ENTROPY), DeviceIdentity.generate(ENTROPY)
    share = wrap_share(alice.public_key, b"domain secrets", b"aad", ENTROPY)
    assert alice.open_share(share, b"aad") == b"domain secrets"
    with pytest.raises(CryptoError):
        bob.open_share(share, b"aad")
    with pytest.raises(CryptoError):
        alice.open_share(share, b"other aad")
    assert (
        "hidden" in repr(alice)
        and repr(secrets := DomainSecrets.create(ENTROPY)).count(secrets.routing_key.hex()) == 0
    )


def test_domain_secrets_carry_no_escrow_key() -> None:
    """Older versions kept scrypt(recovery code) in every member's secrets; it is dropped."""
    secrets = DomainSecrets.create(ENTROPY)
    old = cbor.encode(
        {
            "routing": secrets.routing_key,
            "epochs": secrets.epochs,
            "escrow_key": b"k" * 32,
            "escrow_salt": b"s" * 16,
        }
    )
    assert DomainSecrets.from_bytes(old) == secrets
    assert b"k" * 32 not in secrets.to_bytes() and b"escrow" not in secrets.to_bytes()


def _blob(cloud: Cloud) -> bytes:
    return b"".join(
        v if isinstance(v, bytes) else str(v).encode() for row in cloud.backend.dump() for v in row
    )


def test_the_cloud_database_alone_allows_no_offline_guessing(tmp_path: Path) -> None:
    """What is asserted: the cloud database (``backend.dump()``, or a copy of its file) holds
    no epoch secret, no routing key, no HSM key and neither the salt nor the scrypt verifier of
    the recovery code; the right code, run through scrypt with every byte string in the dump as
    the salt, opens no blob in it; and the copied file without the HSM's file releases nothing
    to the right code."""
    code = "1357"
    cloud = Cloud(tmp_path / "cloud.sqlite", strict=True)
    account = cloud.account("alice", provider=ICLOUD_KEYCHAIN, recovery_code=code)
    phone, laptop = account.device("phone"), account.device("laptop")
    account.remove_device(laptop)  # a rotation re-seals the escrow too
    record = cloud.backend.escrow(account.id)
    assert record is not None
    aad = cloud.escrow.record_aad(account.id)
    hsm_key = cloud.backend.hsm.master_key(b"")
    opened = cbor.loads_lenient(open_escrow(hsm_key, record, aad))  # the HSM's view
    salt, verifier = bytes(opened["salt"]), bytes(opened["verifier"])
    assert verifier == recovery_verifier(code, salt)
    escrowed = DomainSecrets.from_bytes(bytes(opened["secrets"]))
    membership = phone._membership
    assert membership is not None and escrowed == membership.secrets
    assert set(escrowed.epochs) == {1, 2}

    blob = _blob(cloud)
    forbidden = [hsm_key, salt, verifier, escrowed.routing_key, *escrowed.epochs.values()]
    for value in forbidden:
        assert value not in blob
    values = {v for row in cloud.backend.dump() for v in row if isinstance(v, bytes)}
    assert record in values
    for candidate_salt in values:
        key = recovery_verifier(code, candidate_salt)
        for sealed in values:
            with pytest.raises(CryptoError):
                open_escrow(key, sealed, aad)
    cloud.close()

    stolen = tmp_path / "stolen"
    stolen.mkdir()
    shutil.copy(tmp_path / "cloud.sqlite", stolen / "cloud.sqlite")
    thief = Cloud(stolen / "cloud.sqlite", strict=True)
    assert thief.backend.escrow(account.id) == record
    with pytest.raises(RecoveryError) as refused:
        thief.account("alice", provider=ICLOUD_KEYCHAIN).recover("thief", code)
    assert refused.value.attempts_left == 0


def test_recovery_attempts_are_counted_by_the_hsm_across_processes(tmp_path: Path) -> None:
    """Two ``Cloud`` objects on one SQLite file stand for two processes: the HSM's counter
    (in ``cloud.sqlite.hsm``) is shared, so neither can guess more than the limit."""
    provider = ICLOUD_KEYCHAIN.with_(recovery_attempts=4)
    first = Cloud(tmp_path / "cloud.sqlite", strict=True)
    mine = first.account("alice", provider=provider, recovery_code="2468")
    mine.device("phone")
    second = Cloud(tmp_path / "cloud.sqlite", strict=True)
    theirs = second.account("alice", provider=provider)
    assert (tmp_path / "cloud.sqlite.hsm").exists()
    with pytest.raises(RecoveryError) as wrong:
        theirs.recover("guess-1", "0000")
    assert wrong.value.attempts_left == 3 == mine.recovery_attempts_left
    assert theirs.recover("tablet", "2468").is_member
    assert theirs.recovery_attempts_left == 3, "the right code gives its attempt back"
    lefts = []
    for n, cloud in enumerate((first, second, first)):
        with pytest.raises(RecoveryError) as wrong:
            cloud.account("alice", provider=provider).recover(f"guess-{n + 2}", "0000")
        lefts.append(wrong.value.attempts_left)
    assert lefts == [2, 1, 0]
    assert first.backend.escrow("alice") is None, "the last wrong code destroys the escrow"
    for cloud in (first, second):
        with pytest.raises(RecoveryError):
            cloud.account("alice", provider=provider).recover("late", "2468")
    third = Cloud(tmp_path / "cloud.sqlite", strict=True)  # a new process: still destroyed
    assert third.account("alice", provider=provider).recovery_attempts_left == 0
    mine.reset()
    again = third.account("alice", provider=provider, recovery_code="9753")
    again.device("fresh")
    assert again.recovery_attempts_left == 4, "the reset domain has a new escrow"
    assert second.account("alice", provider=provider).recover("back", "9753").is_member


def test_a_version_1_cloud_loses_its_guessable_escrow_on_upgrade(tmp_path: Path) -> None:
    """Schema 1 kept the escrow sealed under scrypt(code) in the cloud database; opening such a
    file drops that table (it can't be re-sealed without the code) and keeps everything else."""
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE sync_schema (version INTEGER NOT NULL); INSERT INTO sync_schema VALUES (1);"
        "CREATE TABLE sync_accounts (account TEXT PRIMARY KEY, provider TEXT NOT NULL, "
        "created REAL NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL, "
        "generation INTEGER NOT NULL);"
        "INSERT INTO sync_accounts VALUES ('alice', 'icloud-keychain', 0, 1, 0, 1);"
        "CREATE TABLE sync_escrow (account TEXT PRIMARY KEY, salt BLOB NOT NULL, "
        "sealed BLOB NOT NULL, attempts_left INTEGER NOT NULL);"
        "INSERT INTO sync_escrow VALUES ('alice', x'00', x'01', 10);"
    )
    db.commit()
    db.close()
    backend = SqliteCloudBackend(path)
    assert backend.get_account("alice") is not None
    assert backend.escrow("alice") is None and backend.hsm.attempts("alice") is None
    backend.close()
    db = sqlite3.connect(path)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "sync_escrow" not in tables and "sync_escrow_records" in tables
    assert db.execute("SELECT version FROM sync_schema").fetchall() == [(2,)]
    db.close()


def test_escrow_service_refuses_records_moved_or_from_another_generation() -> None:
    cloud = Cloud(strict=True)
    alice = cloud.account("alice", provider=ICLOUD_KEYCHAIN, recovery_code="1111")
    bob = cloud.account("bob", provider=ICLOUD_KEYCHAIN, recovery_code="2222")
    alice.device("a-phone")
    bob.device("b-phone")
    record = cloud.backend.escrow("alice")
    assert record is not None
    cloud.backend.put_escrow("bob", record)  # an operator swaps records between accounts
    with pytest.raises(RecoveryError) as refused:
        bob.recover("b-tablet", "1111")
    assert refused.value.attempts_left == 0 and bob.recovery_attempts_left == 0
    assert not cloud.escrow.deposit("bob", DomainSecrets.create(ENTROPY))
    alice.reset()  # a new generation: the old record means nothing
    assert alice.recovery_attempts_left == 0
    cloud.backend.put_escrow("alice", record)
    cloud.backend.hsm.set_attempts("alice", 3)
    with pytest.raises(RecoveryError):
        alice.recover("a-tablet", "1111")


@pytest.fixture
def device() -> object:
    return Cloud(strict=True).account("a", provider=GOOGLE_PASSWORD_MANAGER).device("pixel")


def _document(passkey: Mapping[str, object]) -> dict[str, Any]:
    return {
        "version": {"major": 1, "minor": 0},
        "exporterRpId": "x.example",
        "accounts": [{"id": "AA", "items": [{"id": "BB", "credentials": [passkey]}]}],
    }


def test_cxf_import_reports_bad_passkeys_and_skips_unknown_types(device: object) -> None:
    from transports.sync import Device

    assert isinstance(device, Device)
    bad = {"type": "passkey", "credentialId": "!!", "rpId": "x", "userHandle": "AA", "key": "AA"}
    document = _document(bad)
    accounts = document["accounts"]
    assert isinstance(accounts, list)
    accounts[0]["items"][0]["credentials"].append({"type": "note", "content": "hello"})
    report = import_cxf(device, document)
    assert report.imported == () and len(report.skipped) == 1
    short_id = dict(bad, credentialId=b64url(b"short"), key=b64url(b"not a key"))
    assert import_cxf(device, _document(short_id)).skipped[0][1].startswith("credentialId")
    with pytest.raises(CxfError):
        import_cxf(device, {"version": {"major": 2}})
    with pytest.raises(CxfError):
        import_cxf(device, "not json")
    with pytest.raises(CxfError):
        import_cxf(device, json.dumps([1, 2]))


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
        max_leaves=12,
    )
)
def test_cxf_import_never_crashes_on_arbitrary_json(value: object) -> None:
    device = Cloud(strict=True).account("a", provider=ICLOUD_KEYCHAIN).device("phone")
    for document in (value, {"version": {"major": 1}, "accounts": value}):
        try:
            report = import_cxf(device, json.dumps(document))
        except CxfError:
            continue
        assert report.imported == ()
    assert device.passkeys() == []


def test_benchmark_runs_small(tmp_path: Path) -> None:
    lines: list[str] = []
    ratio = run(200, "memory", tmp_path, out=lines.append)
    assert ratio > 0 and any("ratio" in line for line in lines)
