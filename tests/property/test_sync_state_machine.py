"""A Hypothesis state machine over one account and three devices: random creations (through
the CTAP core), deletions, renames, syncs, offline periods, partitions, time steps, wrong
recovery codes, and a device removed then replaced by one joined with the recovery code.

Checked against a model after every step: the cloud holds only ciphertext (no private key,
credential ID, user handle or rpId appears in anything it stores, nor the escrow HSM's key); a
removed device opens no envelope of a later epoch and no key it kept opens the escrow record;
the HSM counts exactly the wrong codes. When the network heals and everyone syncs: all
devices converge to the same keychain and no credential is lost (1Password keeps everything
not deleted; iCloud Keychain keeps exactly the newest per user handle).
"""

from __future__ import annotations

import hashlib

import pytest
from fido2 import cbor as fido2_cbor
from fido2.webauthn import AuthenticatorData
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from authenticator.credential import CredentialSecrets
from transports.sync import (
    ICLOUD_KEYCHAIN,
    ONEPASSWORD,
    Cloud,
    CryptoError,
    Device,
    ProviderProfile,
    RecoveryError,
)
from transports.sync.crypto import open_escrow
from transports.sync.store import SyncMeta

RP_ID = "state-machine.example"
USERS = (b"user-0", b"user-1", b"user-2")
DEVICES = ("phone", "laptop", "tablet")
RECOVERY_CODE = "246810"


def _make_credential(device: Device, user_id: bytes) -> bytes:
    request = {
        1: hashlib.sha256(b"client data").digest(),
        2: {"id": RP_ID},
        3: {"id": user_id, "name": user_id.decode()},
        4: [{"alg": -7, "type": "public-key"}],
        7: {"rk": True, "uv": True},  # built-in UV: CTAP 2.1 §6.1.2 step 6 wants it for rk
    }
    response = device.authenticator.call(b"\x01" + fido2_cbor.encode(request))
    assert response[0] == 0, f"makeCredential failed: 0x{response[0]:02x}"
    decoded = fido2_cbor.decode(response[1:])
    assert isinstance(decoded, dict) and isinstance(decoded[2], bytes)
    auth_data = AuthenticatorData(decoded[2])
    assert auth_data.credential_data is not None
    assert auth_data.counter == 0
    return auth_data.credential_data.credential_id


class SyncMachine(RuleBasedStateMachine):
    provider: ProviderProfile = ONEPASSWORD

    def __init__(self) -> None:
        super().__init__()
        self.cloud = Cloud(strict=True)
        self.cloud.escrow.scrypt_n = 2**4  # the HSM's counter is under test, not scrypt's cost
        self.account = self.cloud.account(
            "alice@example.com", provider=self.provider, recovery_code=RECOVERY_CODE
        )
        self.devices = [self.account.device(name) for name in DEVICES]
        self.removed: list[tuple[Device, int]] = []  # (device, newest epoch it was given)
        self.attempts = self.provider.recovery_attempts
        self.live: dict[bytes, tuple[bytes, float]] = {}  # id -> (user, created at)
        self.created: dict[bytes, tuple[bytes, float]] = {}  # every credential ever made
        self.secrets: set[bytes] = set()  # every private key ever created
        self.partitioned: set[int] = set()

    @initialize()
    def start(self) -> None:
        self.cloud.advance(0)

    @rule(device=st.integers(0, 2), user=st.sampled_from(USERS))
    def create(self, device: int, user: bytes) -> None:
        target = self.devices[device]
        replaced = [
            c.credential_id for c in target.store.discoverable_for_user(RP_ID, user)
        ]  # what the core's CTAP 2.1 §6.1.2 step 15 hands the provider
        credential_id = _make_credential(target, user)
        if self.provider is ICLOUD_KEYCHAIN:
            for old in replaced:
                self.live.pop(old, None)
        stored = target.store.record(credential_id)
        assert stored is not None
        self.live[credential_id] = (user, SyncMeta.of(stored).created_at)
        self.created[credential_id] = self.live[credential_id]
        secrets = CredentialSecrets.open(
            target.store.sealer(), stored.sealed_secrets, credential_id
        )
        assert secrets is not None
        self.secrets.add(secrets.key.private_bytes())

    @rule(device=st.integers(0, 2), choice=st.integers(0, 20))
    def delete(self, device: int, choice: int) -> None:
        passkeys = self.devices[device].passkeys()
        if not passkeys:
            return
        victim = passkeys[choice % len(passkeys)].credential_id
        self.devices[device].store.delete(victim)
        self.live.pop(victim, None)

    @rule(device=st.integers(0, 2), user=st.sampled_from(USERS), name=st.sampled_from("abc"))
    def rename(self, device: int, user: bytes, name: str) -> None:
        self.devices[device].signal_current_user_details(RP_ID, user, name, name.upper())

    @rule(device=st.integers(0, 2))
    def toggle_online(self, device: int) -> None:
        self.devices[device].online = not self.devices[device].online

    @rule(device=st.integers(0, 2))
    def cut_off(self, device: int) -> None:
        self.cloud.partition(self.devices[device])
        self.partitioned.add(device)

    @precondition(lambda self: bool(self.partitioned))
    @rule()
    def heal(self) -> None:
        self.cloud.heal()
        self.partitioned.clear()

    @precondition(lambda self: self.attempts > 1)  # never exhaust: a reset is tested elsewhere
    @rule()
    def wrong_recovery_code(self) -> None:
        with pytest.raises(RecoveryError) as refused:
            self.account.recover(f"thief-{self.attempts}", "000000")
        self.attempts -= 1
        assert refused.value.attempts_left == self.attempts

    @precondition(lambda self: len(self.removed) < 3)
    @rule(device=st.integers(0, 2))
    def replace_with_recovery(self, device: int) -> None:
        """Lose a device (once its changes are uploaded) and recover a new one with the code."""
        old = self.devices[device]
        if old.store.outbox() or not old.reachable:
            return  # unsynced changes would be lost with the device, as on a real one
        old.sync()
        membership = old._membership
        assert membership is not None
        self.account.remove_device(old)
        self.removed.append((old, membership.secrets.current_epoch))
        replacement = self.account.recover(f"{DEVICES[device]}-{len(self.removed)}", RECOVERY_CODE)
        assert replacement.is_member and self.account.recovery_attempts_left == self.attempts
        self.devices[device] = replacement

    @rule(seconds=st.sampled_from([0.0, 0.5, 1.0, 3.0, 60.0]))
    def advance(self, seconds: float) -> None:
        self.cloud.advance(seconds)

    @rule(device=st.integers(0, 2))
    def sync(self, device: int) -> None:
        self.devices[device].sync_if_reachable(force=False)

    @invariant()
    def cloud_holds_only_ciphertext(self) -> None:
        blob = b"".join(
            v if isinstance(v, bytes) else str(v).encode()
            for row in self.cloud.backend.dump()
            for v in row
        )
        assert RP_ID.encode() not in blob
        for user in USERS:
            assert user not in blob
        for secret in self.secrets:
            assert secret not in blob, "a private key is readable in the cloud"
        for credential_id in self.live:
            assert credential_id not in blob
        assert self.cloud.backend.hsm.master_key(b"") not in blob

    @invariant()
    def removed_devices_read_nothing_newer(self) -> None:
        assert self.account.recovery_attempts_left == self.attempts
        record = self.cloud.backend.escrow(self.account.id)
        assert record is not None
        aad = self.cloud.escrow.record_aad(self.account.id)
        envelopes = self.cloud.backend.changes(self.account.id, 0)
        for device, epoch in self.removed:
            membership = device._membership
            assert membership is not None and max(membership.secrets.epochs) == epoch
            for envelope in envelopes:
                if envelope.epoch > epoch:
                    with pytest.raises(CryptoError):
                        device.decrypt(envelope)
            for key in (*membership.secrets.epochs.values(), membership.secrets.routing_key):
                with pytest.raises(CryptoError):
                    open_escrow(key, record, aad)

    def check_survivors(self, survivors: set[bytes]) -> None:
        assert survivors <= set(self.live), "a deleted credential came back"
        if self.provider is ONEPASSWORD:
            assert survivors == set(self.live), "a credential was lost"
            return
        # iCloud Keychain: one passkey per user handle. A credential the user did not delete
        # may only be gone because a newer one for the same user overwrote it, and the newest
        # one ever made survives unless the user deleted it.
        users = [self.created[c][0] for c in survivors]
        assert len(users) == len(set(users)), "two passkeys for one user handle"
        for credential_id in set(self.live) - survivors:
            user, created_at = self.created[credential_id]
            assert any(
                u == user and (at, other) > (created_at, credential_id)
                for other, (u, at) in self.created.items()
            ), "a credential was lost without being overwritten"
        for user in USERS:
            made = [(at, c) for c, (u, at) in self.created.items() if u == user]
            if made and max(made)[1] in self.live:
                assert max(made)[1] in survivors, "the newest passkey was lost"

    def teardown(self) -> None:
        self.cloud.heal()
        for device in self.devices:
            device.online = True
        self.account.sync()
        views = [{c.credential_id for c in d.passkeys()} for d in self.devices]
        assert views[0] == views[1] == views[2], "devices did not converge"
        self.check_survivors(views[0])
        names = [sorted((c.credential_id, c.user_name) for c in d.passkeys()) for d in self.devices]
        assert names[0] == names[1] == names[2], "renames did not converge"
        self.cloud_holds_only_ciphertext()
        self.cloud.close()


class KeepBothMachine(SyncMachine):
    provider = ONEPASSWORD


class OverwriteMachine(SyncMachine):
    provider = ICLOUD_KEYCHAIN


TestKeepBoth = KeepBothMachine.TestCase
TestOverwrite = OverwriteMachine.TestCase
