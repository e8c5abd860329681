"""Synced passkey providers: provider profiles, an end-to-end-encrypted cloud keychain shared by
several virtual authenticators, the Signal API and CXF export/import. See docs/sync.md."""

from __future__ import annotations

from transports.sync.backend import CloudBackend, CloudError, SqliteCloudBackend
from transports.sync.crypto import CryptoError, Envelope
from transports.sync.keychain import (
    Account,
    Cloud,
    Device,
    Partition,
    RecoveryError,
    SyncError,
    SyncReport,
)
from transports.sync.providers import (
    BITWARDEN,
    GOOGLE_PASSWORD_MANAGER,
    ICLOUD_KEYCHAIN,
    ONEPASSWORD,
    PROVIDERS,
    Attachment,
    BackupState,
    EditConflict,
    ProviderProfile,
    SameUserHandle,
    SignalEffect,
    UvPolicy,
)
from transports.sync.signals import SignalOutcome
from transports.sync.store import SyncedCredentialStore, SyncMeta

__all__ = [
    "BITWARDEN",
    "GOOGLE_PASSWORD_MANAGER",
    "ICLOUD_KEYCHAIN",
    "ONEPASSWORD",
    "PROVIDERS",
    "Account",
    "Attachment",
    "BackupState",
    "Cloud",
    "CloudBackend",
    "CloudError",
    "CryptoError",
    "Device",
    "EditConflict",
    "Envelope",
    "Partition",
    "ProviderProfile",
    "RecoveryError",
    "SameUserHandle",
    "SignalEffect",
    "SignalOutcome",
    "SqliteCloudBackend",
    "SyncError",
    "SyncMeta",
    "SyncReport",
    "SyncedCredentialStore",
    "UvPolicy",
]
