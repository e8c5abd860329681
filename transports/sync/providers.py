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
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from fido2.client import AssertionSelection, DefaultClientDataCollector, Fido2Client
from fido2.ctap2 import AssertionResponse
from fido2.webauthn import (
    AuthenticationResponse,
    AuthenticatorAttachment,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialCreationOptions,
    PublicKeyCredentialRequestOptions,
    RegistrationResponse,
    UserVerificationRequirement,
)

from authenticator.authenticator import Authenticator
from authenticator.config import (
    PLATFORM,
    AttestationFormat,
    AuthenticatorConfig,
    CounterMode,
    NonResident,
)
from authenticator.keys import CoseAlgorithm
from transports.inprocess import InProcessDevice

if TYPE_CHECKING:
    from transports.sync.keychain import Device


class BackupState(StrEnum):
    """When a provider sets the BS flag (WebAuthn L3 §6.1.3)."""

    ALWAYS = "always"  # Apple and GPM report BS=1 from the first ceremony, uploaded or not
    SYNCED = "synced"  # BS=1 only once the record is in the cloud (and sync is enabled)
    NEVER = "never"  # the Samsung Pass report [S18 passkeys.dev#392]: BS=0 although synced


class UvPolicy(StrEnum):
    """How a provider answers ``userVerification`` (what the UV flag can say); the rule is
    ``ProviderProfile.will_verify``."""

    ALWAYS = "always"  # iOS: Face ID, Touch ID or the passcode, every time [S16 ios.md]
    # GpmWillDoUserVerification [S5]: "required" -> UV (the GPM PIN where there are no
    # biometrics), "preferred" -> UV only with platform biometrics, "discouraged" -> none.
    BIOMETRICS = "biometrics"
    CLAIMED = "claimed"  # browser-extension providers set UV=1 without verifying [S16, S8]


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
    # residentKey "discouraged" on a provider that is not discoverable-only: a stored,
    # synced item with discoverable=false (Bitwarden [S8]), never a key wrapped in the ID.
    non_resident: NonResident = NonResident.STORED
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

    def will_verify(self, user_verification: str, *, has_biometrics: bool = True) -> bool:
        """Whether the provider verifies the user for this WebAuthn ``userVerification``
        ("required", "preferred", "discouraged"): the provider's platform decides, before
        any CTAP request (Chromium's GpmWillDoUserVerification [S5]); ``ProviderClient``
        applies it. ALWAYS and CLAIMED report UV=1 whatever was asked (reference §0)."""
        match self.uv:
            case UvPolicy.BIOMETRICS:
                return user_verification == "required" or (
                    user_verification != "discouraged" and has_biometrics
                )
            case _:
                return True

    def authenticator_config(
        self,
        *,
        has_biometrics: bool = True,
        user_verification: bool | None = None,
        backup_state: bool | None = None,
    ) -> AuthenticatorConfig:
        """The core configuration of one device of this provider.

        With ``user_verification`` None this is the device as any CTAP client sees it:
        ALWAYS and CLAIMED verify every ceremony (``alwaysUv``, so a discoverable credential
        with ``userVerification: "discouraged"`` still gets UV=1); BIOMETRICS has built-in UV
        only with biometrics. ``ProviderClient`` passes the provider's decision for one
        ceremony instead: True verifies (GPM's PIN where there are no biometrics), False
        makes a keychain with no UV method, so a passkey is made with UV=0 (platform
        providers are not bound by CTAP's makeCredUvNotRqd rule). ``backup_state`` is BS at
        registration (default: the profile's rule assuming sync is on and reachable)."""
        if user_verification is None:
            built_in_uv = self.uv is not UvPolicy.BIOMETRICS or has_biometrics
            always_uv = self.uv is not UvPolicy.BIOMETRICS
        else:
            built_in_uv = always_uv = user_verification
        if backup_state is None:
            backup_state = self.backup_state is BackupState.ALWAYS
        backed_up = (
            self.backup_eligible and self.backup_state is not BackupState.NEVER and backup_state
        )
        large_blobs = "largeBlob" in self.extensions
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
            non_resident=self.non_resident,
            built_in_uv=built_in_uv,
            always_uv=always_uv,
            max_resident_credentials=1_000_000,  # a keychain, not a secure element
            backup_eligible=self.backup_eligible,
            backup_state=backed_up,
            credential_management=False,  # providers manage passkeys in their own UI
            # UV is the platform's own gesture (the "uv" option). A largeBlob write on a
            # device protected by UV needs a pinUvAuthToken with the lbw permission (CTAP
            # 2.1 §6.10.2), which a client gets from built-in UV (getPinUvAuthTokenUsingUv...).
            pin_uv_auth_token=large_blobs and built_in_uv,
            extensions=extensions,
            large_blobs=large_blobs,
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


class ProviderClient:
    """The provider's platform side of a ceremony over python-fido2's ``Fido2Client``: the
    browser or OS that hosts the keychain (Chrome for GPM, Safari and iOS for Apple, the
    extension for 1Password and Bitwarden) decides before any CTAP request whether the user
    is verified (``ProviderProfile.will_verify``) and knows whether a new passkey is backed
    up at once (BS at registration by the same rule as assertions, WebAuthn L3 §6.1.3). Its
    responses carry the provider's ``authenticatorAttachment`` (absent for ``None``).

    Each ceremony runs on an ``Authenticator`` over the device's own synced store, configured
    for that decision (``ProviderProfile.authenticator_config``); ``device.authenticator`` is
    the same keychain as a plain CTAP client sees it.
    """

    def __init__(self, device: Device, origin: str) -> None:
        self.device = device
        self.origin = origin

    def __repr__(self) -> str:
        return f"ProviderClient({self.device.name!r}, {self.origin!r})"

    def _client(self, user_verification: str | None) -> tuple[Fido2Client, bool]:
        device = self.device
        profile = device.account.provider
        requirement = user_verification or "preferred"  # WebAuthn L3 §5.4.6 default
        verify = profile.will_verify(requirement, has_biometrics=device.has_biometrics)
        config = profile.authenticator_config(
            has_biometrics=device.has_biometrics,
            user_verification=verify,
            backup_state=device.store.new_backup_state(uploads=device.reachable),
        )
        cloud = device.account.cloud
        authenticator = Authenticator(
            device.store,
            config=config,
            clock=cloud.clock,
            entropy=cloud.entropy,
            strict=device.authenticator.strict,
            faults=device.authenticator.faults,
        )
        client = Fido2Client(
            InProcessDevice(authenticator), DefaultClientDataCollector(self.origin)
        )
        return client, verify

    def make_credential(self, options: PublicKeyCredentialCreationOptions) -> RegistrationResponse:
        selection = options.authenticator_selection or AuthenticatorSelectionCriteria()
        client, verify = self._client(selection.user_verification)
        selection = replace(selection, user_verification=_requirement(verify))
        response = client.make_credential(replace(options, authenticator_selection=selection))
        return replace(response, authenticator_attachment=self._attachment())

    def get_assertion(self, options: PublicKeyCredentialRequestOptions) -> AssertionSelection:
        client, verify = self._client(options.user_verification)
        found = client.get_assertion(replace(options, user_verification=_requirement(verify)))
        return _Assertions(found, self._attachment())

    def _attachment(self) -> AuthenticatorAttachment | None:
        attachment = self.device.account.provider.attachment
        return None if attachment is None else AuthenticatorAttachment(attachment.value)


class _Assertions(AssertionSelection):
    """python-fido2's selection with the provider's ``authenticatorAttachment``."""

    def __init__(
        self, found: AssertionSelection, attachment: AuthenticatorAttachment | None
    ) -> None:
        self._found = found
        self._attachment = attachment

    def get_assertions(self) -> Sequence[AssertionResponse]:
        return self._found.get_assertions()

    def get_response(self, index: int) -> AuthenticationResponse:
        response = self._found.get_response(index)
        return replace(response, authenticator_attachment=self._attachment)


def _requirement(verify: bool) -> UserVerificationRequirement:
    """What the platform asks its own keychain for once it has decided."""
    if verify:
        return UserVerificationRequirement.REQUIRED
    return UserVerificationRequirement.DISCOURAGED
