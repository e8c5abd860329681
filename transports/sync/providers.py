"""Passkey-provider profiles: what iCloud Keychain, Google Password Manager, 1Password and
Bitwarden report to relying parties and how each one syncs, as data rather than code branches.

Every value below comes from ``/work/shared/reference/keychain-sync.md`` (its source tags are
cited as ``[Sx]``); values the reference marks *unverified* are marked so here. Every field is
overridable in a test: ``ICLOUD_KEYCHAIN.with_(propagation_delay=60.0)``.

WebAuthn L3 §6.1 (authenticator data flags) and §6.1.3 (credential backup state) define BE/BS;
§6.1.1 allows a constant-zero signature counter, which every synced provider uses.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Final

from authenticator.config import PLATFORM, AttestationFormat, AuthenticatorConfig, CounterMode
from authenticator.keys import CoseAlgorithm


class BackupState(StrEnum):
    """When a provider sets the BS flag (WebAuthn L3 §6.1.3)."""

    ALWAYS = "always"  # Apple and GPM report BS=1 from the first ceremony, uploaded or not
    SYNCED = "synced"  # BS=1 only once the record is in the cloud (and sync is enabled)
    NEVER = "never"  # the Samsung Pass report [S18 passkeys.dev#392]: BS=0 although synced


class UvPolicy(StrEnum):
    """How a provider answers ``userVerification`` (what the UV flag can say)."""

    ALWAYS = "always"  # iOS: Face ID, Touch ID or the passcode, every time [S16 ios.md]
    BIOMETRICS = "biometrics"  # GPM desktop, macOS: "preferred" verifies only with biometrics [S5]
    CLAIMED = "claimed"  # browser-extension providers set UV=1 without verifying [S16]


class SameUserHandle(StrEnum):
    """A new discoverable credential for an (rpId, user.id) that already has one."""

    OVERWRITE = "overwrite"  # Apple: the old passkey is replaced [S16 ios.md], WebAuthn §6.3.2
    SHADOW = "shadow"  # GPM: the old one stays in the record store, hidden [S3 proto]
    KEEP_BOTH = "keep-both"  # 1Password, Bitwarden: two items (likely; unverified)


class EditConflict(StrEnum):
    """Two devices edit the same record concurrently (names, hidden state)."""

    LAST_WRITER_WINS = "last-writer-wins"  # CloudKit change tags, Chrome Sync [S13, S3]
    KEEP_BOTH = "keep-both"  # 1Password keeps the local and the remote change [S15d]


class SignalEffect(StrEnum):
    """What signalUnknownCredential / signalAllAcceptedCredentials do (WebAuthn L3 §5.1.10)."""

    HIDE = "hide"  # GPM hides and can restore [S4]
    DELETE = "delete"
    IGNORE = "ignore"


class Attachment(StrEnum):
    PLATFORM = "platform"
    CROSS_PLATFORM = "cross-platform"


@dataclass(frozen=True)
class ProviderProfile:
    """What one passkey provider is. ``authenticator_config()`` turns it into the core's
    ``AuthenticatorConfig`` for one device; the sync fields drive ``transports.sync``."""

    name: str
    display_name: str
    aaguid: uuid.UUID
    attestation: AttestationFormat = AttestationFormat.NONE
    counter: CounterMode = CounterMode.ZERO
    backup_eligible: bool = True
    backup_state: BackupState = BackupState.ALWAYS
    uv: UvPolicy = UvPolicy.ALWAYS
    algorithms: tuple[CoseAlgorithm, ...] = (CoseAlgorithm.ES256,)
    transports: tuple[str, ...] = ("hybrid", "internal")
    attachment: Attachment | None = Attachment.PLATFORM  # None: the Bitwarden #7141 report
    discoverable_only: bool = True
    same_user_handle: SameUserHandle = SameUserHandle.OVERWRITE
    edit_conflict: EditConflict = EditConflict.LAST_WRITER_WINS
    extensions: frozenset[str] = frozenset({"credProps"})
    signal_effect: SignalEffect = SignalEffect.DELETE
    signal_quota: tuple[int, float] | None = None  # (tokens per eTLD+1, seconds per refill)
    propagation_delay: float = 2.0  # simulated seconds before other devices see a change
    recovery_attempts: int = 10  # wrong recovery codes before the escrow is destroyed

    def with_(self, **overrides: Any) -> ProviderProfile:
        """A copy with some fields changed, for one test."""
        return replace(self, **overrides)

    def authenticator_config(self, *, has_biometrics: bool = True) -> AuthenticatorConfig:
        """The core configuration of one device of this provider."""
        built_in_uv = self.uv is not UvPolicy.BIOMETRICS or has_biometrics
        extensions = tuple(
            ctap for webauthn, ctaps in _CTAP_EXTENSIONS.items() if webauthn in self.extensions
            for ctap in ctaps
        )  # fmt: skip
        return replace(
            PLATFORM,
            name=self.name,
            aaguid=self.aaguid.bytes,
            attestation=self.attestation,
            algorithms=self.algorithms,
            counter=self.counter,
            transports=self.transports,
            platform=self.attachment is Attachment.PLATFORM,
            discoverable_only=self.discoverable_only,
            built_in_uv=built_in_uv,
            max_resident_credentials=1_000_000,  # a keychain, not a secure element
            backup_eligible=self.backup_eligible,
            backup_state=self.backup_eligible and self.backup_state is BackupState.ALWAYS,
            credential_management=False,  # providers manage passkeys in their own UI
            pin_uv_auth_token=False,  # UV is the platform's own gesture: the CTAP 2.0 "uv" option
            extensions=extensions,
            large_blobs="largeBlob" in self.extensions,
        )


_CTAP_EXTENSIONS: Final = {
    "prf": ("hmac-secret",),  # WebAuthn prf is carried by CTAP hmac-secret
    "largeBlob": ("largeBlobKey",),  # with authenticatorLargeBlobs (per device, not synced)
    "credBlob": ("credBlob",),
    "credProtect": ("credProtect",),
}
"""WebAuthn extension names (what providers advertise) to the core's CTAP extensions;
credProps is answered by the client, so it needs nothing from the authenticator."""


ICLOUD_KEYCHAIN: Final = ProviderProfile(
    name="icloud-keychain",
    display_name="iCloud Keychain (Apple Passwords)",
    aaguid=uuid.UUID("fbfc3007-154e-4ecc-8c0b-6e020557d7bd"),  # [S1]
    extensions=frozenset({"credProps", "largeBlob", "prf"}),  # iOS/Safari 17 and 18 [S18]
    same_user_handle=SameUserHandle.OVERWRITE,  # [S16 ios.md, macos.md]
    signal_effect=SignalEffect.DELETE,  # unverified (reference §6.8): override to test HIDE
    propagation_delay=2.0,  # push over APNs, near real time [S12]
    recovery_attempts=10,  # HSM escrow: destroyed after the 10th failure [S12 sec3e341e75d]
)
"""Apple's iCloud Keychain: overwrite on the same user handle, 10 escrow attempts."""

GOOGLE_PASSWORD_MANAGER: Final = ProviderProfile(
    name="google-password-manager",
    display_name="Google Password Manager",
    aaguid=uuid.UUID("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4"),  # kGpmAaguid [S3]
    uv=UvPolicy.BIOMETRICS,  # GpmWillDoUserVerification [S5]
    extensions=frozenset({"credProps", "prf"}),  # hmac_secret per credential [S3]
    same_user_handle=SameUserHandle.SHADOW,  # newly_shadowed_credential_ids [S3]
    signal_effect=SignalEffect.HIDE,  # HidePasskey / restore [S4]
    signal_quota=(10, 120.0),  # 10 tokens per eTLD+1, one back every 2 minutes [S4]
    propagation_delay=5.0,  # Chrome Sync push/poll (unverified figure)
    recovery_attempts=10,  # Cloud Key Vault: rate-limited, then unrecoverable [S14c]
)
"""Google Password Manager: shadowing, the biometrics UV rule, Signal API hides."""

ONEPASSWORD: Final = ProviderProfile(
    name="1password",
    display_name="1Password",
    aaguid=uuid.UUID("bada5566-a7aa-401f-bd96-45619a55120d"),  # [S1]
    uv=UvPolicy.CLAIMED,  # the extension sets UV=1 without doing UV [S16 known-issues.md]
    transports=("internal", "hybrid"),  # passkey-rs default [S7]
    extensions=frozenset({"credProps", "prf"}),  # [S7]
    same_user_handle=SameUserHandle.KEEP_BOTH,  # one item per registration (unverified)
    edit_conflict=EditConflict.KEEP_BOTH,  # "keeping both the local and remote changes" [S15d]
    signal_effect=SignalEffect.HIDE,  # unverified (reference §1.3)
    propagation_delay=1.0,  # push socket [S15c]
    recovery_attempts=5,  # recovery codes / trusted devices; no server recovery (unverified)
)
"""1Password: keeps both items and both sides of an edit conflict."""

BITWARDEN: Final = ProviderProfile(
    name="bitwarden",
    display_name="Bitwarden",
    aaguid=uuid.UUID("d548826e-79b4-db40-a3d8-11116f7e8349"),  # since 2023-11-02 [S1, S8]
    uv=UvPolicy.CLAIMED,  # "preferred" treated as required; UV set by the extension [S8]
    transports=("internal", "hybrid"),  # [S8]
    attachment=Attachment.CROSS_PLATFORM,  # historically cross-platform (#6963); unverified
    discoverable_only=False,  # residentKey "discouraged" -> a non-discoverable item [S8]
    same_user_handle=SameUserHandle.KEEP_BOTH,  # one credential per login item [S8]
    edit_conflict=EditConflict.LAST_WRITER_WINS,
    signal_effect=SignalEffect.IGNORE,  # unverified
    propagation_delay=1800.0,  # poll-style full sync, 30 minutes before exclude checks [S8]
    recovery_attempts=5,  # unverified
)
"""Bitwarden: poll-style propagation, non-discoverable items when asked."""

PROVIDERS: Final = {
    p.name: p for p in (ICLOUD_KEYCHAIN, GOOGLE_PASSWORD_MANAGER, ONEPASSWORD, BITWARDEN)
}
