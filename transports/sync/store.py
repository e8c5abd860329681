"""``SyncedCredentialStore``: the core's ``Store`` port over a device's local store, plus the
bookkeeping that lets a ``Device`` replicate it through the cloud.

What the core sees is the provider's view of the keychain: hidden credentials (Signal API) and
shadowed ones (GPM, reference §1.2) are invisible, a new credential for an (rpId, user.id)
that already has one overwrites, shadows or joins it per ``ProviderProfile.same_user_handle``,
and BS is derived per record from the provider's ``BackupState`` rule (WebAuthn L3 §6.1.3);
BE is fixed at creation and never changes.

Per-record sync metadata rides in ``StoredCredential.extra["sync"]`` (``SyncMeta``); the
outbox of unpushed changes, the change-log cursor and the device's membership live in the
local store's state under ``sync/`` and survive an authenticatorReset.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Final, Protocol

from authenticator import cbor
from authenticator.context import MASTER_KEY_STATE
from authenticator.credential import StoredCredential
from authenticator.keys import Entropy, Sealer
from authenticator.store.base import Store
from transports.sync.providers import BackupState, ProviderProfile, SameUserHandle

SYNC_STATE_PREFIX: Final = "sync/"
OUTBOX_STATE: Final = "sync/outbox"
CURSOR_STATE: Final = "sync/cursor"
META_KEY: Final = "sync"


@dataclass(frozen=True, slots=True)
class SyncMeta:
    """A record's provider-side fields (GPM's WebauthnCredentialSpecifics, reference §2.2)."""

    created_at: float = 0.0  # device time at creation: OVERWRITE/SHADOW tie-break
    modified_at: float = 0.0  # last-writer-wins for edits
    author: str = ""  # the device that created it
    revision: int = 0  # the cloud revision this copy is based on; 0: never uploaded
    shadows: tuple[bytes, ...] = ()  # GPM newly_shadowed_credential_ids
    hidden_at: float | None = None  # Signal API hide (GPM ``hidden``)
    conflicts: tuple[dict[str, Any], ...] = ()  # 1Password: the losing side of an edit
    origin: str = ""  # the provider that created it (differs after a CXF import)

    @classmethod
    def of(cls, credential: StoredCredential) -> SyncMeta:
        raw = credential.extra.get(META_KEY)
        if not isinstance(raw, dict):
            return cls()
        return cls(
            created_at=float(raw.get("at", 0.0)),
            modified_at=float(raw.get("mod", 0.0)),
            author=str(raw.get("by", "")),
            revision=int(raw.get("rev", 0)),
            shadows=tuple(bytes(s) for s in raw.get("shadows", ())),
            hidden_at=raw.get("hidden"),
            conflicts=tuple(raw.get("alt", ())),
            origin=str(raw.get("origin", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.created_at,
            "mod": self.modified_at,
            "by": self.author,
            "rev": self.revision,
            "shadows": list(self.shadows),
            "hidden": self.hidden_at,
            "alt": list(self.conflicts),
            "origin": self.origin,
        }

    def attach(self, credential: StoredCredential) -> StoredCredential:
        return replace(credential, extra={**credential.extra, META_KEY: self.to_dict()})


@dataclass(frozen=True, slots=True)
class Pending:
    """One outbox entry: an upsert, or a deletion based on the cloud revision it removes."""

    deleted: bool
    base: int = 0


class SyncHooks(Protocol):
    """What the store needs from its device."""

    name: str

    def now(self) -> float: ...

    def backup_state_allowed(self) -> bool:
        """False while the device's sync is switched off (BS must then be 0)."""
        ...

    def changed(self) -> None:
        """The outbox grew: push now if the cloud is reachable."""
        ...


@dataclass
class _SealerCache:
    key: bytes = field(default=b"", repr=False)
    sealer: Sealer | None = None


class SyncedCredentialStore:
    """A ``Store`` that publishes every credential change to the device's outbox."""

    def __init__(
        self, local: Store, profile: ProviderProfile, hooks: SyncHooks, entropy: Entropy
    ) -> None:
        self.local = local
        self.profile = profile
        self._hooks = hooks
        self._entropy = entropy
        self._sealer = _SealerCache()
        self._batch: dict[bytes, Pending] | None = None  # outbox held in memory in a batch

    def __repr__(self) -> str:
        return f"SyncedCredentialStore({self._hooks.name!r}, local={self.local!r})"

    # -- visibility (what the authenticator may use) ----------------------------------------

    def _hidden(self, credential: StoredCredential) -> bool:
        return SyncMeta.of(credential).hidden_at is not None

    def _unshadowed(self, found: list[StoredCredential]) -> list[StoredCredential]:
        """GPM's rule (reference §6.4): drop IDs any record shadows, then the newest per user."""
        if self.profile.same_user_handle is not SameUserHandle.SHADOW:
            return found
        metas = {c.credential_id: SyncMeta.of(c) for c in found}
        shadowed = {s for m in metas.values() for s in m.shadows}
        newest: dict[bytes, StoredCredential] = {}
        for c in found:
            if c.credential_id in shadowed:
                continue
            best = newest.get(c.user_id)
            key = (metas[c.credential_id].created_at, c.credential_id)
            if best is None or key > (metas[best.credential_id].created_at, best.credential_id):
                newest[c.user_id] = c
        keep = {c.credential_id for c in newest.values()}
        return [c for c in found if c.credential_id in keep]

    def visible(self, credential: StoredCredential) -> bool:
        if self._hidden(credential):
            return False
        if not credential.discoverable:
            return True
        group = self.local.discoverable_for_user(credential.rp_id, credential.user_id)
        group = [c for c in group if not self._hidden(c)]
        return any(c.credential_id == credential.credential_id for c in self._unshadowed(group))

    # -- the Store protocol ----------------------------------------------------------------

    def get(self, credential_id: bytes) -> StoredCredential | None:
        found = self.local.get(credential_id)
        return found if found is not None and self.visible(found) else None

    def discoverable(self, rp_id: str) -> list[StoredCredential]:
        found = [c for c in self.local.discoverable(rp_id) if not self._hidden(c)]
        return self._unshadowed(found)

    def discoverable_for_user(self, rp_id: str, user_id: bytes) -> list[StoredCredential]:
        return [c for c in self.discoverable(rp_id) if c.user_id == user_id]

    def discoverable_count(self) -> int:
        return self.local.discoverable_count()

    def credentials(self) -> list[StoredCredential]:
        return [c for c in self.local.credentials() if self.visible(c)]

    def put(self, credential: StoredCredential, *, replaces: Iterable[bytes] = ()) -> None:
        """A credential made or edited by the authenticator: the provider's same-user rule
        decides what ``replaces`` (the core's CTAP 2.1 §6.1.2 step 15 overwrite) means."""
        now = self._hooks.now()
        existing = self.local.get(credential.credential_id)
        if existing is None:
            origin = SyncMeta.of(credential).origin or self.profile.name  # CXF keeps the exporter
            meta = SyncMeta(created_at=now, modified_at=now, author=self._hooks.name, origin=origin)
        else:
            meta = replace(SyncMeta.of(existing), modified_at=now)
        replaced = [c for c in replaces if c != credential.credential_id]
        policy = self.profile.same_user_handle
        if policy is SameUserHandle.SHADOW and replaced:
            meta = replace(meta, shadows=tuple(dict.fromkeys((*meta.shadows, *replaced))))
        credential = self.with_backup_state(meta.attach(credential))
        if policy is SameUserHandle.OVERWRITE and replaced:
            bases = {cid: self._revision(cid) for cid in replaced}
            self.local.put(credential, replaces=replaced)
            for cid, base in bases.items():
                self._queue(cid, Pending(deleted=True, base=base))
        else:
            self.local.put(credential)
        self._queue(credential.credential_id, Pending(deleted=False))
        self._hooks.changed()

    def delete(self, credential_id: bytes) -> None:
        base = self._revision(credential_id)
        self.local.delete(credential_id)
        self._queue(credential_id, Pending(deleted=True, base=base))
        self._hooks.changed()

    def next_sign_count(self, key: bytes) -> int:
        return self.local.next_sign_count(key)

    def peek_sign_count(self, key: bytes) -> int:
        return self.local.peek_sign_count(key)

    def next_sequence(self) -> int:
        return self.local.next_sequence()

    def get_state(self, name: str) -> bytes | None:
        return self.local.get_state(name)

    def put_state(self, name: str, value: bytes | None) -> None:
        self.local.put_state(name, value)

    def wipe(self, *, keep_prefix: str) -> None:
        """authenticatorReset forgets this device's copies, not the account's passkeys: the
        membership survives and the next sync downloads the keychain again."""
        membership = {n: self.local.get_state(n) for n in _KEPT_STATE}
        self.local.wipe(keep_prefix=keep_prefix)
        for name, value in membership.items():
            self.local.put_state(name, value)
        self.local.put_state(CURSOR_STATE, None)
        self.local.put_state(OUTBOX_STATE, None)

    # -- replication support (used by Device) ----------------------------------------------

    def record(self, credential_id: bytes) -> StoredCredential | None:
        """The local copy whatever its visibility."""
        return self.local.get(credential_id)

    def records(self) -> list[StoredCredential]:
        return self.local.credentials()

    def edit(self, credential: StoredCredential) -> None:
        """A provider-side edit (Signal API, conflict merge): stored and queued for upload."""
        meta = replace(SyncMeta.of(credential), modified_at=self._hooks.now())
        self.local.put(self.with_backup_state(meta.attach(credential)))
        self._queue(credential.credential_id, Pending(deleted=False))
        self._hooks.changed()

    def apply_remote(self, credential: StoredCredential) -> None:
        """A record from the cloud: stored without queueing it back."""
        self.local.put(self.with_backup_state(credential))

    def apply_remote_delete(self, credential_id: bytes) -> None:
        self.local.delete(credential_id)

    def with_backup_state(self, credential: StoredCredential) -> StoredCredential:
        """BS per the provider (WebAuthn L3 §6.1.3): never without BE, never while sync is off,
        and under ``BackupState.SYNCED`` only once the record is in the cloud."""
        rule = self.profile.backup_state
        uploaded = SyncMeta.of(credential).revision > 0
        bs = (
            credential.backup_eligible
            and rule is not BackupState.NEVER
            and self._hooks.backup_state_allowed()
            and (rule is BackupState.ALWAYS or uploaded)
        )
        return credential if credential.backup_state == bs else replace(credential, backup_state=bs)

    def new_backup_state(self, *, uploads: bool) -> bool:
        """BS for a passkey made now (WebAuthn L3 §6.1.3), by the rule ``with_backup_state``
        applies to stored records: ``uploads`` says whether the new record reaches the cloud
        during the ceremony (the device pushes at once when it can), as ``SYNCED`` needs."""
        rule = self.profile.backup_state
        return (
            self.profile.backup_eligible
            and rule is not BackupState.NEVER
            and self._hooks.backup_state_allowed()
            and (rule is BackupState.ALWAYS or uploads)
        )

    def refresh_backup_state(self) -> None:
        """Re-derive BS on every record (sync switched off or on)."""
        for credential in self.local.credentials():
            updated = self.with_backup_state(credential)
            if updated is not credential:
                self.local.put(updated)

    def _revision(self, credential_id: bytes) -> int:
        found = self.local.get(credential_id)
        return 0 if found is None else SyncMeta.of(found).revision

    def begin_batch(self) -> None:
        """Hold the outbox in memory (bulk imports): one state write instead of one per change."""
        if self._batch is None:
            self._batch = self.outbox()

    def end_batch(self) -> None:
        batch, self._batch = self._batch, None
        if batch is not None:
            self._write_outbox(batch)

    @property
    def batching(self) -> bool:
        return self._batch is not None

    def outbox(self) -> dict[bytes, Pending]:
        if self._batch is not None:
            return dict(self._batch)
        raw = self.local.get_state(OUTBOX_STATE)
        if raw is None:
            return {}
        return {
            bytes(k): Pending(bool(v[0]), int(v[1])) for k, v in cbor.loads_lenient(raw).items()
        }

    def _write_outbox(self, outbox: dict[bytes, Pending]) -> None:
        if self._batch is not None:
            self._batch = outbox
            return
        value = cbor.encode({k: [p.deleted, p.base] for k, p in outbox.items()}) if outbox else None
        self.local.put_state(OUTBOX_STATE, value)

    def _queue(self, credential_id: bytes, pending: Pending) -> None:
        if self._batch is not None:  # no copy: bulk changes stay linear
            if pending.deleted and pending.base == 0:
                self._batch.pop(credential_id, None)
            else:
                self._batch[credential_id] = pending
            return
        outbox = self.outbox()
        if pending.deleted and pending.base == 0:
            outbox.pop(credential_id, None)  # never uploaded: nothing to tombstone
        else:
            outbox[credential_id] = pending
        self._write_outbox(outbox)

    def requeue(self, credential_id: bytes, pending: Pending) -> None:
        outbox = self.outbox()
        outbox[credential_id] = pending
        self._write_outbox(outbox)

    def settle(self, credential_id: bytes) -> None:
        """Drop one outbox entry once the cloud has it (or it needs no upload)."""
        self.settle_many([credential_id])

    def settle_many(self, credential_ids: Iterable[bytes]) -> None:
        outbox = self.outbox()
        before = len(outbox)
        for credential_id in credential_ids:
            outbox.pop(credential_id, None)
        if len(outbox) != before:
            self._write_outbox(outbox)

    @property
    def cursor(self) -> int:
        raw = self.local.get_state(CURSOR_STATE)
        return 0 if raw is None else int(cbor.loads_lenient(raw))

    @cursor.setter
    def cursor(self, value: int) -> None:
        self.local.put_state(CURSOR_STATE, cbor.encode(value))

    # -- the device's own sealer (the core's master key) -----------------------------------

    def sealer(self) -> Sealer:
        key = self.local.get_state(MASTER_KEY_STATE)
        if key is None:
            key = self._entropy.random_bytes(32)
            self.local.put_state(MASTER_KEY_STATE, key)
        if self._sealer.sealer is None or self._sealer.key != key:
            self._sealer = _SealerCache(key, Sealer(key, self._entropy))
        assert self._sealer.sealer is not None  # noqa: S101 - set just above
        return self._sealer.sealer


MEMBERSHIP_STATE: Final = "sync/membership"
MEMBERSHIP_KEY_STATE: Final = "sync/membership-key"
_KEPT_STATE: Final = (MEMBERSHIP_STATE, MEMBERSHIP_KEY_STATE)
