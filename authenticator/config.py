"""What the device is: one capability profile that drives getInfo, dispatch and processing,
so that what is advertised is exactly what is implemented."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from authenticator.keys import CoseAlgorithm

FIDOEMU_AAGUID: Final = uuid.UUID("f1d0e3a0-7e57-4a5e-9c1d-0000000000a1").bytes
"""Our security-key AAGUID (random, version 4; not registered with the FIDO MDS)."""
FIDOEMU_PLATFORM_AAGUID: Final = uuid.UUID("f1d0e3a0-7e57-4a5e-9c1d-0000000000b2").bytes


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


@dataclass(frozen=True)
class AuthenticatorConfig:
    """Reported by getInfo and fixed for the device's lifetime."""

    name: str = "security-key"
    aaguid: bytes = FIDOEMU_AAGUID
    versions: tuple[str, ...] = ("U2F_V2", "FIDO_2_0")
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

    def supports(self, algorithm: int) -> bool:
        return algorithm in self.algorithms


SECURITY_KEY: Final = AuthenticatorConfig()
"""A roaming USB key like a YubiKey: U2F and CTAP2, packed attestation, PIN-capable."""

PLATFORM: Final = AuthenticatorConfig(
    name="platform",
    aaguid=FIDOEMU_PLATFORM_AAGUID,
    versions=("FIDO_2_0",),
    transports=("internal",),
    platform=True,
    discoverable_only=True,
    built_in_uv=True,
    u2f=False,
)
"""A platform authenticator (laptop or phone): internal transport, built-in UV, passkeys only."""

PROFILES: Final = {"security-key": SECURITY_KEY, "platform": PLATFORM}
