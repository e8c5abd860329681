"""The WebAuthn Level 3 Signal API as a provider applies it (WebAuthn L3 §5.1.10,
``#sctn-signal-methods``; reference §3.2).

The RP's promise resolves without saying what happened; the returned ``SignalOutcome`` is the
provider-side result (GPM's enum names, reference [S4]) so tests can see it. The effect is a
normal edit or deletion of the record, so it syncs to the account's other devices.

* ``signalUnknownCredential``: hide or delete the credential, per ``ProviderProfile.signal_effect``.
* ``signalAllAcceptedCredentials``: hide/delete the user's credentials the RP no longer lists;
  un-hide ("restore") hidden ones it lists again.
* ``signalCurrentUserDetails``: rename (user.name, user.displayName).

A provider with ``signal_quota=(tokens, seconds)`` spends one token per signal per eTLD+1
(approximated as the last two labels of the rpId) and gets one back every ``seconds``; past
the quota signals are dropped silently (Chrome, [S4]). localhost is exempt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

from authenticator.credential import StoredCredential
from transports.sync.providers import SignalEffect
from transports.sync.store import SyncMeta

if TYPE_CHECKING:
    from transports.sync.keychain import Device


class SignalOutcome(StrEnum):
    HIDDEN = "hidden"
    ALREADY_HIDDEN = "already-hidden"
    DELETED = "deleted"
    RESTORED = "restored"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    NOT_FOUND = "not-found"
    IGNORED = "ignored"  # the provider does not act on signals
    QUOTA_EXCEEDED = "quota-exceeded"


@dataclass
class _Bucket:
    tokens: float
    updated: float


class SignalQuota:
    """A token bucket per eTLD+1 (Chrome's PasskeyChangeQuotaTracker, [S4]); not persisted."""

    def __init__(self, tokens: int, refill_seconds: float) -> None:
        self.tokens = tokens
        self.refill_seconds = refill_seconds
        self._buckets: dict[str, _Bucket] = {}

    def spend(self, rp_id: str, now: float) -> bool:
        if rp_id == "localhost" or rp_id.endswith(".localhost"):
            return True
        site = ".".join(rp_id.split(".")[-2:])
        bucket = self._buckets.setdefault(site, _Bucket(self.tokens, now))
        refilled = (now - bucket.updated) / self.refill_seconds
        bucket.tokens = min(self.tokens, bucket.tokens + refilled)
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True


def _quota_ok(device: Device, rp_id: str) -> bool:
    quota = device.signal_quota
    return quota is None or quota.spend(rp_id, device.now())


def _remove(device: Device, credential: StoredCredential) -> SignalOutcome:
    effect = device.account.provider.signal_effect
    if effect is SignalEffect.DELETE:
        device.store.delete(credential.credential_id)
        return SignalOutcome.DELETED
    meta = SyncMeta.of(credential)
    if meta.hidden_at is not None:
        return SignalOutcome.ALREADY_HIDDEN
    device.store.edit(replace(meta, hidden_at=device.now()).attach(credential))
    return SignalOutcome.HIDDEN


def signal_unknown_credential(device: Device, rp_id: str, credential_id: bytes) -> SignalOutcome:
    """The RP does not know ``credential_id`` (e.g. the user deleted it at the RP)."""
    if device.account.provider.signal_effect is SignalEffect.IGNORE:
        return SignalOutcome.IGNORED
    if not _quota_ok(device, rp_id):
        return SignalOutcome.QUOTA_EXCEEDED
    credential = device.store.record(credential_id)
    if credential is None or credential.rp_id != rp_id:
        return SignalOutcome.NOT_FOUND
    return _remove(device, credential)


def signal_all_accepted_credentials(
    device: Device, rp_id: str, user_id: bytes, accepted: Iterable[bytes]
) -> dict[bytes, SignalOutcome]:
    """The complete list of the user's credentials the RP accepts."""
    if device.account.provider.signal_effect is SignalEffect.IGNORE:
        return {}
    if not _quota_ok(device, rp_id):
        return {b"": SignalOutcome.QUOTA_EXCEEDED}
    keep = set(accepted)
    outcomes: dict[bytes, SignalOutcome] = {}
    for credential in device.store.records():
        if credential.rp_id != rp_id or credential.user_id != user_id:
            continue
        meta = SyncMeta.of(credential)
        if credential.credential_id not in keep:
            outcomes[credential.credential_id] = _remove(device, credential)
        elif meta.hidden_at is not None:
            device.store.edit(replace(meta, hidden_at=None).attach(credential))
            outcomes[credential.credential_id] = SignalOutcome.RESTORED
    return outcomes


def signal_current_user_details(
    device: Device, rp_id: str, user_id: bytes, name: str, display_name: str
) -> dict[bytes, SignalOutcome]:
    """The account's current names: every credential of the user is renamed."""
    if device.account.provider.signal_effect is SignalEffect.IGNORE:
        return {}
    if not _quota_ok(device, rp_id):
        return {b"": SignalOutcome.QUOTA_EXCEEDED}
    outcomes: dict[bytes, SignalOutcome] = {}
    for credential in device.store.records():
        if credential.rp_id != rp_id or credential.user_id != user_id:
            continue
        if (credential.user_name, credential.user_display_name) == (name, display_name):
            outcomes[credential.credential_id] = SignalOutcome.UNCHANGED
            continue
        device.store.edit(replace(credential, user_name=name, user_display_name=display_name))
        outcomes[credential.credential_id] = SignalOutcome.UPDATED
    return outcomes
