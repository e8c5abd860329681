"""The simulated passkey cloud: ``Cloud`` (storage, clock, network faults), ``Account`` (one
user's keychain with a provider and its trust circle) and ``Device`` (an ``Authenticator`` on
the provider's profile over its own local store, replicating through the cloud).

Theory of operation (reference §6.4):

* **Push.** Every credential change lands in the device's outbox (``SyncedCredentialStore``)
  and is pushed at once when the device is online and not partitioned: each record revision
  is sealed (``crypto.seal_record``) and compare-and-set against the cloud's revision. A
  refused push is a **conflict**: tombstones win, edits merge by the provider's
  ``EditConflict`` rule, and the merge is pushed again.
* **Pull.** A change becomes visible to another device ``propagation_delay`` seconds after the
  cloud accepted it (per provider, overridable per device pair). ``Cloud.advance(seconds)``
  moves the injected ``ManualClock`` and lets every reachable device pull what is due;
  ``Account.sync()`` flushes everything now. Nothing sleeps.
* **Same user handle.** A record for an (rpId, user.id) that already has one is resolved by
  ``SameUserHandle``: OVERWRITE keeps the newest and tombstones the rest (every device picks
  the same winner), SHADOW hides the older ones at read time, KEEP_BOTH keeps all.
* **Trust circle.** The first device creates the security domain; others join sponsored by a
  member device or through the recovery escrow (``escrow.py``: an HSM that checks the code and
  counts attempts server-side). Removing a device rotates the key epoch and hands the new
  secrets to the escrow HSM, so the removed device can't read anything written afterwards: it
  holds no escrow key. ``Account.reset()`` is the last resort: every passkey is gone.

Errors: ``SyncError`` for operations the cloud refuses (not a member, unreachable),
``RecoveryError`` for a wrong or exhausted recovery code.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from authenticator import cbor
from authenticator.authenticator import Authenticator
from authenticator.clock import ManualClock
from authenticator.context import Context
from authenticator.credential import StoredCredential
from authenticator.keys import Entropy, Sealer, SystemEntropy
from authenticator.store.base import Store
from authenticator.store.memory import MemoryStore
from transports.sync import records
from transports.sync.backend import CloudBackend, Conflict, SqliteCloudBackend
from transports.sync.crypto import (
    CryptoError,
    DeviceIdentity,
    DomainSecrets,
    Envelope,
    open_record,
    seal_record,
    wrap_share,
)
from transports.sync.cxf import CxfExport, CxfImport, export_cxf, import_cxf
from transports.sync.escrow import EscrowError, EscrowService
from transports.sync.providers import ICLOUD_KEYCHAIN, EditConflict, ProviderProfile, SameUserHandle
from transports.sync.signals import (
    SignalOutcome,
    SignalQuota,
    signal_all_accepted_credentials,
    signal_current_user_details,
    signal_unknown_credential,
)
from transports.sync.store import (
    MEMBERSHIP_KEY_STATE,
    MEMBERSHIP_STATE,
    Pending,
    SyncedCredentialStore,
    SyncMeta,
)

MAX_PUSH_ROUNDS: Final = 8  # conflicts resolve in one or two rounds; more means a bug


class SyncError(Exception):
    """The cloud refused the operation (the device is not a member, or can't reach it)."""


class RecoveryError(SyncError):
    """A recovery attempt failed; ``attempts_left`` is 0 once the escrow is destroyed."""

    def __init__(self, message: str, attempts_left: int) -> None:
        super().__init__(message)
        self.attempts_left = attempts_left


@dataclass(frozen=True, slots=True)
class SyncReport:
    pushed: int = 0
    pulled: int = 0
    conflicts: int = 0


@dataclass(frozen=True, slots=True)
class Membership:
    """A device's place in the trust circle, sealed in its local store."""

    account: str
    generation: int
    identity: DeviceIdentity = field(repr=False)
    secrets: DomainSecrets = field(repr=False)


@dataclass(frozen=True, slots=True)
class Partition:
    """Devices cut off from the cloud until ``Cloud.heal``."""

    devices: frozenset[str]  # "account/device" keys


class Cloud:
    """A provider cloud: its storage backend, the simulated clock and the network.

    ``Cloud()`` is embedded (SQLite in memory); ``Cloud("cloud.sqlite")`` shares a file
    between processes; ``Cloud(backend=PostgresCloudBackend(dsn))`` spans machines.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        backend: CloudBackend | None = None,
        clock: ManualClock | None = None,
        entropy: Entropy | None = None,
        strict: bool = False,
    ) -> None:
        if backend is not None and path is not None:
            raise ValueError("give a path or a backend, not both")
        self.backend: CloudBackend = backend or SqliteCloudBackend(
            Path(path) if path is not None else ":memory:"
        )
        self.clock = clock or ManualClock()
        self.entropy = entropy or SystemEntropy()
        self.escrow = EscrowService(self.backend, self.entropy)  # the recovery HSM
        self.strict = strict  # devices' authenticators re-raise internal errors (tests)
        self._accounts: dict[str, Account] = {}
        self._partitions: list[Partition] = []

    def __repr__(self) -> str:
        return f"Cloud({self.backend!r}, {len(self._accounts)} accounts)"

    def account(
        self,
        account_id: str,
        *,
        provider: ProviderProfile = ICLOUD_KEYCHAIN,
        recovery_code: str | None = None,
    ) -> Account:
        """The account (created on first use). ``recovery_code`` (a device passcode, a GPM
        PIN) is escrowed with the cloud's HSM when the account's first device creates its
        domain."""
        found = self._accounts.get(account_id)
        if found is not None:
            if provider.name != found.provider.name:
                raise ValueError(f"{account_id} is a {found.provider.name} account")
            if recovery_code is not None:  # for the next domain this process creates
                found._recovery_code = recovery_code
            return found
        row = self.backend.create_account(account_id, provider.name, self.clock.now())
        if row.provider != provider.name:
            raise ValueError(f"{account_id} is a {row.provider} account")
        account = Account(self, account_id, provider, recovery_code)
        self._accounts[account_id] = account
        return account

    @property
    def accounts(self) -> list[Account]:
        return list(self._accounts.values())

    def advance(self, seconds: float) -> None:
        """Let simulated time pass; every reachable device then pulls what has arrived."""
        self.clock.advance(seconds)
        for account in self.accounts:
            account.deliver(force=False)

    def partition(self, *devices: Device) -> Partition:
        """Cut these devices off the cloud (they keep working locally)."""
        cut = Partition(frozenset(d.key for d in devices))
        self._partitions.append(cut)
        return cut

    def heal(self, partition: Partition | None = None) -> None:
        """End one partition (or all), then let the reconnected devices sync."""
        ended = self._partitions if partition is None else [partition]
        self._partitions = [p for p in self._partitions if p not in ended]
        for account in self.accounts:
            account.deliver(force=False)

    def reachable(self, device: Device) -> bool:
        return device.online and not any(device.key in p.devices for p in self._partitions)

    def close(self) -> None:
        self.backend.close()


class Account:
    """One user's keychain with one provider, and the devices of its trust circle."""

    def __init__(
        self, cloud: Cloud, account_id: str, provider: ProviderProfile, recovery_code: str | None
    ) -> None:
        self.cloud = cloud
        self.id = account_id
        self.provider = provider
        self._recovery_code = recovery_code
        self._devices: dict[str, Device] = {}
        self.delays: dict[tuple[str, str], float] = {}  # (author, receiver) -> seconds

    def __repr__(self) -> str:
        return f"Account({self.id!r}, {self.provider.name}, devices={list(self._devices)})"

    @property
    def devices(self) -> dict[str, Device]:
        return dict(self._devices)

    @property
    def generation(self) -> int:
        row = self.cloud.backend.get_account(self.id)
        return 0 if row is None else row.generation

    @property
    def epoch(self) -> int:
        row = self.cloud.backend.get_account(self.id)
        return 0 if row is None else row.epoch

    @property
    def recovery_attempts_left(self) -> int:
        """As counted by the escrow HSM: 0 when there is no escrow (none set, or destroyed)."""
        return self.cloud.escrow.attempts_left(self.id)

    def delay(self, author: str, receiver: str) -> float:
        return self.delays.get((author, receiver), self.provider.propagation_delay)

    # -- joining and leaving --------------------------------------------------------------

    def device(
        self,
        name: str,
        *,
        store: Store | None = None,
        has_biometrics: bool = True,
        clock_skew: float = 0.0,
        sponsor: Device | None = None,
        recovery_code: str | None = None,
    ) -> Device:
        """The named device, joining the trust circle if it is new.

        A device whose local ``store`` already holds a membership rejoins silently. Otherwise
        the first device creates the domain; later ones are sponsored by ``sponsor`` (default:
        any member device in this process) or recover with ``recovery_code``.
        """
        found = self._devices.get(name)
        if found is not None:
            return found
        device = Device(
            self,
            name,
            store if store is not None else MemoryStore(),
            has_biometrics=has_biometrics,
            clock_skew=clock_skew,
        )
        if not device.is_member:
            active = [m for m in self.cloud.backend.members(self.id) if m.active]
            sponsor = sponsor or next((d for d in self._devices.values() if d.is_member), None)
            if not active:
                self._create_domain(device)
            elif sponsor is not None:
                sponsor.sponsor(device)
            elif recovery_code is not None:
                self._recover_into(device, recovery_code)
            else:
                raise SyncError(f"{name} needs a sponsor device or the recovery code to join")
        self._devices[name] = device
        device.sync_if_reachable(force=False)
        return device

    def recover(self, name: str, recovery_code: str, *, store: Store | None = None) -> Device:
        """Join a new device with the recovery code alone (no member device at hand)."""
        device = Device(self, name, store if store is not None else MemoryStore())
        self._recover_into(device, recovery_code)
        self._devices[name] = device
        device.sync_if_reachable(force=False)
        return device

    def _create_domain(self, device: Device) -> None:
        secrets = DomainSecrets.create(self.cloud.entropy, first_epoch=1)
        if self._recovery_code is not None:
            self.cloud.escrow.enroll(
                self.id, self._recovery_code, secrets, self.provider.recovery_attempts
            )
        self.cloud.backend.set_epoch(self.id, secrets.current_epoch)
        device.enroll(secrets)

    def _recover_into(self, device: Device, recovery_code: str) -> None:
        """The HSM checks the code and counts the attempt (reference §6.4 ``recover_join``)."""
        try:
            secrets = self.cloud.escrow.recover(self.id, recovery_code)
        except EscrowError as refused:
            raise RecoveryError(str(refused), refused.attempts_left) from None
        device.enroll(secrets)

    def remove_device(self, device: Device | str) -> None:
        """Take a device out of the circle and rotate the key epoch (reference §6.4): it keeps
        its local copies but can't read anything written from now on."""
        name = device if isinstance(device, str) else device.name
        removed = self._devices.pop(name, None)
        backend = self.cloud.backend
        backend.remove_member(self.id, name, self.cloud.clock.now())
        if removed is not None:
            removed.removed = True
        rotator = next((d for d in self._devices.values() if d.is_member), None)
        if rotator is None:
            if any(m.active for m in backend.members(self.id)):
                raise SyncError("rotating the key needs another member device in this process")
            return
        rotator.rotate()

    def reset(self) -> None:
        """The last resort when recovery is exhausted: every passkey and member is gone and
        the next device starts a new domain (GPM's "reset passkeys", reference §2.2)."""
        self.cloud.backend.reset_account(self.id)
        self.cloud.escrow.destroy(self.id)
        for device in self._devices.values():
            device.forget_domain()
        self._devices.clear()

    # -- propagation ----------------------------------------------------------------------

    def deliver(self, *, force: bool) -> None:
        for device in list(self._devices.values()):
            device.sync_if_reachable(force=force)

    def sync(self) -> None:
        """Everyone reachable syncs now, ignoring the propagation delay, until quiet."""
        for _ in range(3):  # a round can queue tombstones (OVERWRITE); the next one spreads them
            self.deliver(force=True)


class Device:
    """One member device: an ``Authenticator`` on the provider profile over ``store``."""

    def __init__(
        self,
        account: Account,
        name: str,
        local: Store,
        *,
        has_biometrics: bool = True,
        clock_skew: float = 0.0,
    ) -> None:
        self.account = account
        self.name = name
        self.local = local
        self.has_biometrics = has_biometrics
        self.clock_skew = clock_skew
        self.removed = False
        self._online = True
        self._sync_enabled = True
        self._syncing = False
        quota = account.provider.signal_quota
        self.signal_quota = SignalQuota(*quota) if quota is not None else None
        cloud = account.cloud
        self._entropy = cloud.entropy
        Context.load_sealer(local, cloud.entropy)  # the core's master key, before the store
        self.store = SyncedCredentialStore(local, account.provider, self, cloud.entropy)
        self.authenticator = Authenticator(
            self.store,
            config=account.provider.authenticator_config(has_biometrics=has_biometrics),
            clock=cloud.clock,
            entropy=cloud.entropy,
            strict=cloud.strict,
        )
        self._membership = self._load_membership()

    def __repr__(self) -> str:
        state = "member" if self.is_member else "not a member"
        return f"Device({self.name!r}, {self.account.id!r}, {state}, online={self._online})"

    @property
    def key(self) -> str:
        return f"{self.account.id}/{self.name}"

    # -- SyncHooks ------------------------------------------------------------------------

    def now(self) -> float:
        return self.account.cloud.clock.now() + self.clock_skew

    def backup_state_allowed(self) -> bool:
        return self._sync_enabled and not self.removed

    def changed(self) -> None:
        if not self._syncing and not self.store.batching and self.reachable:
            # On failure the change stays in the outbox; the ceremony succeeded locally.
            with contextlib.suppress(SyncError):
                self.push()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Many changes, one upload: the outbox stays in memory and is pushed at the end."""
        self.store.begin_batch()
        try:
            yield
        finally:
            self.store.end_batch()
            self.sync_if_reachable(force=False)

    # -- switches -------------------------------------------------------------------------

    @property
    def online(self) -> bool:
        return self._online

    @online.setter
    def online(self, value: bool) -> None:
        """Going online syncs at once, as devices do on unlock (reference §2.3)."""
        self._online = value
        if value:
            self.sync_if_reachable(force=False)

    @property
    def sync_enabled(self) -> bool:
        return self._sync_enabled

    @sync_enabled.setter
    def sync_enabled(self, value: bool) -> None:
        """Switching sync off keeps the local copies with BS=0 (reference §6.6)."""
        self._sync_enabled = value
        self.store.refresh_backup_state()
        if value:
            self.sync_if_reachable(force=False)

    @property
    def reachable(self) -> bool:
        return self.is_member and self._sync_enabled and self.account.cloud.reachable(self)

    @property
    def is_member(self) -> bool:
        return self._membership is not None and not self.removed

    def passkeys(self) -> list[StoredCredential]:
        """The credentials this device would offer (hidden and shadowed ones left out)."""
        return self.store.credentials()

    # -- membership -----------------------------------------------------------------------

    def _membership_sealer(self) -> Sealer:
        key = self.local.get_state(MEMBERSHIP_KEY_STATE)
        if key is None:
            key = self._entropy.random_bytes(32)
            self.local.put_state(MEMBERSHIP_KEY_STATE, key)
        return Sealer(key, self._entropy)

    def _load_membership(self) -> Membership | None:
        sealed = self.local.get_state(MEMBERSHIP_STATE)
        if sealed is None:
            return None
        plain = self._membership_sealer().open(sealed, MEMBERSHIP_STATE.encode())
        if plain is None:
            return None
        fields = cbor.loads_lenient(plain)
        membership = Membership(
            str(fields["account"]),
            int(fields["generation"]),
            DeviceIdentity(bytes(fields["identity"])),
            DomainSecrets.from_bytes(bytes(fields["secrets"])),
        )
        backend = self.account.cloud.backend
        current = {m.name: m for m in backend.members(self.account.id) if m.active}
        member = current.get(self.name)
        if (
            membership.account != self.account.id
            or membership.generation != self.account.generation
            or member is None
            or member.public_key != membership.identity.public_key
        ):
            return None
        return membership

    def _save_membership(self, membership: Membership | None) -> None:
        self._membership = membership
        if membership is None:
            self.local.put_state(MEMBERSHIP_STATE, None)
            return
        plain = cbor.encode(
            {
                "account": membership.account,
                "generation": membership.generation,
                "identity": membership.identity.private_bytes(),
                "secrets": membership.secrets.to_bytes(),
            }
        )
        sealed = self._membership_sealer().seal(plain, MEMBERSHIP_STATE.encode())
        self.local.put_state(MEMBERSHIP_STATE, sealed)

    def _share_aad(self, member: str, epoch: int) -> bytes:
        return cbor.encode([self.account.id, member, epoch, self.account.generation])

    def enroll(self, secrets: DomainSecrets) -> None:
        """Become a member holding ``secrets`` (first device, or after recovery)."""
        identity = DeviceIdentity.generate(self._entropy)
        backend = self.account.cloud.backend
        backend.add_member(self.account.id, self.name, identity.public_key, self.now())
        epoch = secrets.current_epoch
        share = wrap_share(
            identity.public_key,
            secrets.to_bytes(),
            self._share_aad(self.name, epoch),
            self._entropy,
        )
        backend.put_shares(self.account.id, [(self.name, epoch, share)])
        self.removed = False
        self._save_membership(
            Membership(self.account.id, self.account.generation, identity, secrets)
        )

    def sponsor(self, applicant: Device) -> None:
        """Admit ``applicant``: wrap the domain secrets to its new identity (Apple's sponsored
        join, a 1Password trusted device). The applicant unwraps its share from the cloud."""
        membership = self._require_membership()
        identity = DeviceIdentity.generate(self._entropy)
        backend = self.account.cloud.backend
        backend.add_member(self.account.id, applicant.name, identity.public_key, self.now())
        epoch = membership.secrets.current_epoch
        share = wrap_share(
            identity.public_key,
            membership.secrets.to_bytes(),
            self._share_aad(applicant.name, epoch),
            self._entropy,
        )
        backend.put_shares(self.account.id, [(applicant.name, epoch, share)])
        applicant.accept(identity)

    def accept(self, identity: DeviceIdentity) -> None:
        """Read this device's share from the cloud with its new identity."""
        shares = self.account.cloud.backend.shares(self.account.id, self.name)
        if not shares:
            raise SyncError(f"no key share for {self.name}")
        epoch = max(shares)
        secrets = DomainSecrets.from_bytes(
            identity.open_share(shares[epoch], self._share_aad(self.name, epoch))
        )
        self.removed = False
        self._save_membership(
            Membership(self.account.id, self.account.generation, identity, secrets)
        )

    def rotate(self) -> None:
        """Start a new key epoch and share it with the remaining members and the escrow HSM
        only."""
        # Pick up earlier rotations first: a new epoch built on a stale one would reuse its
        # number with another secret, and whatever was sealed under it would be lost.
        membership = self._refresh_secrets()
        if membership.secrets.current_epoch < self.account.epoch:
            raise SyncError(f"{self.name} lacks epoch {self.account.epoch}: it can't rotate")
        secrets = membership.secrets.rotated(self._entropy)
        epoch = secrets.current_epoch
        backend = self.account.cloud.backend
        members = [m for m in backend.members(self.account.id) if m.active]
        payload = secrets.to_bytes()
        shares = [
            (
                m.name,
                epoch,
                wrap_share(m.public_key, payload, self._share_aad(m.name, epoch), self._entropy),
            )
            for m in members
        ]
        backend.put_shares(self.account.id, shares)
        self.account.cloud.escrow.deposit(self.account.id, secrets)
        backend.set_epoch(self.account.id, epoch)
        self._save_membership(replace(membership, secrets=secrets))

    def forget_domain(self) -> None:
        """The domain was reset: this device's synced passkeys and membership are gone."""
        for credential in self.store.records():
            self.store.apply_remote_delete(credential.credential_id)
        self.store.cursor = 0
        self.local.put_state("sync/outbox", None)
        self._save_membership(None)

    def _require_membership(self) -> Membership:
        if self._membership is None or self.removed:
            raise SyncError(f"{self.name} is not a member of {self.account.id}")
        if self._membership.generation != self.account.generation:
            self.forget_domain()
            raise SyncError(f"{self.account.id} was reset; {self.name} must rejoin")
        return self._membership

    def _refresh_secrets(self) -> Membership:
        """Pick up key epochs shared since the last sync (after a rotation)."""
        membership = self._require_membership()
        shares = self.account.cloud.backend.shares(self.account.id, self.name)
        if not shares:
            self.removed = True  # our shares were deleted: we were removed elsewhere
            raise SyncError(f"{self.name} was removed from {self.account.id}")
        newest = max(shares)
        if newest > membership.secrets.current_epoch:
            fresh = DomainSecrets.from_bytes(
                membership.identity.open_share(shares[newest], self._share_aad(self.name, newest))
            )
            membership = replace(membership, secrets=membership.secrets.merged(fresh))
            self._save_membership(membership)
        return membership

    def decrypt(self, envelope: Envelope) -> records.Record | records.Tombstone:
        """Open an envelope with this device's keys; ``CryptoError`` when it can't."""
        if self._membership is None:
            raise CryptoError(f"{self.name} holds no keys")
        plain = open_record(self._membership.secrets, self.account.id, envelope)
        return records.decode(plain, envelope.revision)

    # -- replication ----------------------------------------------------------------------

    def sync_if_reachable(self, *, force: bool) -> SyncReport | None:
        if not self.reachable:
            return None
        try:
            return self.sync(force=force)
        except SyncError:
            return None

    def sync(self, *, force: bool = False) -> SyncReport:
        """Push the outbox, then pull what is visible (everything when ``force``)."""
        if not self.account.cloud.reachable(self) or not self._sync_enabled:
            raise SyncError(f"{self.name} can't reach the cloud")
        self._refresh_secrets()
        first = self.push()
        pulled = self.pull(force=force)
        second = self.push()  # tombstones queued while resolving OVERWRITE groups
        return SyncReport(first.pushed + second.pushed, pulled, first.conflicts + second.conflicts)

    def push(self) -> SyncReport:
        membership = self._refresh_secrets()
        backend = self.account.cloud.backend
        pushed = conflicts = 0
        self._syncing = True
        try:
            for _ in range(MAX_PUSH_ROUNDS):
                outbox = self.store.outbox()
                if not outbox:
                    break
                batch: list[tuple[bytes, Pending, tuple[Envelope, int]]] = []
                for cid, pending in outbox.items():
                    sealed = self._seal(membership, cid, pending)
                    if sealed is not None:
                        batch.append((cid, pending, sealed))
                results = backend.put_records(
                    self.account.id,
                    [(envelope, base) for _, _, (envelope, base) in batch],
                    self.account.cloud.clock.now(),
                )
                accepted: list[bytes] = []
                refused: list[tuple[bytes, Pending, Conflict]] = []
                for (cid, pending, _), result in zip(batch, results, strict=True):
                    if isinstance(result, Conflict):
                        refused.append((cid, pending, result))
                    else:
                        accepted.append(cid)
                        self._settled(cid, pending, result.revision)
                self.store.settle_many(accepted)
                pushed += len(accepted)
                conflicts += len(refused)
                for cid, pending, conflict in refused:
                    self._resolve(membership, cid, pending, conflict.current)
            else:
                raise SyncError(f"{self.name}: conflicts did not settle")
        finally:
            self._syncing = False
        return SyncReport(pushed=pushed, conflicts=conflicts)

    def _seal(
        self, membership: Membership, credential_id: bytes, pending: Pending
    ) -> tuple[Envelope, int] | None:
        if pending.deleted:
            plain = records.encode_tombstone(credential_id)
            base = pending.base
        else:
            credential = self.store.record(credential_id)
            if credential is None:
                self.store.settle(credential_id)
                return None
            secrets = self.store.sealer().open_or_fail(
                credential.sealed_secrets, credential.credential_id
            )
            plain = records.encode_record(credential, secrets)
            base = SyncMeta.of(credential).revision
        envelope = seal_record(
            membership.secrets,
            self.account.id,
            credential_id,
            plain,
            tombstone=pending.deleted,
            author=self.name,
            entropy=self._entropy,
        )
        return envelope, base

    def _settled(self, credential_id: bytes, pending: Pending, revision: int) -> None:
        """The cloud took our revision: remember it as the base of the next edit."""
        if pending.deleted:
            return
        credential = self.store.record(credential_id)
        if credential is not None:
            meta = replace(SyncMeta.of(credential), revision=revision)
            self.store.apply_remote(meta.attach(credential))

    def _resolve(
        self,
        membership: Membership,
        credential_id: bytes,
        pending: Pending,
        current: Envelope | None,
    ) -> None:
        """A refused push. Tombstones win over edits; edits merge by the provider's rule."""
        if current is None:  # the record vanished (a domain reset): upload afresh
            if pending.deleted:
                self.store.settle(credential_id)
            else:
                self._rebase_record(credential_id, 0)
            return
        remote = self.decrypt(current)
        if isinstance(remote, records.Tombstone):
            self.store.apply_remote_delete(credential_id)
            self.store.settle(credential_id)
            return
        if pending.deleted:
            self.store.requeue(credential_id, Pending(deleted=True, base=current.revision))
            return
        local = self.store.record(credential_id)
        if local is None:
            self.store.settle(credential_id)
            return
        merged = self._merge(local, remote, current.author)
        meta = replace(SyncMeta.of(merged), revision=current.revision)
        self.store.apply_remote(meta.attach(merged))

    def _rebase_record(self, credential_id: bytes, revision: int) -> None:
        local = self.store.record(credential_id)
        if local is not None:
            self.store.apply_remote(replace(SyncMeta.of(local), revision=revision).attach(local))

    def _merge(
        self, local: StoredCredential, remote: records.Record, editor: str
    ) -> StoredCredential:
        """Concurrent edits of one record: last writer wins (ties: the device name), or
        1Password's keep-both, which keeps the remote edit and records the local one."""
        mine, theirs = SyncMeta.of(local), remote.meta
        shadows = tuple(dict.fromkeys((*theirs.shadows, *mine.shadows)))
        if self.account.provider.edit_conflict is EditConflict.KEEP_BOTH:
            conflicts = list(theirs.conflicts)
            loser = _editable(local, self.name)
            same = (local.user_name, local.user_display_name) == (
                remote.credential.user_name,
                remote.credential.user_display_name,
            )
            if not same and loser not in conflicts:
                conflicts.append(loser)
            winner, meta = remote.credential, replace(theirs, conflicts=tuple(conflicts))
        elif (mine.modified_at, self.name) > (theirs.modified_at, editor):
            winner, meta = local, mine
        else:
            winner, meta = remote.credential, theirs
        merged = replace(
            local,
            rp_name=winner.rp_name,
            user_name=winner.user_name,
            user_display_name=winner.user_display_name,
        )
        return replace(meta, shadows=shadows).attach(merged)

    def pull(self, *, force: bool = False) -> int:
        """Apply the cloud's changes that have reached this device; return how many."""
        membership = self._refresh_secrets()
        backend = self.account.cloud.backend
        now = self.account.cloud.clock.now()
        cursor = self.store.cursor
        pending = self.store.outbox()
        applied = 0
        blocked = False
        touched: set[tuple[str, bytes]] = set()
        for envelope in backend.changes(self.account.id, cursor):
            due = envelope.server_time + self.account.delay(envelope.author, self.name)
            if not (force or envelope.author == self.name or due <= now):
                blocked = True
                continue
            if not blocked:
                cursor = envelope.seq
            try:
                change = records.decode(
                    open_record(membership.secrets, self.account.id, envelope), envelope.revision
                )
            except (CryptoError, records.RecordError):
                continue  # not for us (an epoch we lack) or unreadable: never crash on it
            if change.credential_id in pending:
                continue  # our own change is queued: the push resolves the conflict
            if self._apply(change):
                applied += 1
                if isinstance(change, records.Record):
                    touched.add((change.credential.rp_id, change.credential.user_id))
        self.store.cursor = cursor
        if self.account.provider.same_user_handle is SameUserHandle.OVERWRITE:
            for rp_id, user_id in touched:
                self._overwrite(rp_id, user_id)
        return applied

    def _apply(self, change: records.Record | records.Tombstone) -> bool:
        local = self.store.record(change.credential_id)
        if isinstance(change, records.Tombstone):
            if local is None:
                return False
            self.store.apply_remote_delete(change.credential_id)
            return True
        if local is not None and SyncMeta.of(local).revision >= change.meta.revision:
            return False
        sealed = self.store.sealer().seal(change.secrets, change.credential.credential_id)
        created = local.created if local is not None else self.store.next_sequence()
        self.store.apply_remote(replace(change.credential, sealed_secrets=sealed, created=created))
        return True

    def _overwrite(self, rp_id: str, user_id: bytes) -> None:
        """Apple keeps one passkey per (rpId, user.id): the newest; every device agrees."""
        group = [
            c
            for c in self.store.local.discoverable_for_user(rp_id, user_id)
            if SyncMeta.of(c).hidden_at is None
        ]
        if len(group) < 2:
            return
        group.sort(key=lambda c: (SyncMeta.of(c).created_at, c.credential_id))
        for loser in group[:-1]:
            self.store.delete(loser.credential_id)

    # -- provider features ----------------------------------------------------------------

    def remove(self) -> None:
        self.account.remove_device(self)

    def export_cxf(self, *, exporter_rp_id: str | None = None) -> CxfExport:
        """This device's passkeys as a CXF 1.0 document (``cxf.py``)."""
        return export_cxf(self, exporter_rp_id=exporter_rp_id)

    def import_cxf(self, document: Mapping[str, Any] | str) -> CxfImport:
        """Import a CXF document's passkeys into this keychain; they then sync."""
        return import_cxf(self, document)

    def signal_unknown_credential(self, rp_id: str, credential_id: bytes) -> SignalOutcome:
        return signal_unknown_credential(self, rp_id, credential_id)

    def signal_all_accepted_credentials(
        self, rp_id: str, user_id: bytes, accepted: Iterable[bytes]
    ) -> dict[bytes, SignalOutcome]:
        return signal_all_accepted_credentials(self, rp_id, user_id, accepted)

    def signal_current_user_details(
        self, rp_id: str, user_id: bytes, name: str, display_name: str
    ) -> dict[bytes, SignalOutcome]:
        return signal_current_user_details(self, rp_id, user_id, name, display_name)


def _editable(credential: StoredCredential, editor: str) -> dict[str, Any]:
    return {
        "user_name": credential.user_name,
        "user_display_name": credential.user_display_name,
        "device": editor,
    }
