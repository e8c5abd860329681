"""The cloud on PostgreSQL (psycopg 3), for devices on several machines sharing one account.

Same schema and SQL as the SQLite backend (``backend.py``); BLOB becomes BYTEA, placeholders
become ``%s``, and ``put_records`` locks the account row (``SELECT ... FOR UPDATE``) so that
concurrent pushes get consecutive change-log positions. Each backend lives in its own schema
(default ``fidoemu_sync``), so tests can use a fresh one and drop it; the escrow HSM's state
(``backend.HsmStore``) lives in the schema ``<schema>_hsm`` beside it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

from transports.sync.backend import CloudError, SqlCloudBackend

DEFAULT_SCHEMA: Final = "fidoemu_sync"
_IDENTIFIER: Final = re.compile(r"[a-z_][a-z0-9_]{0,58}")  # + "_hsm": 63, PostgreSQL's limit


class _Cursor:
    """sqlite3's ``execute(...).fetchone()`` shape over a psycopg connection."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._connection.execute(sql, tuple(params))


class PostgresCloudBackend(SqlCloudBackend):
    """A cloud whose state lives in a PostgreSQL database (``dsn``: a libpq connection string)."""

    _lock_clause = " FOR UPDATE"

    def __init__(self, dsn: str, *, schema: str = DEFAULT_SCHEMA) -> None:
        try:
            import psycopg
        except ImportError:  # pragma: no cover - depends on the installation
            raise CloudError("the PostgreSQL cloud needs psycopg 3: pip install psycopg") from None
        if not _IDENTIFIER.fullmatch(schema):
            raise ValueError(f"not a plain schema name: {schema!r}")
        self.schema = schema
        self._hsm_qualifier = f"{schema}_hsm."
        try:
            self._db = psycopg.connect(dsn, autocommit=True)
            self._db.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            self._db.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}_hsm")
            self._db.execute(f"SET search_path TO {schema}")
            self._init_schema()
        except psycopg.Error as exc:
            raise CloudError(f"PostgreSQL cloud unavailable: {exc}") from None

    def __repr__(self) -> str:
        return f"PostgresCloudBackend(schema={self.schema!r})"

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s").replace("BLOB", "BYTEA")

    @contextmanager
    def _transaction(self) -> Iterator[_Cursor]:
        with self._db.transaction():
            yield _Cursor(self._db)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._db.execute(self._sql(sql), tuple(params)).fetchall())

    def drop_schema(self) -> None:
        """Remove everything this backend stored (tests)."""
        self._db.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        self._db.execute(f"DROP SCHEMA IF EXISTS {self.schema}_hsm CASCADE")

    def close(self) -> None:
        self._db.close()
