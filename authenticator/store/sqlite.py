"""A SQLite store: one file holding credentials, counters and device state.

Each mutation is one transaction (``BEGIN IMMEDIATE``, so several processes serialise on the
file's lock) committed with ``synchronous=FULL`` in WAL mode: once a method returns, the change
survives a crash or power loss. The schema carries a version; columns are added, never renamed
or reused. Credential fields that are not indexed live in a CBOR record column, so new fields
need no migration.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from authenticator.credential import StoredCredential

SCHEMA_VERSION: Final = 1

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS credentials (
    credential_id BLOB PRIMARY KEY,
    rp_id TEXT NOT NULL,
    user_id BLOB NOT NULL,
    discoverable INTEGER NOT NULL,
    created INTEGER NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS credentials_by_rp ON credentials (rp_id, discoverable, created);
CREATE INDEX IF NOT EXISTS credentials_by_user ON credentials (rp_id, user_id);
CREATE TABLE IF NOT EXISTS counters (key BLOB PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


class StoreFileError(Exception):
    """The store file is not a fidoemu store, or is from a newer version."""


class SqliteStore:
    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Create the file owner-only before SQLite opens it: SQLite gives the -wal and -shm
        # files the main file's mode, and they hold the same secrets.
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR | getattr(os, "O_CLOEXEC", 0), 0o600))
        try:
            self._db = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            with self._transaction() as db:
                for statement in _SCHEMA.strip().split(";"):
                    if statement.strip():
                        db.execute(statement)
                row = db.execute("SELECT version FROM schema_version").fetchone()
                if row is None:
                    db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
                elif row[0] > SCHEMA_VERSION:
                    raise StoreFileError(
                        f"{self.path} has schema version {row[0]}; this fidoemu reads "
                        f"up to {SCHEMA_VERSION}: upgrade fidoemu"
                    )
        except sqlite3.DatabaseError as exc:
            raise StoreFileError(f"{self.path} is not a usable fidoemu store: {exc}") from None

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @staticmethod
    def _credential(row: tuple[bytes, str, bytes, int, bytes]) -> StoredCredential:
        return StoredCredential.from_record(row[0], row[1], row[2], bool(row[3]), row[4])

    _COLUMNS: Final = "credential_id, rp_id, user_id, discoverable, record"

    def get(self, credential_id: bytes) -> StoredCredential | None:
        row = self._db.execute(
            f"SELECT {self._COLUMNS} FROM credentials WHERE credential_id = ?",  # noqa: S608
            (credential_id,),
        ).fetchone()
        return None if row is None else self._credential(row)

    def discoverable(self, rp_id: str) -> list[StoredCredential]:
        rows = self._db.execute(
            f"SELECT {self._COLUMNS} FROM credentials "  # noqa: S608
            "WHERE rp_id = ? AND discoverable = 1 ORDER BY created DESC",
            (rp_id,),
        ).fetchall()
        return [self._credential(row) for row in rows]

    def discoverable_for_user(self, rp_id: str, user_id: bytes) -> list[StoredCredential]:
        rows = self._db.execute(
            f"SELECT {self._COLUMNS} FROM credentials "  # noqa: S608
            "WHERE rp_id = ? AND user_id = ? AND discoverable = 1",
            (rp_id, user_id),
        ).fetchall()
        return [self._credential(row) for row in rows]

    def discoverable_count(self) -> int:
        row = self._db.execute("SELECT count(*) FROM credentials WHERE discoverable = 1").fetchone()
        return int(row[0])

    def credentials(self) -> list[StoredCredential]:
        rows = self._db.execute(
            f"SELECT {self._COLUMNS} FROM credentials ORDER BY created"  # noqa: S608
        ).fetchall()
        return [self._credential(row) for row in rows]

    def put(self, credential: StoredCredential, *, replaces: Iterable[bytes] = ()) -> None:
        with self._transaction() as db:
            for credential_id in replaces:
                db.execute("DELETE FROM credentials WHERE credential_id = ?", (credential_id,))
                db.execute("DELETE FROM counters WHERE key = ?", (credential_id,))
            db.execute(
                "INSERT OR REPLACE INTO credentials VALUES (?, ?, ?, ?, ?, ?)",
                (
                    credential.credential_id,
                    credential.rp_id,
                    credential.user_id,
                    int(credential.discoverable),
                    credential.created,
                    credential.to_record(),
                ),
            )

    def delete(self, credential_id: bytes) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM credentials WHERE credential_id = ?", (credential_id,))
            db.execute("DELETE FROM counters WHERE key = ?", (credential_id,))

    def next_sign_count(self, key: bytes) -> int:
        with self._transaction() as db:
            row = db.execute(
                "INSERT INTO counters VALUES (?, 1) "
                "ON CONFLICT(key) DO UPDATE SET value = value + 1 RETURNING value",
                (key,),
            ).fetchone()
        return int(row[0])

    def peek_sign_count(self, key: bytes) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE key = ?", (key,)).fetchone()
        return 0 if row is None else int(row[0])

    def next_sequence(self) -> int:
        return self.next_sign_count(b"\x00sequence")

    def get_state(self, name: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM state WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    def put_state(self, name: str, value: bytes | None) -> None:
        with self._transaction() as db:
            if value is None:
                db.execute("DELETE FROM state WHERE name = ?", (name,))
            else:
                db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (name, value))

    def wipe(self, *, keep_prefix: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM credentials")
            db.execute("DELETE FROM counters WHERE key != ?", (b"\x00sequence",))
            db.execute(
                "DELETE FROM state WHERE substr(name, 1, ?) != ?",
                (len(keep_prefix), keep_prefix),
            )
