"""The storage port: credentials, signature counters and device state.

Every implementation makes each mutation atomic and durable before returning, so that a
process killed at any instant leaves either the old or the new state, and a counter value is
committed before a signature carrying it leaves the core. One contract suite
(``tests/unit/test_store_contract.py``) runs against every implementation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Protocol

from authenticator.credential import StoredCredential

GLOBAL_COUNTER: Final = b""  # the counter key used in CounterMode.GLOBAL


class Store(Protocol):
    def get(self, credential_id: bytes) -> StoredCredential | None: ...

    def discoverable(self, rp_id: str) -> list[StoredCredential]:
        """Discoverable credentials of one RP, newest first."""
        ...

    def discoverable_for_user(self, rp_id: str, user_id: bytes) -> list[StoredCredential]:
        """The discoverable credentials of one account (usually zero or one)."""
        ...

    def discoverable_count(self) -> int: ...

    def credentials(self) -> list[StoredCredential]:
        """Every stored credential (discoverable or not), oldest first."""
        ...

    def put(self, credential: StoredCredential, *, replaces: Iterable[bytes] = ()) -> None:
        """Insert or update ``credential`` and delete ``replaces`` in one transaction."""
        ...

    def delete(self, credential_id: bytes) -> None: ...

    def next_sign_count(self, key: bytes) -> int:
        """Increment the counter named ``key`` and commit durably; return the new value."""
        ...

    def peek_sign_count(self, key: bytes) -> int: ...

    def next_sequence(self) -> int:
        """A durable, strictly increasing number (creation order of credentials)."""
        ...

    def get_state(self, name: str) -> bytes | None: ...

    def put_state(self, name: str, value: bytes | None) -> None:
        """Set (or, with None, remove) one named piece of device state, atomically."""
        ...

    def wipe(self, *, keep_prefix: str) -> None:
        """authenticatorReset: remove all credentials, counters and state not under
        ``keep_prefix`` (the device's attestation identity survives a reset)."""
        ...
