"""An in-memory store: the default for library use and tests; gone when the process ends."""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter
from typing import Final, TypeVar

from authenticator.credential import StoredCredential

_CREATED: Final = attrgetter("created")  # creation order, without a Python call per record


class MemoryStore:
    def __init__(self) -> None:
        self._credentials: dict[bytes, StoredCredential] = {}
        self._by_rp: dict[str, dict[bytes, StoredCredential]] = {}  # discoverable only
        self._by_user: dict[tuple[str, bytes], dict[bytes, StoredCredential]] = {}
        self._discoverable = 0
        self._counters: dict[bytes, int] = {}
        self._state: dict[str, bytes] = {}
        self._sequence = 0

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._credentials)} credentials)"

    def get(self, credential_id: bytes) -> StoredCredential | None:
        return self._credentials.get(credential_id)

    def discoverable(self, rp_id: str) -> list[StoredCredential]:
        found = list(self._by_rp.get(rp_id, {}).values())
        found.sort(key=_CREATED, reverse=True)
        return found

    def discoverable_for_user(self, rp_id: str, user_id: bytes) -> list[StoredCredential]:
        return list(self._by_user.get((rp_id, user_id), {}).values())

    def discoverable_count(self) -> int:
        return self._discoverable

    def credentials(self) -> list[StoredCredential]:
        return sorted(self._credentials.values(), key=_CREATED)

    def put(self, credential: StoredCredential, *, replaces: Iterable[bytes] = ()) -> None:
        for credential_id in replaces:
            self.delete(credential_id)
        self.delete(credential.credential_id, keep_counter=True)
        self._credentials[credential.credential_id] = credential
        if credential.discoverable:
            self._by_rp.setdefault(credential.rp_id, {})[credential.credential_id] = credential
            account = (credential.rp_id, credential.user_id)
            self._by_user.setdefault(account, {})[credential.credential_id] = credential
            self._discoverable += 1

    def delete(self, credential_id: bytes, *, keep_counter: bool = False) -> None:
        old = self._credentials.pop(credential_id, None)
        if old is not None and old.discoverable:
            _discard(self._by_rp, old.rp_id, credential_id)
            _discard(self._by_user, (old.rp_id, old.user_id), credential_id)
            self._discoverable -= 1
        if not keep_counter:
            self._counters.pop(credential_id, None)

    def next_sign_count(self, key: bytes) -> int:
        value = self._counters.get(key, 0) + 1
        self._counters[key] = value
        return value

    def peek_sign_count(self, key: bytes) -> int:
        return self._counters.get(key, 0)

    def next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def get_state(self, name: str) -> bytes | None:
        return self._state.get(name)

    def put_state(self, name: str, value: bytes | None) -> None:
        if value is None:
            self._state.pop(name, None)
        else:
            self._state[name] = value

    def wipe(self, *, keep_prefix: str) -> None:
        self._credentials.clear()
        self._by_rp.clear()
        self._by_user.clear()
        self._discoverable = 0
        self._counters.clear()
        self._state = {k: v for k, v in self._state.items() if k.startswith(keep_prefix)}


K = TypeVar("K")


def _discard(index: dict[K, dict[bytes, StoredCredential]], key: K, credential_id: bytes) -> None:
    entries = index[key]
    del entries[credential_id]
    if not entries:
        del index[key]
