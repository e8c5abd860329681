"""Benchmark: sync N passkeys (default 10,000) to a newly joined device over the SQLite cloud,
against writing the same records to a local store directly; prints both times and the ratio.

    python -m transports.sync.bench [--count 10000] [--local memory|sqlite]

The sync path is everything a real join costs: the sponsor wraps the domain secrets to the new
device, which unwraps its share, reads the change log from the cloud file, opens every
envelope (unwrap the record key, AES-GCM), decodes the record, re-seals the private key under
its own master key and writes it to its local store. The baseline writes the already-sealed
``StoredCredential`` records into the same kind of local store, one ``put`` each.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from authenticator.credential import CredentialSecrets, StoredCredential
from authenticator.keys import CoseAlgorithm, CredentialKey, SystemEntropy
from authenticator.store.base import Store
from authenticator.store.memory import MemoryStore
from authenticator.store.sqlite import SqliteStore
from transports.sync.keychain import Cloud
from transports.sync.providers import ICLOUD_KEYCHAIN


def _local_store(kind: str, directory: Path, name: str) -> Store:
    return SqliteStore(directory / f"{name}.sqlite") if kind == "sqlite" else MemoryStore()


def run(count: int, local: str, directory: Path, out: Callable[[str], None] = print) -> float:
    """Run the benchmark; return the ratio sync time / direct-write time."""
    cloud = Cloud(directory / "cloud.sqlite")
    account = cloud.account("bench@example.com", provider=ICLOUD_KEYCHAIN)
    phone = account.device("phone", store=_local_store(local, directory, "phone"))
    entropy = SystemEntropy()
    sealer = phone.store.sealer()
    created: list[StoredCredential] = []
    with phone.batch():  # one upload of all N records
        for i in range(count):
            credential_id = hashlib.sha256(f"bench-{i}".encode()).digest()
            key = CredentialKey.generate(CoseAlgorithm.ES256, entropy)
            credential = StoredCredential(
                credential_id=credential_id,
                rp_id=f"rp{i % 50}.example",
                user_id=f"user-{i}".encode(),
                algorithm=int(CoseAlgorithm.ES256),
                sealed_secrets=CredentialSecrets(key).seal(sealer, credential_id),
                created=i + 1,
                user_name=f"user{i}",
                backup_eligible=True,
                backup_state=True,
            )
            phone.store.put(credential)
            created.append(credential)
    cloud.clock.advance(ICLOUD_KEYCHAIN.propagation_delay)

    started = time.perf_counter()
    laptop = account.device("laptop", store=_local_store(local, directory, "laptop"))
    sync_seconds = time.perf_counter() - started
    received = len(laptop.store.records())
    if received != count:
        raise RuntimeError(f"the new device received {received} of {count} passkeys")

    baseline = _local_store(local, directory, "direct")
    started = time.perf_counter()
    for credential in created:
        baseline.put(credential)
    direct_seconds = time.perf_counter() - started

    ratio = sync_seconds / direct_seconds
    out(f"passkeys:                 {count}")
    out(f"local store:              {local}")
    out(f"join + sync (SQLite cloud): {sync_seconds:8.3f} s  ({count / sync_seconds:,.0f}/s)")
    out(f"direct local writes:        {direct_seconds:8.3f} s  ({count / direct_seconds:,.0f}/s)")
    out(f"ratio sync / direct:        {ratio:8.1f}x")
    cloud.close()
    return ratio


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--local", choices=("memory", "sqlite"), default="memory")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fidoemu-sync-bench-") as directory:
        run(args.count, args.local, Path(directory))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
