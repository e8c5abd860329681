"""A throwaway PostgreSQL server for the cloud-backend contract tests.

Started once per test session from Debian's PostgreSQL binaries (``tests/setup.sh`` installs
them), on a Unix socket in a temporary directory, so nothing listens on the network and the
machine's own cluster is untouched. As root it runs as the ``postgres`` user (PostgreSQL
refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PORT = 55432


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextmanager
def temporary_postgres() -> Iterator[str | None]:
    """Yield a libpq DSN of a fresh server, or None when PostgreSQL is not installed."""
    bindir = _binaries()
    if bindir is None:
        yield None
        return
    root = Path(tempfile.mkdtemp(prefix="fidoemu-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data, log = root / "data", root / "log"
    subprocess.run(  # noqa: S603 - fixed arguments
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses='' -k {root} -p {PORT} -c fsync=off"
    pg_ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data)]
    subprocess.run(  # noqa: S603
        [*pg_ctl, "-o", options, "-l", str(log), "-w", "start"], check=True, capture_output=True
    )
    try:
        yield f"host={root} port={PORT} user=postgres dbname=postgres"
    finally:
        subprocess.run(  # noqa: S603
            [*pg_ctl, "-m", "immediate", "-w", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)
