"""What the device is: one capability profile that drives getInfo, dispatch and processing,
so that what is advertised is exactly what is implemented."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final

from authenticator.keys import CoseAlgorithm

FIDOEMU_AAGUID: Final = uuid.UUID("f1d0e3a0-7e57-4a5e-9c1d-0000000000a1").bytes
"""Our security-key AAGUID (random, version 4; not registered with the FIDO MDS)."""
FIDOEMU_PLATFORM_AAGUID: Final = uuid.UUID("f1d0e3a0-7e57-4a5e-9c1d-0000000000b2").bytes


DEFAULT_EXTENSIONS: Final = (
    "credProtect",
    "hmac-secret",
    "hmac-secret-mc",
    "credBlob",
    "largeBlobKey",
    "minPinLength",
    "thirdPartyPayment",
    "pinComplexityPolicy",
)
"""Every extension fidoemu implements, enabled by default (see ``authenticator.extensions``)."""

COMMON_PINS: Final = (
    "0852",
    "1379",
    "1470",
    "1793",
    "2580",
    "112233",
    "123321",
    "147258",
    "159753",
    "11223344",
    "12344321",
    "147258369",
    "1q2w3e4r",
    "abc123",
    "admin",
    "changeme",
    "iloveyou",
    "letmein",
    "passw0rd",
    "password",
    "qwerty",
    "qwertz",
    "azerty",
)
"""Well-known PINs that pass the repeat and sequence rules (keypad lines, keyboard rows,
common passwords): a default complexity policy refuses them (compared case-insensitively)."""


@dataclass(frozen=True)
class PinComplexityPolicy:
    """A PIN complexity policy beyond minPINLength (CTAP 2.2 getInfo ``pinComplexityPolicy``):
    while enforced, setPIN and changePIN refuse a new PIN that breaks a rule with
    PIN_POLICY_VIOLATION. The spec leaves the rules to the vendor; these are the usual ones
    (see ``authenticator.extensions.pin_complexity_policy``)."""

    enforced: bool = False  # from the factory; setMinPINLength pinComplexityPolicy turns it on
    reject_repeats: bool = True  # one shorter unit repeated: "1111", "1212", "abcabc"
    reject_sequences: bool = True  # one run up or down by one: "1234", "9876", "7890", "abcd"
    blocklist: tuple[str, ...] = COMMON_PINS  # refused whatever their case
    url: str | None = None  # getInfo pinComplexityPolicyURL: where users read the rules


class AttestationFormat(StrEnum):
    PACKED = "packed"  # x5c chain: per-store root CA -> batch certificate
    SELF = "self"  # packed self-attestation (no x5c; signed by the credential key)
    NONE = "none"
    FIDO_U2F = "fido-u2f"  # legacy format; only for ES256 credentials


class CounterMode(StrEnum):
    PER_CREDENTIAL = "per-credential"
    GLOBAL = "global"
    ZERO = "zero"  # always 0, as synced passkey providers do


class NonResident(StrEnum):
    WRAPPED = "wrapped"  # key sealed inside the credential ID (the default)
    STORED = "stored"  # key kept in the store under a random ID


MIN_LARGE_BLOB_ARRAY: Final = 1024  # CTAP 2.1 §6.10: maxSerializedLargeBlobArray minimum
MIN_CRED_BLOB_LENGTH: Final = 32  # CTAP 2.1 §12.2: maxCredBlobLength minimum
MIN_PIN_LENGTH: Final = 4  # CTAP 2.1 §6.5.1: a PIN has at least 4 code points


@dataclass(frozen=True)
class AuthenticatorConfig:
    """Reported by getInfo and fixed for the device's lifetime."""

    name: str = "security-key"
    aaguid: bytes = FIDOEMU_AAGUID
    versions: tuple[str, ...] = ("U2F_V2", "FIDO_2_0", "FIDO_2_1")
    attestation: AttestationFormat = AttestationFormat.PACKED
    algorithms: tuple[CoseAlgorithm, ...] = (
        CoseAlgorithm.ES256,
        CoseAlgorithm.EDDSA,
        CoseAlgorithm.ED25519,
        CoseAlgorithm.ES384,
        CoseAlgorithm.RS256,
    )
    counter: CounterMode = CounterMode.PER_CREDENTIAL
    non_resident: NonResident = NonResident.WRAPPED
    transports: tuple[str, ...] = ("usb",)
    platform: bool = False  # getInfo option "plat"
    resident_keys: bool = True  # option "rk"
    discoverable_only: bool = False  # every credential is discoverable (platform/passkey)
    built_in_uv: bool = False  # option "uv": a built-in UV method (biometric)
    u2f: bool = True  # CTAP1/U2F over CTAPHID_MSG
    max_msg_size: int = 7609  # CTAPHID's largest message; uhid transports lower it
    max_credential_count_in_list: int = 8
    max_resident_credentials: int = 256
    firmware_version: int = 0x000100
    backup_eligible: bool = False  # BE flag on new credentials (synced providers)
    backup_state: bool = False  # BS flag on new credentials
    get_next_assertion_timeout: float = 30.0  # CTAP 2.1 §6.3: 30 s between calls
    # PIN/UV (CTAP 2.1 §6.5) and the commands behind it; see docs/pin-uv.md.
    pin_uv_protocols: tuple[int, ...] = (2, 1)  # in order of preference; () = no PIN/UV at all
    client_pin: bool = True  # option "clientPin": a PIN can be set
    pin_uv_auth_token: bool = True  # option "pinUvAuthToken": CTAP 2.1 tokens with permissions
    pin_retries: int = 8  # CTAP 2.1 §6.5.2.2: pinRetries maximum
    min_pin_length: int = 4  # CTAP 2.1 §6.5.2.2: initial minPINLength, in code points
    uv_retries: int = 5  # built-in UV attempts before UV_BLOCKED (CTAP 2.1 §6.5.2.3)
    preferred_platform_uv_attempts: int = 3  # getInfo 0x11, with built-in UV
    uv_modality: int = 0x02  # getInfo 0x12: USER_VERIFY_FINGERPRINT_INTERNAL (FIDO registry)
    make_cred_uv_not_required: bool = True  # option "makeCredUvNotRqd"
    no_mc_ga_permissions_with_client_pin: bool = False  # option "noMcGaPermissionsWithClientPin"
    always_uv: bool | None = False  # option "alwaysUv": initial value; None = not supported
    credential_management: bool = True  # authenticatorCredentialManagement 0x0A, "credMgmt"
    credential_management_preview: bool = False  # 0x41 prototype, "credentialMgmtPreview"
    per_credential_management_read_only: bool = True  # CTAP 2.2 pcmr, option "perCredMgmtRO"
    authenticator_config: bool = True  # authenticatorConfig 0x0D, "authnrCfg", "setMinPINLength"
    max_rpids_for_set_min_pin_length: int = 4  # getInfo 0x10
    # CTAP 2.2 PIN complexity policy (getInfo 0x1B/0x1C, extension pinComplexityPolicy);
    # None = not supported. Supported but not enforced by default; see docs/extensions.md.
    pin_complexity_policy: PinComplexityPolicy | None = PinComplexityPolicy()
    enterprise_attestation: bool = False  # option "ep" (its value is whether it is enabled)
    enterprise_rp_ids: tuple[str, ...] = ()  # vendor-facilitated EA (ep=1) for these RP IDs
    reset_window: float = 10.0  # CTAP 2.1 §6.6: reset only this long after power-up
    # Extensions (CTAP 2.1 §12) by identifier; each must be in authenticator.extensions.REGISTRY.
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    max_cred_blob_length: int = 32  # credBlob; CTAP 2.1 §12.2: at least 32
    large_blobs: bool = True  # authenticatorLargeBlobs, option "largeBlobs" (CTAP 2.1 §6.10)
    max_serialized_large_blob_array: int = 4096  # CTAP 2.1 §6.10: at least 1024
    bio_enrollment: bool = False  # authenticatorBioEnrollment, fingerprint (CTAP 2.1 §6.7)
    bio_enrollment_preview: bool = False  # also 0x40 (FIDO_2_1_PRE), "userVerificationMgmtPreview"
    bio_samples_per_enrollment: int = 4  # maxCaptureSamplesRequiredForEnroll
    bio_max_templates: int = 5  # enrolling one more answers FP_DATABASE_FULL
    bio_max_template_friendly_name: int = 64  # maxTemplateFriendlyName, in bytes

    def __post_init__(self) -> None:
        """Refuse a profile that advertises less than the spec's minimum for a feature it
        enables: getInfo would promise a device no conforming platform expects."""
        problems = []
        if self.large_blobs and self.max_serialized_large_blob_array < MIN_LARGE_BLOB_ARRAY:
            problems.append(
                f"max_serialized_large_blob_array={self.max_serialized_large_blob_array}: "
                f"CTAP 2.1 §6.10 requires at least {MIN_LARGE_BLOB_ARRAY} bytes"
            )
        if "credBlob" in self.extensions and self.max_cred_blob_length < MIN_CRED_BLOB_LENGTH:
            problems.append(
                f"max_cred_blob_length={self.max_cred_blob_length}: CTAP 2.1 §12.2 requires "
                f"at least {MIN_CRED_BLOB_LENGTH} bytes while credBlob is enabled"
            )
        if self.client_pin and self.min_pin_length < MIN_PIN_LENGTH:
            problems.append(
                f"min_pin_length={self.min_pin_length}: CTAP 2.1 §6.5.1 requires at least "
                f"{MIN_PIN_LENGTH} code points"
            )
        if self.max_credential_count_in_list < 1:
            problems.append(
                f"max_credential_count_in_list={self.max_credential_count_in_list}: "
                "CTAP 2.1 §6.4 requires it to be greater than zero"
            )
        if self.built_in_uv and self.preferred_platform_uv_attempts < 1:
            problems.append(
                f"preferred_platform_uv_attempts={self.preferred_platform_uv_attempts}: "
                "CTAP 2.1 §6.4 requires it to be greater than zero"
            )
        if self.bio_enrollment_preview and not self.bio_enrollment:
            problems.append(
                "bio_enrollment_preview answers the 0x40 prototype of bio enrollment: it "
                "needs bio_enrollment (the sensor)"
            )
        if problems:
            raise ValueError(f"profile {self.name!r}: " + "; ".join(problems))

    def supports(self, algorithm: int) -> bool:
        return algorithm in self.algorithms


SECURITY_KEY: Final = AuthenticatorConfig()
"""A roaming USB key like a YubiKey: U2F and CTAP2, packed attestation, PIN-capable."""

PLATFORM: Final = AuthenticatorConfig(
    name="platform",
    aaguid=FIDOEMU_PLATFORM_AAGUID,
    versions=("FIDO_2_0", "FIDO_2_1"),
    transports=("internal",),
    platform=True,
    discoverable_only=True,
    built_in_uv=True,
    u2f=False,
    client_pin=False,  # UV is the device's own (a biometric); no PIN to set
    authenticator_config=False,
)
"""A platform authenticator (laptop or phone): internal transport, built-in UV, passkeys only."""

FIDOEMU_BIO_AAGUID: Final = uuid.UUID("f1d0e3a0-7e57-4a5e-9c1d-0000000000c3").bytes

BIO_SECURITY_KEY: Final = replace(
    SECURITY_KEY,
    name="bio-security-key",
    aaguid=FIDOEMU_BIO_AAGUID,
    built_in_uv=True,
    bio_enrollment=True,
    bio_enrollment_preview=True,  # as the YubiKey Bio: 0x40 beside 0x09
)
"""A fingerprint security key (like a YubiKey Bio): built-in UV once a finger is enrolled."""

CTAP2_0_KEY: Final = replace(
    SECURITY_KEY,
    name="ctap2.0-key",
    versions=("U2F_V2", "FIDO_2_0"),
    extensions=("hmac-secret",),
    pin_uv_protocols=(1,),
    pin_uv_auth_token=False,
    make_cred_uv_not_required=False,
    always_uv=None,
    credential_management=False,
    per_credential_management_read_only=False,
    authenticator_config=False,
    large_blobs=False,
    pin_complexity_policy=None,  # a CTAP 2.2 feature
)
"""A CTAP 2.0 key (like a 2019 security key): PIN protocol 1, no tokens with permissions,
no credential management, no authenticatorConfig."""

PROFILES: Final = {
    "security-key": SECURITY_KEY,
    "ctap2.0-key": CTAP2_0_KEY,
    "platform": PLATFORM,
    "bio-security-key": BIO_SECURITY_KEY,
}
