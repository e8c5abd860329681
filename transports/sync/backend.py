"""The cloud's storage: accounts, trust-circle members, wrapped key shares, record envelopes
with a per-account change log, and the sealed recovery-escrow records. SQLite (embedded;
several processes on one machine share a file) here, PostgreSQL in ``postgres.py``; one SQL
dialect serves both.

What this stores is exactly what a provider's servers see: routing metadata in clear
(account, member names and public keys, routing IDs, revisions, epochs, timestamps) and
ciphertext. ``dump()`` returns all of it, so tests can assert that no key is readable there.

Apart from it, ``backend.hsm`` (``HsmStore``) is the escrow HSM's own state: its master key and
the recovery attempt counters (``escrow.py``). It stands for the HSM cluster (Apple [S12]) or
Cloud Key Vault (Google [S14c]), so it lives in a database of its own: the sibling file
``<cloud>.hsm`` (SQLite; a separate in-memory database for ``:memory:``) or the schema
``<schema>_hsm`` (PostgreSQL). ``dump()`` never includes it.

Every mutation is one transaction. ``put_records`` is compare-and-set per record (CloudKit's
change tags [S13]): a push based on an old revision is refused with the current envelope, and
the device resolves the conflict by its provider's rule.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from transports.sync.crypto import Envelope

SCHEMA_VERSION: Final = 2  # 2: sync_escrow (sealed under the recovery code) -> sync_escrow_records

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS sync_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sync_accounts (
    account TEXT PRIMARY KEY, provider TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
    epoch BIGINT NOT NULL, seq BIGINT NOT NULL, generation BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS sync_members (
    account TEXT NOT NULL, member TEXT NOT NULL, public_key BLOB NOT NULL,
    joined DOUBLE PRECISION NOT NULL, removed DOUBLE PRECISION,
    PRIMARY KEY (account, member)
);
CREATE TABLE IF NOT EXISTS sync_shares (
    account TEXT NOT NULL, member TEXT NOT NULL, epoch BIGINT NOT NULL, share BLOB NOT NULL,
    PRIMARY KEY (account, member, epoch)
);
CREATE TABLE IF NOT EXISTS sync_records (
    account TEXT NOT NULL, routing_id BLOB NOT NULL, revision BIGINT NOT NULL,
    seq BIGINT NOT NULL, epoch BIGINT NOT NULL, tombstone INTEGER NOT NULL, author TEXT NOT NULL,
    server_time DOUBLE PRECISION NOT NULL, wrapped_key BLOB NOT NULL, ciphertext BLOB NOT NULL,
    PRIMARY KEY (account, routing_id)
);
CREATE INDEX IF NOT EXISTS sync_records_by_seq ON sync_records (account, seq);
CREATE TABLE IF NOT EXISTS sync_escrow_records (
    account TEXT PRIMARY KEY, sealed BLOB NOT NULL
)
"""

# ``{hsm}`` is the qualifier of the HSM's separate database ("hsm." or "<schema>_hsm.").
HSM_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS {hsm}hsm_keys (name TEXT PRIMARY KEY, secret BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS {hsm}hsm_attempts (
    account TEXT PRIMARY KEY, attempts_left INTEGER NOT NULL
)
"""


class CloudError(Exception):
    """The cloud store is unusable (wrong schema, unreachable server)."""


@dataclass(frozen=True, slots=True)
class AccountRow:
    account: str
    provider: str
    epoch: int  # the domain's current key epoch
    generation: int  # bumped by a domain reset: every member must rejoin


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    public_key: bytes
    joined: float
    removed: float | None

    @property
    def active(self) -> bool:
        return self.removed is None


@dataclass(frozen=True, slots=True)
class Conflict:
    """A refused push: the record's current envelope (None if it no longer exists)."""

    current: Envelope | None


class HsmStore(Protocol):
    """The escrow HSM's private state, kept out of the cloud database (``dump()``)."""

    def master_key(self, candidate: bytes) -> bytes:
        """The HSM's key: the stored one, or ``candidate`` stored now if there is none."""
        ...

    def set_attempts(self, account: str, attempts: int) -> None:
        """(Re)arm the account's escrow with this many recovery attempts."""
        ...

    def attempts(self, account: str) -> int | None:
        """Attempts left; None when the account has no escrow (never made, or destroyed)."""
        ...

    def take_attempt(self, account: str) -> int | None:
        """Spend one attempt before checking a guess (so concurrent guesses can't exceed the
        limit); the attempts left, or None if there were none to spend."""
        ...

    def return_attempt(self, account: str) -> None:
        """A guess was right: give back the attempt ``take_attempt`` spent."""
        ...

    def forget(self, account: str) -> None:
        """Destroy the account's escrow: no attempt is left."""
        ...


class CloudBackend(Protocol):
    @property
    def hsm(self) -> HsmStore:
        """The escrow HSM's state: a separate database, not part of ``dump()``."""
        ...

    def create_account(self, account: str, provider: str, now: float) -> AccountRow:
        """The account's row, created if it does not exist."""
        ...

    def get_account(self, account: str) -> AccountRow | None: ...

    def set_epoch(self, account: str, epoch: int) -> None: ...

    def reset_account(self, account: str) -> AccountRow:
        """Delete every record, member, share and escrow; bump the generation."""
        ...

    def add_member(self, account: str, name: str, public_key: bytes, now: float) -> None: ...

    def remove_member(self, account: str, name: str, now: float) -> None: ...

    def members(self, account: str) -> list[Member]: ...

    def put_shares(self, account: str, shares: Sequence[tuple[str, int, bytes]]) -> None:
        """(member, epoch, wrapped secrets) rows, in one transaction."""
        ...

    def shares(self, account: str, member: str) -> dict[int, bytes]: ...

    def put_records(
        self, account: str, pushes: Sequence[tuple[Envelope, int]], now: float
    ) -> list[Envelope | Conflict]:
        """Compare-and-set each (envelope, base revision) in one transaction; accepted
        envelopes come back with their new revision and change-log position."""
        ...

    def record(self, account: str, routing_id: bytes) -> Envelope | None: ...

    def changes(self, account: str, since: int) -> list[Envelope]:
        """Latest envelopes whose change-log position is after ``since``, in log order."""
        ...

    def put_escrow(self, account: str, sealed: bytes) -> None:
        """Store the account's escrow record, sealed by the HSM (``escrow.py``)."""
        ...

    def escrow(self, account: str) -> bytes | None: ...

    def delete_escrow(self, account: str) -> None: ...

    def dump(self) -> list[tuple[Any, ...]]:
        """Every stored row of every table: all an operator of the cloud can read."""
        ...

    def close(self) -> None: ...


class SqlCloudBackend:
    """The SQL shared by the SQLite and PostgreSQL backends (``?`` placeholders)."""

    _TABLES: Final = (
        "sync_accounts",
        "sync_members",
        "sync_shares",
        "sync_records",
        "sync_escrow_records",
    )
    _RECORD_COLUMNS: Final = (
        "routing_id, epoch, tombstone, author, wrapped_key, ciphertext, revision, seq, server_time"
    )

    def _transaction(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    _hsm_qualifier = ""  # set by each backend: where the HSM's database is

    def _init_schema(self) -> None:
        schema = SCHEMA + ";" + HSM_SCHEMA.format(hsm=self._hsm_qualifier)
        with self._transaction() as db:
            for statement in schema.strip().split(";"):
                if statement.strip():
                    db.execute(self._sql(statement))
            row = db.execute("SELECT version FROM sync_schema").fetchone()
            if row is None:
                db.execute(self._sql("INSERT INTO sync_schema VALUES (?)"), (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                raise CloudError(f"cloud schema {row[0]} is newer than {SCHEMA_VERSION}")
            elif row[0] < 2:
                # Version 1 sealed the escrow under a key derived from the recovery code alone,
                # which anyone holding this database could guess offline; it can't be converted
                # without the code, so those accounts have no escrow until their domain is reset.
                db.execute("DROP TABLE IF EXISTS sync_escrow")
                db.execute(self._sql("UPDATE sync_schema SET version = ?"), (SCHEMA_VERSION,))
        self._hsm = SqlHsmStore(self, self._hsm_qualifier)

    @property
    def hsm(self) -> HsmStore:
        return self._hsm

    def _sql(self, sql: str) -> str:
        return sql

    @staticmethod
    def _envelope(row: Sequence[Any]) -> Envelope:
        return Envelope(
            routing_id=bytes(row[0]),
            epoch=int(row[1]),
            tombstone=bool(row[2]),
            author=str(row[3]),
            wrapped_key=bytes(row[4]),
            ciphertext=bytes(row[5]),
            revision=int(row[6]),
            seq=int(row[7]),
            server_time=float(row[8]),
        )

    @staticmethod
    def _account(row: Sequence[Any]) -> AccountRow:
        return AccountRow(str(row[0]), str(row[1]), int(row[2]), int(row[3]))

    def create_account(self, account: str, provider: str, now: float) -> AccountRow:
        with self._transaction() as db:
            db.execute(
                self._sql(
                    "INSERT INTO sync_accounts VALUES (?, ?, ?, 0, 0, 1) "
                    "ON CONFLICT (account) DO NOTHING"
                ),
                (account, provider, now),
            )
        found = self.get_account(account)
        assert found is not None  # noqa: S101 - just inserted
        return found

    def get_account(self, account: str) -> AccountRow | None:
        rows = self._query(
            "SELECT account, provider, epoch, generation FROM sync_accounts WHERE account = ?",
            (account,),
        )
        return self._account(rows[0]) if rows else None

    def set_epoch(self, account: str, epoch: int) -> None:
        with self._transaction() as db:
            db.execute(
                self._sql("UPDATE sync_accounts SET epoch = ? WHERE account = ?"),
                (epoch, account),
            )

    def reset_account(self, account: str) -> AccountRow:
        with self._transaction() as db:
            for table in ("sync_members", "sync_shares", "sync_records", "sync_escrow_records"):
                db.execute(self._sql(f"DELETE FROM {table} WHERE account = ?"), (account,))  # noqa: S608
            db.execute(
                self._sql(
                    "UPDATE sync_accounts SET epoch = 0, generation = generation + 1 "
                    "WHERE account = ?"
                ),
                (account,),
            )
        found = self.get_account(account)
        assert found is not None  # noqa: S101
        return found

    def add_member(self, account: str, name: str, public_key: bytes, now: float) -> None:
        with self._transaction() as db:
            db.execute(
                self._sql("DELETE FROM sync_shares WHERE account = ? AND member = ?"),
                (account, name),
            )
            db.execute(
                self._sql(
                    "INSERT INTO sync_members VALUES (?, ?, ?, ?, NULL) "
                    "ON CONFLICT (account, member) DO UPDATE SET "
                    "public_key = excluded.public_key, joined = excluded.joined, removed = NULL"
                ),
                (account, name, public_key, now),
            )

    def remove_member(self, account: str, name: str, now: float) -> None:
        with self._transaction() as db:
            db.execute(
                self._sql("UPDATE sync_members SET removed = ? WHERE account = ? AND member = ?"),
                (now, account, name),
            )
            db.execute(
                self._sql("DELETE FROM sync_shares WHERE account = ? AND member = ?"),
                (account, name),
            )

    def members(self, account: str) -> list[Member]:
        rows = self._query(
            "SELECT member, public_key, joined, removed FROM sync_members "
            "WHERE account = ? ORDER BY joined, member",
            (account,),
        )
        return [Member(str(r[0]), bytes(r[1]), float(r[2]), r[3]) for r in rows]

    def put_shares(self, account: str, shares: Sequence[tuple[str, int, bytes]]) -> None:
        with self._transaction() as db:
            for member, epoch, share in shares:
                db.execute(
                    self._sql(
                        "INSERT INTO sync_shares VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (account, member, epoch) DO UPDATE SET share = excluded.share"
                    ),
                    (account, member, epoch, share),
                )

    def shares(self, account: str, member: str) -> dict[int, bytes]:
        rows = self._query(
            "SELECT epoch, share FROM sync_shares WHERE account = ? AND member = ?",
            (account, member),
        )
        return {int(r[0]): bytes(r[1]) for r in rows}

    def put_records(
        self, account: str, pushes: Sequence[tuple[Envelope, int]], now: float
    ) -> list[Envelope | Conflict]:
        results: list[Envelope | Conflict] = []
        with self._transaction() as db:
            # Taking the account row first serializes writers on PostgreSQL (row lock) and
            # SQLite (BEGIN IMMEDIATE already holds the write lock).
            row = db.execute(
                self._sql("SELECT seq FROM sync_accounts WHERE account = ?" + self._lock_clause),  # noqa: S608
                (account,),
            ).fetchone()
            if row is None:
                raise CloudError(f"no account {account!r}")
            seq = int(row[0])
            for envelope, base in pushes:
                current_row = db.execute(
                    self._sql(
                        f"SELECT {self._RECORD_COLUMNS} FROM sync_records "  # noqa: S608
                        "WHERE account = ? AND routing_id = ?"
                    ),
                    (account, envelope.routing_id),
                ).fetchone()
                current = None if current_row is None else self._envelope(current_row)
                if (current.revision if current else 0) != base:
                    results.append(Conflict(current))
                    continue
                seq += 1
                stored = Envelope(
                    envelope.routing_id,
                    envelope.epoch,
                    envelope.tombstone,
                    envelope.author,
                    envelope.wrapped_key,
                    envelope.ciphertext,
                    revision=base + 1,
                    seq=seq,
                    server_time=now,
                )
                db.execute(
                    self._sql(
                        "INSERT INTO sync_records (account, " + self._RECORD_COLUMNS + ") "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (account, routing_id) DO UPDATE SET "
                        "epoch = excluded.epoch, tombstone = excluded.tombstone, "
                        "author = excluded.author, wrapped_key = excluded.wrapped_key, "
                        "ciphertext = excluded.ciphertext, revision = excluded.revision, "
                        "seq = excluded.seq, server_time = excluded.server_time"
                    ),
                    (
                        account,
                        stored.routing_id,
                        stored.epoch,
                        int(stored.tombstone),
                        stored.author,
                        stored.wrapped_key,
                        stored.ciphertext,
                        stored.revision,
                        stored.seq,
                        stored.server_time,
                    ),
                )
                results.append(stored)
            db.execute(
                self._sql("UPDATE sync_accounts SET seq = ? WHERE account = ?"), (seq, account)
            )
        return results

    _lock_clause = ""

    def record(self, account: str, routing_id: bytes) -> Envelope | None:
        rows = self._query(
            f"SELECT {self._RECORD_COLUMNS} FROM sync_records "  # noqa: S608
            "WHERE account = ? AND routing_id = ?",
            (account, routing_id),
        )
        return self._envelope(rows[0]) if rows else None

    def changes(self, account: str, since: int) -> list[Envelope]:
        rows = self._query(
            f"SELECT {self._RECORD_COLUMNS} FROM sync_records "  # noqa: S608
            "WHERE account = ? AND seq > ? ORDER BY seq",
            (account, since),
        )
        return [self._envelope(r) for r in rows]

    def put_escrow(self, account: str, sealed: bytes) -> None:
        with self._transaction() as db:
            db.execute(
                self._sql(
                    "INSERT INTO sync_escrow_records VALUES (?, ?) "
                    "ON CONFLICT (account) DO UPDATE SET sealed = excluded.sealed"
                ),
                (account, sealed),
            )

    def escrow(self, account: str) -> bytes | None:
        rows = self._query("SELECT sealed FROM sync_escrow_records WHERE account = ?", (account,))
        return bytes(rows[0][0]) if rows else None

    def delete_escrow(self, account: str) -> None:
        with self._transaction() as db:
            db.execute(self._sql("DELETE FROM sync_escrow_records WHERE account = ?"), (account,))

    def dump(self) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        for table in self._TABLES:
            rows.extend(
                tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                for r in self._query(f"SELECT * FROM {table}")  # noqa: S608
            )
        return rows


class SqlHsmStore:
    """``HsmStore`` over the backend's connection, in the HSM's own database (``qualifier``)."""

    def __init__(self, backend: SqlCloudBackend, qualifier: str) -> None:
        self._backend = backend
        self._keys = f"{qualifier}hsm_keys"
        self._attempts = f"{qualifier}hsm_attempts"

    def __repr__(self) -> str:
        return f"SqlHsmStore({self._keys.rpartition('.')[0] or 'main'})"

    def master_key(self, candidate: bytes) -> bytes:
        backend = self._backend
        with backend._transaction() as db:
            db.execute(
                backend._sql(
                    f"INSERT INTO {self._keys} VALUES ('escrow', ?) "  # noqa: S608
                    "ON CONFLICT (name) DO NOTHING"
                ),
                (candidate,),
            )
            row = db.execute(
                backend._sql(f"SELECT secret FROM {self._keys} WHERE name = 'escrow'")  # noqa: S608
            ).fetchone()
        return bytes(row[0])

    def set_attempts(self, account: str, attempts: int) -> None:
        backend = self._backend
        with backend._transaction() as db:
            db.execute(
                backend._sql(
                    f"INSERT INTO {self._attempts} VALUES (?, ?) "  # noqa: S608
                    "ON CONFLICT (account) DO UPDATE SET attempts_left = excluded.attempts_left"
                ),
                (account, attempts),
            )

    def attempts(self, account: str) -> int | None:
        rows = self._backend._query(
            f"SELECT attempts_left FROM {self._attempts} WHERE account = ?",  # noqa: S608
            (account,),
        )
        return int(rows[0][0]) if rows else None

    def take_attempt(self, account: str) -> int | None:
        backend = self._backend
        with backend._transaction() as db:
            row = db.execute(
                backend._sql(
                    f"UPDATE {self._attempts} SET attempts_left = attempts_left - 1 "  # noqa: S608
                    "WHERE account = ? AND attempts_left > 0 RETURNING attempts_left"
                ),
                (account,),
            ).fetchone()
        return None if row is None else int(row[0])

    def return_attempt(self, account: str) -> None:
        backend = self._backend
        with backend._transaction() as db:
            db.execute(
                backend._sql(
                    f"UPDATE {self._attempts} SET attempts_left = attempts_left + 1 "  # noqa: S608
                    "WHERE account = ?"
                ),
                (account,),
            )

    def forget(self, account: str) -> None:
        backend = self._backend
        with backend._transaction() as db:
            db.execute(
                backend._sql(f"DELETE FROM {self._attempts} WHERE account = ?"),  # noqa: S608
                (account,),
            )


class SqliteCloudBackend(SqlCloudBackend):
    """The embedded default: one SQLite file (or ``:memory:``) per cloud. WAL mode lets
    several processes on one machine share an account. The HSM's state is the attached
    database ``hsm``: the file ``<path>.hsm``, or a second in-memory database."""

    _hsm_qualifier = "hsm."

    def __init__(self, path: str | os.PathLike[str] = ":memory:", *, timeout: float = 30.0) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            hsm_path = ":memory:" if self.path == ":memory:" else self.path + ".hsm"
            self._db.execute("ATTACH DATABASE ? AS hsm", (hsm_path,))
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA hsm.journal_mode=WAL")
            self._init_schema()
        except sqlite3.DatabaseError as exc:
            raise CloudError(f"{self.path} is not a usable fidoemu cloud: {exc}") from None

    def __repr__(self) -> str:
        return f"SqliteCloudBackend({self.path!r})"

    def _sql(self, sql: str) -> str:
        return sql.replace("DOUBLE PRECISION", "REAL").replace("BIGINT", "INTEGER")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._db.execute(sql, tuple(params)).fetchall())

    def close(self) -> None:
        self._db.close()
