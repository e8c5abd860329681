"""Synced-passkey scenarios a relying party needs (issue 5), each ceremony driven by
python-fido2's Fido2Client over InProcessDevice and checked by two independent verifiers:
python-fido2's Fido2Server and py_webauthn."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import pytest
from fido2.client import ClientError, DefaultClientDataCollector, Fido2Client
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestedCredentialData,
    AuthenticatorData,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from webauthn import verify_authentication_response, verify_registration_response
from webauthn.helpers.structs import CredentialDeviceType

from authenticator import CounterMode
from transports.inprocess import InProcessDevice
from transports.sync import (
    GOOGLE_PASSWORD_MANAGER,
    ICLOUD_KEYCHAIN,
    ONEPASSWORD,
    BackupState,
    Cloud,
    CryptoError,
    Device,
    ProviderProfile,
    RecoveryError,
    SignalOutcome,
    SyncError,
    SyncMeta,
)
from transports.sync.crypto import open_escrow

ORIGIN = "https://example.com"
RP_ID = "example.com"


@dataclass
class Registration:
    credential: AttestedCredentialData
    public_key: bytes  # as py_webauthn returns it
    aaguid: uuid.UUID
    flags: int
    sign_count: int
    user_verified: bool
    multi_device: bool  # py_webauthn's credential_device_type


@dataclass
class Login:
    credential_id: bytes
    flags: int
    sign_count: int
    backed_up: bool
    user_verified: bool
    user_handle: bytes | None


class RelyingParty:
    """A relying party that verifies every ceremony with both oracles and remembers the
    latest signature counter per credential, as WebAuthn §7.2 step 21 asks."""

    def __init__(self) -> None:
        self.server = Fido2Server(PublicKeyCredentialRpEntity(name="Example", id=RP_ID))
        self.counters: dict[bytes, int] = {}
        self.registrations: dict[bytes, Registration] = {}

    @staticmethod
    def client(device: Device) -> Fido2Client:
        return Fido2Client(
            InProcessDevice(device.authenticator), DefaultClientDataCollector(ORIGIN)
        )

    def register(
        self,
        device: Device,
        user_id: bytes = b"alice",
        name: str = "alice",
        uv: UserVerificationRequirement = UserVerificationRequirement.PREFERRED,
    ) -> Registration:
        options, state = self.server.register_begin(
            PublicKeyCredentialUserEntity(id=user_id, name=name, display_name=name.title()),
            resident_key_requirement=ResidentKeyRequirement.REQUIRED,
            user_verification=uv,
        )
        response = self.client(device).make_credential(options.public_key)
        auth_data = self.server.register_complete(state, response)
        assert auth_data.credential_data is not None
        verified = verify_registration_response(
            credential=json.dumps(dict(response)),
            expected_challenge=options.public_key.challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
        )
        assert verified.fmt == "none"
        assert verified.credential_id == auth_data.credential_data.credential_id
        registration = Registration(
            auth_data.credential_data,
            verified.credential_public_key,
            uuid.UUID(verified.aaguid),
            int(auth_data.flags),
            verified.sign_count,
            verified.user_verified,
            verified.credential_device_type is CredentialDeviceType.MULTI_DEVICE,
        )
        self.registrations[verified.credential_id] = registration
        self.counters[verified.credential_id] = verified.sign_count
        return registration

    def login(self, device: Device, allow: list[Registration] | None = None) -> Login:
        """A sign-in; with ``allow`` None the authenticator discovers the passkey."""
        credentials = [r.credential for r in (allow or self.registrations.values())]
        options, state = self.server.authenticate_begin(
            [r.credential for r in allow] if allow else None
        )
        assertion = self.client(device).get_assertion(options.public_key).get_response(0)
        self.server.authenticate_complete(state, credentials, assertion)
        credential_id = assertion.raw_id
        result = verify_authentication_response(
            credential=json.dumps(dict(assertion)),
            expected_challenge=options.public_key.challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
            credential_public_key=self.registrations[credential_id].public_key,
            credential_current_sign_count=self.counters[credential_id],
        )
        self.counters[credential_id] = result.new_sign_count
        data = AuthenticatorData(assertion.response.authenticator_data)
        return Login(
            credential_id,
            int(data.flags),
            result.new_sign_count,
            result.credential_backed_up,
            result.user_verified,
            assertion.response.user_handle,
        )

    def cannot_login(self, device: Device, allow: list[Registration] | None = None) -> bool:
        try:
            self.login(device, allow)
        except ClientError:
            return True
        return False


BE, BS = AuthenticatorData.FLAG.BACKUP_ELIGIBILITY, AuthenticatorData.FLAG.BACKUP_STATE


@pytest.fixture
def cloud() -> Cloud:
    return Cloud(strict=True)


@pytest.fixture
def rp() -> RelyingParty:
    return RelyingParty()


def _account(cloud: Cloud, provider: ProviderProfile) -> tuple[Device, Device]:
    account = cloud.account("alice@example.com", provider=provider)
    return account.device("phone"), account.device("laptop")


@pytest.mark.parametrize("provider", [ICLOUD_KEYCHAIN, GOOGLE_PASSWORD_MANAGER, ONEPASSWORD])
def test_created_on_phone_used_on_laptop_after_sync_not_before(
    cloud: Cloud, rp: RelyingParty, provider: ProviderProfile
) -> None:
    phone, laptop = _account(cloud, provider)
    registration = rp.register(phone)
    assert registration.aaguid == provider.aaguid
    assert registration.sign_count == 0
    assert registration.flags & BE and registration.flags & BS and registration.multi_device

    assert rp.cannot_login(laptop), "visible on the laptop before propagation"
    assert rp.cannot_login(laptop, [registration])
    cloud.advance(seconds=provider.propagation_delay - 0.5)
    assert rp.cannot_login(laptop), "visible before the propagation delay elapsed"
    cloud.advance(seconds=0.5)
    for device in (laptop, phone, laptop):
        login = rp.login(device)
        assert login.credential_id == registration.credential.credential_id
        assert login.sign_count == 0 and login.flags & BE and login.backed_up
        assert login.user_handle == b"alice"
    assert rp.login(laptop, [registration]).sign_count == 0


def test_docs_example_account_sync_flushes_without_waiting(cloud: Cloud, rp: RelyingParty) -> None:
    account = cloud.account("alice@example.com", provider=ICLOUD_KEYCHAIN)
    phone, laptop = account.device("iPhone"), account.device("MacBook")
    registration = rp.register(phone)
    account.sync()
    login = rp.login(laptop)
    assert login.credential_id == registration.credential.credential_id
    assert login.sign_count == 0 and login.flags & BE and login.flags & BS


def test_backup_state_synced_rule_flips_bs_once_uploaded(cloud: Cloud, rp: RelyingParty) -> None:
    provider = ONEPASSWORD.with_(backup_state=BackupState.SYNCED)
    phone, _ = _account(cloud, provider)
    phone.online = False
    registration = rp.register(phone)
    assert registration.flags & BE and not registration.flags & BS
    login = rp.login(phone)
    assert login.flags & BE and not login.flags & BS and not login.backed_up
    phone.online = True  # pushes the outbox: the record is now backed up
    login = rp.login(phone)
    assert login.flags & BE and login.flags & BS and login.backed_up


def test_sync_switched_off_keeps_be_drops_bs(cloud: Cloud, rp: RelyingParty) -> None:
    phone, _ = _account(cloud, ICLOUD_KEYCHAIN)
    rp.register(phone)
    phone.sync_enabled = False
    login = rp.login(phone)
    assert login.flags & BE and not login.flags & BS
    phone.sync_enabled = True
    assert rp.login(phone).flags & BS


def test_never_rule_is_the_samsung_report(cloud: Cloud, rp: RelyingParty) -> None:
    provider = GOOGLE_PASSWORD_MANAGER.with_(backup_eligible=False, backup_state=BackupState.NEVER)
    phone, laptop = _account(cloud, provider)
    registration = rp.register(phone)
    assert not registration.flags & BE and not registration.flags & BS
    assert not registration.multi_device
    cloud.advance(seconds=10)
    login = rp.login(laptop)  # synced although it says single-device
    assert not login.flags & BE and not login.flags & BS


def test_deletion_propagates_after_the_delay_then_the_credential_fails(
    cloud: Cloud, rp: RelyingParty
) -> None:
    phone, laptop = _account(cloud, ICLOUD_KEYCHAIN)
    registration = rp.register(phone)
    cloud.advance(seconds=5)
    rp.login(laptop)
    phone.store.delete(registration.credential.credential_id)  # the user deletes it
    assert rp.cannot_login(phone, [registration])
    assert rp.login(laptop, [registration]).sign_count == 0, "deleted before the delay"
    cloud.advance(seconds=ICLOUD_KEYCHAIN.propagation_delay)
    assert rp.cannot_login(laptop, [registration])
    assert rp.cannot_login(laptop)


def test_offline_device_signs_with_a_deleted_credential_then_catches_up(
    cloud: Cloud, rp: RelyingParty
) -> None:
    phone, laptop = _account(cloud, GOOGLE_PASSWORD_MANAGER)
    first = rp.register(phone)
    cloud.advance(seconds=10)
    laptop.online = False
    phone.store.delete(first.credential.credential_id)
    second = rp.register(phone, user_id=b"bob", name="bob")
    cloud.advance(seconds=3600)
    assert rp.login(laptop, [first]).credential_id == first.credential.credential_id
    assert rp.cannot_login(laptop, [second])
    laptop.online = True  # syncs on reconnect
    assert rp.cannot_login(laptop, [first])
    assert rp.login(laptop, [second]).credential_id == second.credential.credential_id


def test_partition_holds_changes_until_healed(cloud: Cloud, rp: RelyingParty) -> None:
    phone, laptop = _account(cloud, ICLOUD_KEYCHAIN)
    cut = cloud.partition(phone)
    registration = rp.register(phone)
    cloud.advance(seconds=60)
    assert rp.cannot_login(laptop, [registration])
    with pytest.raises(SyncError):
        phone.sync()
    cloud.heal(cut)  # the phone pushes; the laptop sees it after the delay
    assert rp.cannot_login(laptop, [registration])
    cloud.advance(seconds=2)
    assert rp.login(laptop, [registration]).sign_count == 0


def test_same_user_handle_apple_overwrites(cloud: Cloud, rp: RelyingParty) -> None:
    phone, laptop = _account(cloud, ICLOUD_KEYCHAIN)
    old = rp.register(phone)
    cloud.advance(seconds=5)
    new = rp.register(laptop)  # same user.id on another device
    cloud.advance(seconds=5)
    for device in (phone, laptop):
        assert rp.login(device).credential_id == new.credential.credential_id
        assert rp.cannot_login(device, [old]), "the overwritten passkey still signs"
        assert [c.credential_id for c in device.passkeys()] == [new.credential.credential_id]


def test_same_user_handle_gpm_shadows(cloud: Cloud, rp: RelyingParty) -> None:
    phone, laptop = _account(cloud, GOOGLE_PASSWORD_MANAGER)
    old = rp.register(phone)
    new = rp.register(phone)
    cloud.advance(seconds=10)
    for device in (phone, laptop):
        assert rp.login(device).credential_id == new.credential.credential_id
        assert rp.cannot_login(device, [old])
        kept = {c.credential_id for c in device.store.records()}
        assert kept == {old.credential.credential_id, new.credential.credential_id}


def test_same_user_handle_1password_keeps_both(cloud: Cloud, rp: RelyingParty) -> None:
    phone, laptop = _account(cloud, ONEPASSWORD)
    old = rp.register(phone)
    new = rp.register(phone)
    cloud.advance(seconds=5)
    for device in (phone, laptop):
        assert rp.login(device, [old]).credential_id == old.credential.credential_id
        assert rp.login(device, [new]).credential_id == new.credential.credential_id
        assert len(device.passkeys()) == 2


@pytest.mark.parametrize(
    ("provider", "survivors"),
    [(ICLOUD_KEYCHAIN, 1), (GOOGLE_PASSWORD_MANAGER, 1), (ONEPASSWORD, 2)],
    ids=["apple", "gpm", "1password"],
)
def test_concurrent_creation_for_one_user_on_two_offline_devices(
    cloud: Cloud, rp: RelyingParty, provider: ProviderProfile, survivors: int
) -> None:
    phone, laptop = _account(cloud, provider)
    phone.online = laptop.online = False
    on_phone = rp.register(phone)
    cloud.advance(seconds=1)
    on_laptop = rp.register(laptop)  # newer
    phone.online = laptop.online = True
    cloud.account("alice@example.com", provider=provider).sync()
    both = {on_phone.credential.credential_id, on_laptop.credential.credential_id}
    for device in (phone, laptop):
        assert len(device.passkeys()) == survivors
        works = not rp.cannot_login(device, [on_phone])
        assert works is (survivors == 2), "the RP's orphaned public key"
        assert rp.login(device, [on_laptop]).credential_id == on_laptop.credential.credential_id
        if survivors == 1:  # every device picks the same winner: the newer one
            assert rp.login(device).credential_id == on_laptop.credential.credential_id
        else:
            assert {c.credential_id for c in device.passkeys()} == both


def test_conflicting_renames_last_writer_wins(cloud: Cloud, rp: RelyingParty) -> None:
    account = cloud.account("alice@example.com", provider=ICLOUD_KEYCHAIN)
    phone, laptop = account.device("phone"), account.device("laptop")
    registration = rp.register(phone)
    account.sync()
    phone.online = laptop.online = False
    phone.signal_current_user_details(RP_ID, b"alice", "alice@old", "Alice Old")
    cloud.advance(seconds=1)
    laptop.signal_current_user_details(RP_ID, b"alice", "alice@new", "Alice New")
    phone.online = laptop.online = True
    account.sync()
    for device in (phone, laptop):
        (stored,) = device.passkeys()
        assert (stored.user_name, stored.user_display_name) == ("alice@new", "Alice New")
    assert rp.login(phone, [registration]).sign_count == 0


def test_conflicting_renames_1password_keeps_both(cloud: Cloud) -> None:
    rp = RelyingParty()
    account = cloud.account("alice@example.com", provider=ONEPASSWORD)
    phone, laptop = account.device("phone"), account.device("laptop")
    rp.register(phone)
    account.sync()
    phone.online = laptop.online = False
    phone.signal_current_user_details(RP_ID, b"alice", "from-phone", "Phone")
    laptop.signal_current_user_details(RP_ID, b"alice", "from-laptop", "Laptop")
    phone.online = True
    laptop.online = True  # laptop's push conflicts with the phone's
    account.sync()
    views = []
    for device in (phone, laptop):
        (stored,) = device.passkeys()
        conflicts = SyncMeta.of(stored).conflicts
        views.append((stored.user_name, [c["user_name"] for c in conflicts]))
    assert views[0] == views[1]
    name, kept = views[0]
    assert {name, *kept} == {"from-phone", "from-laptop"}


@pytest.mark.parametrize("recovery_code", [None, "2468"], ids=["no-escrow", "escrow"])
def test_removed_device_loses_access_to_new_records(
    cloud: Cloud, rp: RelyingParty, recovery_code: str | None
) -> None:
    account = cloud.account(
        "alice@example.com", provider=ICLOUD_KEYCHAIN, recovery_code=recovery_code
    )
    phone, laptop, tablet = (account.device(n) for n in ("phone", "laptop", "tablet"))
    before = rp.register(phone)
    account.sync()
    epoch = account.epoch
    account.remove_device(tablet)
    assert account.epoch == epoch + 1
    after = rp.register(phone, user_id=b"bob", name="bob")
    account.sync()
    assert rp.login(laptop, [after]).sign_count == 0
    assert rp.login(tablet, [before]).sign_count == 0, "the removed device keeps old copies"
    assert rp.cannot_login(tablet, [after])
    with pytest.raises(SyncError):
        tablet.sync()
    # Even holding the cloud's ciphertext, the removed device can't open the new record.
    newest = max(cloud.backend.changes(account.id, 0), key=lambda e: e.seq)
    assert newest.epoch == epoch + 1
    with pytest.raises(CryptoError):
        tablet.decrypt(newest)
    assert laptop.decrypt(newest).credential_id == after.credential.credential_id
    # Nor through the escrow: the removed device holds no escrow key, so no key it kept opens
    # the escrow record in the cloud (the HSM's key does: the record is really there).
    record = cloud.backend.escrow(account.id)
    assert (record is not None) == (recovery_code is not None)
    if record is not None:
        aad = cloud.escrow.record_aad(account.id)
        open_escrow(cloud.backend.hsm.master_key(b""), record, aad)
        membership = tablet._membership
        assert membership is not None
        held = [
            *membership.secrets.epochs.values(),
            membership.secrets.routing_key,
            membership.identity.private_bytes(),
        ]
        for key in held:
            with pytest.raises(CryptoError):
                open_escrow(key, record, aad)
        assert set(membership.secrets.epochs) == {epoch}, "it only ever got the old epoch"
    assert account.recovery_attempts_left == (ICLOUD_KEYCHAIN.recovery_attempts if record else 0)


def test_recovery_after_a_removal_reads_records_written_since(
    cloud: Cloud, rp: RelyingParty
) -> None:
    """The rotation hands the new epoch to the escrow HSM, so recovery still gets everything."""
    account = cloud.account("alice@example.com", provider=ICLOUD_KEYCHAIN, recovery_code="2468")
    phone, lost = account.device("phone"), account.device("lost-phone")
    before = rp.register(phone)
    account.remove_device(lost)
    after = rp.register(phone, user_id=b"bob", name="bob")
    with pytest.raises(RecoveryError):
        account.recover("new-phone", "1357")
    new_phone = account.recover("new-phone", "2468")
    assert account.recovery_attempts_left == ICLOUD_KEYCHAIN.recovery_attempts - 1, (
        "a right code spends nothing; the wrong one stays counted"
    )
    account.sync()
    assert rp.login(new_phone, [before]).sign_count == 0
    assert rp.login(new_phone, [after]).sign_count == 0
    assert rp.cannot_login(lost, [after])


def test_signal_unknown_credential_gpm_hides_and_all_accepted_restores(
    cloud: Cloud, rp: RelyingParty
) -> None:
    phone, laptop = _account(cloud, GOOGLE_PASSWORD_MANAGER)
    registration = rp.register(phone)
    credential_id = registration.credential.credential_id
    cloud.advance(seconds=10)
    assert phone.signal_unknown_credential(RP_ID, credential_id) is SignalOutcome.HIDDEN
    assert phone.signal_unknown_credential(RP_ID, credential_id) is SignalOutcome.ALREADY_HIDDEN
    cloud.advance(seconds=10)
    assert rp.cannot_login(phone) and rp.cannot_login(laptop)
    assert rp.cannot_login(laptop, [registration])
    outcomes = laptop.signal_all_accepted_credentials(RP_ID, b"alice", [credential_id])
    assert outcomes == {credential_id: SignalOutcome.RESTORED}
    cloud.advance(seconds=10)
    assert rp.login(phone).credential_id == credential_id


def test_signal_unknown_credential_apple_deletes(cloud: Cloud, rp: RelyingParty) -> None:
    phone, laptop = _account(cloud, ICLOUD_KEYCHAIN)
    registration = rp.register(phone)
    credential_id = registration.credential.credential_id
    cloud.advance(seconds=5)
    assert laptop.signal_unknown_credential(RP_ID, credential_id) is SignalOutcome.DELETED
    cloud.advance(seconds=5)
    assert phone.store.records() == [] and laptop.store.records() == []
    assert laptop.signal_all_accepted_credentials(RP_ID, b"alice", [credential_id]) == {}
    assert rp.cannot_login(phone, [registration])


def test_signal_quota_drops_signals_silently(cloud: Cloud, rp: RelyingParty) -> None:
    phone, _ = _account(cloud, GOOGLE_PASSWORD_MANAGER.with_(signal_quota=(2, 120.0)))
    registration = rp.register(phone)
    credential_id = registration.credential.credential_id
    rename = phone.signal_current_user_details
    assert rename(RP_ID, b"alice", "a1", "A1") == {credential_id: SignalOutcome.UPDATED}
    assert rename(RP_ID, b"alice", "a1", "A1") == {credential_id: SignalOutcome.UNCHANGED}
    assert rename(RP_ID, b"alice", "a2", "A2") == {b"": SignalOutcome.QUOTA_EXCEEDED}
    cloud.advance(seconds=120)
    assert rename(RP_ID, b"alice", "a2", "A2") == {credential_id: SignalOutcome.UPDATED}
    assert rp.login(phone).user_handle == b"alice"


def test_cxf_export_import_into_another_provider_then_sign_in(
    cloud: Cloud, rp: RelyingParty
) -> None:
    phone, _ = _account(cloud, ICLOUD_KEYCHAIN)
    registration = rp.register(phone)
    bob = rp.register(phone, user_id=b"bob", name="bob")
    exported = phone.export_cxf()
    assert exported.excluded == ()
    android = cloud.account("alice@gmail.com", provider=GOOGLE_PASSWORD_MANAGER).device("pixel")
    report = android.import_cxf(exported.to_json())
    assert set(report.imported) == {
        registration.credential.credential_id,
        bob.credential.credential_id,
    }
    for original in (registration, bob):
        login = rp.login(android, [original])
        assert login.credential_id == original.credential.credential_id
        assert login.sign_count == 0 and login.flags & BE and login.flags & BS
    # Imported passkeys sync inside the new provider too.
    chromebook = cloud.account("alice@gmail.com", provider=GOOGLE_PASSWORD_MANAGER).device("cb")
    cloud.advance(seconds=GOOGLE_PASSWORD_MANAGER.propagation_delay)
    assert rp.login(chromebook, [bob]).sign_count == 0
    # The exporter keeps its copy (CXP does not delete).
    assert rp.login(phone, [bob]).sign_count == 0


def test_cxf_refuses_to_export_counting_credentials(cloud: Cloud, rp: RelyingParty) -> None:
    counting = ICLOUD_KEYCHAIN.with_(counter=CounterMode.PER_CREDENTIAL)
    phone, _ = _account(cloud, counting)
    registration = rp.register(phone)
    fresh = phone.export_cxf()
    assert fresh.excluded == ()  # counter still 0 after registration
    rp.login(phone)
    used = phone.export_cxf()
    assert used.excluded == (registration.credential.credential_id,)
    assert used.document["accounts"][0]["items"] == []


def test_uv_policies_are_visible_to_the_rp(cloud: Cloud) -> None:
    """The provider's platform applies its UV rule (``ProviderClient``): GPM verifies when
    the RP requires it (with its PIN where there are no biometrics), on "preferred" only with
    biometrics, never on "discouraged" [S5]; iOS always verifies [S16]."""
    from transports.sync.providers import ProviderClient

    server = Fido2Server(PublicKeyCredentialRpEntity(name="Example", id=RP_ID))

    def user_verified(device: Device, user_id: bytes, uv: UserVerificationRequirement) -> bool:
        options, state = server.register_begin(
            PublicKeyCredentialUserEntity(id=user_id, name="u", display_name="U"),
            resident_key_requirement=ResidentKeyRequirement.REQUIRED,
            user_verification=uv,
        )
        response = ProviderClient(device, ORIGIN).make_credential(options.public_key)
        auth_data = server.register_complete(state, response)
        verified = verify_registration_response(
            credential=json.dumps(dict(response)),
            expected_challenge=options.public_key.challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
            require_user_verification=uv is UserVerificationRequirement.REQUIRED,
        )
        assert verified.user_verified is auth_data.is_user_verified()
        return verified.user_verified

    required, preferred, discouraged = (
        UserVerificationRequirement.REQUIRED,
        UserVerificationRequirement.PREFERRED,
        UserVerificationRequirement.DISCOURAGED,
    )
    iphone = cloud.account("a", provider=ICLOUD_KEYCHAIN).device("iPhone")
    assert user_verified(iphone, b"a", discouraged)
    gpm = cloud.account("b", provider=GOOGLE_PASSWORD_MANAGER)
    linux = gpm.device("linux-chrome", has_biometrics=False)
    assert not user_verified(linux, b"b", preferred), "'preferred' needs biometrics"
    assert user_verified(linux, b"b2", required), "the GPM PIN verifies"
    assert not user_verified(linux, b"b3", discouraged)
    mac = gpm.device("mac")
    assert user_verified(mac, b"c", preferred)
    assert not user_verified(mac, b"c2", discouraged)
    # A plain CTAP client sees the Linux device without built-in UV.
    rp = RelyingParty()
    assert not rp.register(linux, user_id=b"d").user_verified
    with pytest.raises(ClientError):
        rp.register(linux, user_id=b"d2", uv=UserVerificationRequirement.REQUIRED)


def test_recovery_joins_a_device_and_exhaustion_forces_a_reset(
    cloud: Cloud, rp: RelyingParty
) -> None:
    account = cloud.account("alice@example.com", provider=ICLOUD_KEYCHAIN, recovery_code="2468")
    phone = account.device("phone")
    registration = rp.register(phone)
    new_phone = account.recover("new-phone", "2468")
    cloud.advance(seconds=ICLOUD_KEYCHAIN.propagation_delay)
    assert rp.login(new_phone, [registration]).sign_count == 0
    assert account.recovery_attempts_left == ICLOUD_KEYCHAIN.recovery_attempts

    for left in range(ICLOUD_KEYCHAIN.recovery_attempts - 1, -1, -1):
        with pytest.raises(RecoveryError) as failure:
            account.recover("thief", "0000")
        assert failure.value.attempts_left == left
    with pytest.raises(RecoveryError):
        account.recover("late", "2468")  # the escrow is destroyed: the right code is too late
    account.reset()
    assert phone.store.records() == [] and not phone.is_member
    fresh = account.device("fresh")
    assert rp.cannot_login(fresh, [registration]), "a reset keeps no passkey"
    assert rp.register(fresh, user_id=b"again").sign_count == 0
