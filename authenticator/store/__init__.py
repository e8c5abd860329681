"""Storage ports and their implementations."""

from __future__ import annotations

from authenticator.store.base import GLOBAL_COUNTER, Store
from authenticator.store.memory import MemoryStore
from authenticator.store.sqlite import SqliteStore, StoreFileError

__all__ = ["GLOBAL_COUNTER", "MemoryStore", "SqliteStore", "Store", "StoreFileError"]
