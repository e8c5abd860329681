"""Credentials: the stored record, and the credential-ID formats.

Two kinds of credential ID (our design; CTAP leaves the format to the authenticator):

* **Wrapped** (non-resident EC/EdDSA keys and U2F key handles): ``0x01 || nonce || AES-GCM(
  CBOR{alg, private key, credProtect})`` under the device key, with the rpIdHash as associated
  data. The key lives in the ID, as on YubiKeys and OpenSK, so non-resident registrations cost no
  storage, an ID presented for another RP simply fails to open, and an authenticatorReset (new
  device key) revokes them all. Their signature counters are still kept in the store.
* **Stored** (resident credentials, and non-resident RSA keys whose PKCS#8 would exceed
  WebAuthn's 1023-byte ID limit): 32 random bytes naming a ``StoredCredential`` record whose
  private key is sealed under the device key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from authenticator import cbor
from authenticator.keys import SEAL_OVERHEAD, CoseAlgorithm, CredentialKey, Sealer

WRAPPED_ID_VERSION: Final = 0x01
STORED_ID_SIZE: Final = 32
MAX_CREDENTIAL_ID_LENGTH: Final = 128


@dataclass(frozen=True, slots=True)
class StoredCredential:
    """A credential the store remembers. Secret material is sealed and hidden from repr."""

    credential_id: bytes
    rp_id: str
    user_id: bytes
    algorithm: int
    sealed_secrets: bytes = field(repr=False)  # sealed CBOR map: private key and per-key secrets
    discoverable: bool = True
    created: int = 0  # creation sequence number: newest first in getAssertion (CTAP 2.1 §6.2.2)
    rp_name: str | None = None
    user_name: str | None = None
    user_display_name: str | None = None
    cred_protect: int = 1
    backup_eligible: bool = False
    backup_state: bool = False
    extra: dict[str, object] = field(default_factory=dict, repr=False)

    def to_record(self) -> bytes:
        """Every field but the indexed ones, as CBOR, so new fields need no schema change."""
        return cbor.encode(
            {
                "alg": self.algorithm,
                "sealed": self.sealed_secrets,
                "created": self.created,
                "rp_name": self.rp_name,
                "user_name": self.user_name,
                "user_display_name": self.user_display_name,
                "cred_protect": self.cred_protect,
                "be": self.backup_eligible,
                "bs": self.backup_state,
                "extra": self.extra,
            }
        )

    @classmethod
    def from_record(
        cls, credential_id: bytes, rp_id: str, user_id: bytes, discoverable: bool, record: bytes
    ) -> StoredCredential:
        fields = cbor.loads_lenient(record)
        return cls(
            credential_id=credential_id,
            rp_id=rp_id,
            user_id=user_id,
            discoverable=discoverable,
            algorithm=fields["alg"],
            sealed_secrets=fields["sealed"],
            created=fields.get("created", 0),
            rp_name=fields.get("rp_name"),
            user_name=fields.get("user_name"),
            user_display_name=fields.get("user_display_name"),
            cred_protect=fields.get("cred_protect", 1),
            backup_eligible=fields.get("be", False),
            backup_state=fields.get("bs", False),
            extra=fields.get("extra") or {},
        )


_ES256_SECRETS_HEAD: Final = cbor.encode_internal({"alg": -7, "sk": bytes(32)})[:-32]


@dataclass(frozen=True, slots=True)
class CredentialSecrets:
    """What a credential keeps secret: its private key, and extension secrets (issue 3)."""

    key: CredentialKey = field(repr=False)
    extra: dict[str, bytes] = field(default_factory=dict, repr=False)

    def seal(self, sealer: Sealer, aad: bytes) -> bytes:
        key = self.key
        if not self.extra and key.algorithm == CoseAlgorithm.ES256:
            # The usual record, {"alg": -7, "sk": scalar}: spliced, as the encoder lays it out.
            return sealer.seal(_ES256_SECRETS_HEAD + key.private_bytes(), aad)
        plain = {"alg": int(key.algorithm), "sk": key.private_bytes(), **self.extra}
        return sealer.seal(cbor.encode_internal(plain), aad)

    @classmethod
    def open(
        cls, sealer: Sealer, sealed: bytes, aad: bytes, *, deterministic: bool = False
    ) -> CredentialSecrets | None:
        plain = sealer.open(sealed, aad)
        if plain is None:
            return None
        fields = cbor.loads_lenient(plain)
        key = CredentialKey.from_private_bytes(
            CoseAlgorithm(fields.pop("alg")), fields.pop("sk"), deterministic=deterministic
        )
        return cls(key, fields)


def wrap_credential_id(
    sealer: Sealer,
    rp_id_hash: bytes,
    key: CredentialKey,
    cred_protect: int = 1,
    extra: dict[str, object] | None = None,
) -> bytes:
    """``extra``: small public extension state (a few bytes: IDs stay within 128 bytes)."""
    plain: dict[str, object] = {"alg": int(key.algorithm), "sk": key.private_bytes()}
    plain["cp"] = cred_protect
    if extra:
        plain["x"] = extra
    return bytes([WRAPPED_ID_VERSION]) + sealer.seal(cbor.encode_internal(plain), rp_id_hash)


@dataclass(frozen=True, slots=True)
class UnwrappedCredential:
    key: CredentialKey = field(repr=False)
    cred_protect: int
    extra: dict[str, object] = field(default_factory=dict, repr=False)


def unwrap_credential_id(
    sealer: Sealer, rp_id_hash: bytes, credential_id: bytes, *, deterministic: bool = False
) -> UnwrappedCredential | None:
    """The key inside a wrapped ID, or None if the ID is not ours or not for this RP."""
    if (
        len(credential_id) <= SEAL_OVERHEAD + 1
        or len(credential_id) > MAX_CREDENTIAL_ID_LENGTH
        or credential_id[0] != WRAPPED_ID_VERSION
    ):
        return None
    plain = sealer.open(credential_id[1:], rp_id_hash)
    if plain is None:
        return None
    fields = cbor.loads_lenient(plain)
    key = CredentialKey.from_private_bytes(
        CoseAlgorithm(fields["alg"]), fields["sk"], deterministic=deterministic
    )
    return UnwrappedCredential(key, fields.get("cp", 1), fields.get("x") or {})
