"""One contract for every Store implementation (memory, SQLite; the sync store adds itself)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from authenticator import Authenticator, SqliteStore, StoredCredential, StoreFileError
from authenticator.store.base import Store


def credential(
    n: int, rp: str = "example.com", user: bytes = b"u", discoverable: bool = True
) -> StoredCredential:
    return StoredCredential(
        credential_id=bytes([n]) * 32,
        rp_id=rp,
        user_id=user,
        algorithm=-7,
        sealed_secrets=b"sealed-%d" % n,
        discoverable=discoverable,
        created=n,
        user_name=f"user{n}",
    )


def test_put_get_delete(store: Store) -> None:
    store.put(credential(1))
    got = store.get(bytes([1]) * 32)
    assert got == credential(1)
    store.delete(bytes([1]) * 32)
    assert store.get(bytes([1]) * 32) is None
    store.delete(b"absent")  # idempotent


def test_discoverable_newest_first_and_per_rp(store: Store) -> None:
    for n, rp in ((1, "a.example"), (2, "a.example"), (3, "b.example")):
        store.put(credential(n, rp, user=bytes([n])))
    store.put(credential(4, "a.example", discoverable=False))
    assert [c.created for c in store.discoverable("a.example")] == [2, 1]
    assert store.discoverable_count() == 3
    assert [c.created for c in store.credentials()] == [1, 2, 3, 4]
    assert store.discoverable_for_user("a.example", bytes([2])) == [
        credential(2, "a.example", bytes([2]))
    ]


def test_put_replaces_atomically(store: Store) -> None:
    store.put(credential(1))
    store.next_sign_count(bytes([1]) * 32)
    store.put(credential(2), replaces=[bytes([1]) * 32])
    assert store.get(bytes([1]) * 32) is None
    assert store.peek_sign_count(bytes([1]) * 32) == 0
    assert store.get(bytes([2]) * 32) is not None


def test_counters_and_sequence(store: Store) -> None:
    assert [store.next_sign_count(b"k") for _ in range(3)] == [1, 2, 3]
    assert store.peek_sign_count(b"k") == 3
    assert store.peek_sign_count(b"other") == 0
    first, second = store.next_sequence(), store.next_sequence()
    assert second > first


def test_state_and_wipe(store: Store) -> None:
    store.put_state("attestation/x", b"keep")
    store.put_state("pin/hash", b"drop")
    store.put(credential(1))
    store.next_sign_count(b"k")
    sequence = store.next_sequence()
    store.wipe(keep_prefix="attestation/")
    assert store.get_state("attestation/x") == b"keep"
    assert store.get_state("pin/hash") is None
    assert store.credentials() == []
    assert store.peek_sign_count(b"k") == 0
    assert store.next_sequence() > sequence  # creation order keeps going after a reset
    store.put_state("attestation/x", None)
    assert store.get_state("attestation/x") is None


def test_sqlite_survives_reopen_and_is_shared_between_connections(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    one, two = SqliteStore(path), SqliteStore(path)
    one.put(credential(1))
    assert two.get(bytes([1]) * 32) == credential(1)
    assert [one.next_sign_count(b"c"), two.next_sign_count(b"c"), one.next_sign_count(b"c")] == [
        1,
        2,
        3,
    ]
    one.close()
    two.close()
    assert SqliteStore(path).peek_sign_count(b"c") == 3


def test_sqlite_rejects_garbage_and_newer_schema_clearly(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreFileError, match="not a usable fidoemu store"):
        SqliteStore(garbage)
    newer = tmp_path / "newer.sqlite"
    SqliteStore(newer).close()
    db = sqlite3.connect(newer)
    db.execute("UPDATE schema_version SET version = 99")
    db.commit()
    db.close()
    with pytest.raises(StoreFileError, match="upgrade fidoemu"):
        SqliteStore(newer)


def test_private_keys_are_never_stored_in_clear(tmp_path: Path) -> None:
    path = tmp_path / "keys.sqlite"
    auth = Authenticator(store=SqliteStore(path), strict=True)
    import cbor2

    from authenticator.credential import CredentialSecrets

    params = {
        1: b"\x00" * 32,
        2: {"id": "example.com"},
        3: {"id": b"u"},
        4: [{"type": "public-key", "alg": -8}],
        7: {"rk": True},
    }
    assert auth.call(b"\x01" + cbor2.dumps(params, canonical=True))[0] == 0
    (stored,) = auth.store.discoverable("example.com")
    secrets = CredentialSecrets.open(
        auth.context.sealer, stored.sealed_secrets, stored.credential_id
    )
    assert secrets is not None
    raw = secrets.key.private_bytes()
    auth.store.close()  # type: ignore[attr-defined]
    data = path.read_bytes() + (
        path.with_name(path.name + "-wal").read_bytes()
        if path.with_name(path.name + "-wal").exists()
        else b""
    )
    assert raw not in data
    assert "sealed" not in repr(stored) and repr(raw) not in repr(secrets)


def test_sqlite_files_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "private.sqlite"
    store = SqliteStore(path)
    Authenticator(store=store).call(b"\x04")  # creates the device keys: WAL and SHM exist now
    for name in ("private.sqlite", "private.sqlite-wal", "private.sqlite-shm"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
    store.close()
