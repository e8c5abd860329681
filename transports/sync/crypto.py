"""End-to-end encryption of synced passkeys: the account's security domain, records sealed for
the cloud, key shares for member devices, and the recovery escrow.

Theory of operation (modelled on GPM's security domain and Apple's CKKS, reference §2.1-2.2):

* The account has a **security domain**: a routing key (fixed for the domain's life) and one
  32-byte secret per **epoch**. Removing a device starts a new epoch.
* Every record revision gets a fresh AES-256-GCM **record key**; the record key is wrapped
  under ``HKDF(epoch secret)`` (the CKKS item-key pattern [S13]). The cloud stores the
  ``Envelope``: routing metadata in clear, everything else ciphertext bound to that metadata.
* Each member device has an X25519 identity; the domain secrets are wrapped to it (a
  "SharedMemberKey" [S6]): ECDH with an ephemeral key, HKDF, AES-256-GCM.
* The escrow (Apple's HSM cluster, Google's Cloud Key Vault; ``escrow.py``) seals the domain
  secrets and an scrypt verifier of the recovery code under a key only the HSM holds, checks
  codes against the verifier and counts wrong guesses. Member devices hold no escrow key.

The cloud never holds a key that opens a record: only envelopes, wrapped shares and escrow
records sealed by the HSM.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from authenticator import cbor
from authenticator.keys import Entropy

SECRET_SIZE: Final = 32
NONCE_SIZE: Final = 12
ROUTING_ID_SIZE: Final = 16
SCRYPT_N: Final = 2**14  # a PIN-strength secret; the HSM's attempt limit is the real guard
SALT_SIZE: Final = 16

_RECORD_WRAP_INFO: Final = b"fidoemu sync v1: record-key wrap"
_SHARE_INFO: Final = b"fidoemu sync v1: member share"
_ESCROW_INFO: Final = b"fidoemu sync v2: escrow record"


class CryptoError(Exception):
    """A ciphertext did not authenticate: wrong key, wrong epoch, or tampering."""


def _hkdf(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def _seal(key: bytes, plaintext: bytes, aad: bytes, entropy: Entropy) -> bytes:
    nonce = entropy.random_bytes(NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    if len(sealed) < NONCE_SIZE + 16:
        raise CryptoError("ciphertext too short")
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], aad)
    except InvalidTag:
        raise CryptoError("ciphertext failed authentication") from None


@dataclass(frozen=True, slots=True)
class DomainSecrets:
    """What a member device (and the escrow HSM) knows: never given to the cloud in clear."""

    routing_key: bytes = field(repr=False)
    epochs: dict[int, bytes] = field(repr=False)  # epoch -> 32-byte secret

    @property
    def current_epoch(self) -> int:
        return max(self.epochs)

    @classmethod
    def create(cls, entropy: Entropy, first_epoch: int = 1) -> DomainSecrets:
        return cls(entropy.random_bytes(SECRET_SIZE), {first_epoch: entropy.random_bytes(32)})

    def rotated(self, entropy: Entropy) -> DomainSecrets:
        """A new epoch: records written from now on are unreadable without it."""
        epochs = dict(self.epochs)
        epochs[self.current_epoch + 1] = entropy.random_bytes(SECRET_SIZE)
        return DomainSecrets(self.routing_key, epochs)

    def merged(self, other: DomainSecrets) -> DomainSecrets:
        return DomainSecrets(self.routing_key, {**self.epochs, **other.epochs})

    def routing_id(self, credential_id: bytes) -> bytes:
        """The cloud's name for a record: unlinkable to the credential ID without the key."""
        digest = hmac.new(self.routing_key, credential_id, hashlib.sha256).digest()
        return digest[:ROUTING_ID_SIZE]

    def to_bytes(self) -> bytes:
        return cbor.encode({"routing": self.routing_key, "epochs": self.epochs})

    @classmethod
    def from_bytes(cls, data: bytes) -> DomainSecrets:
        """Also reads what older versions wrote; their escrow key fields are dropped."""
        fields = cbor.loads_lenient(data)
        return cls(
            bytes(fields["routing"]), {int(k): bytes(v) for k, v in fields["epochs"].items()}
        )


@dataclass(frozen=True, slots=True)
class Envelope:
    """One record as the cloud stores it. Only the first field group is readable there."""

    routing_id: bytes
    epoch: int
    tombstone: bool
    author: str
    wrapped_key: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)
    revision: int = 0  # assigned by the cloud: compare-and-set on push
    seq: int = 0  # the account's change-log position, assigned by the cloud
    server_time: float = 0.0

    def header(self, account_id: str) -> bytes:
        """Associated data: the cloud can't move a ciphertext to another record or epoch."""
        return cbor.encode([account_id, self.routing_id, self.epoch, self.tombstone])


def seal_record(
    secrets: DomainSecrets,
    account_id: str,
    credential_id: bytes,
    plaintext: bytes,
    *,
    tombstone: bool,
    author: str,
    entropy: Entropy,
) -> Envelope:
    """Encrypt one record revision under a fresh record key, wrapped for the current epoch."""
    epoch = secrets.current_epoch
    shell = Envelope(secrets.routing_id(credential_id), epoch, tombstone, author, b"", b"")
    aad = shell.header(account_id)
    record_key = entropy.random_bytes(SECRET_SIZE)
    wrap_key = _hkdf(secrets.epochs[epoch], _RECORD_WRAP_INFO)
    return Envelope(
        shell.routing_id,
        epoch,
        tombstone,
        author,
        wrapped_key=_seal(wrap_key, record_key, aad, entropy),
        ciphertext=_seal(record_key, plaintext, aad, entropy),
    )


def open_record(secrets: DomainSecrets, account_id: str, envelope: Envelope) -> bytes:
    """The plaintext of an envelope; ``CryptoError`` without the epoch's secret."""
    epoch_secret = secrets.epochs.get(envelope.epoch)
    if epoch_secret is None:
        raise CryptoError(f"no secret for epoch {envelope.epoch}")
    aad = envelope.header(account_id)
    record_key = _open(_hkdf(epoch_secret, _RECORD_WRAP_INFO), envelope.wrapped_key, aad)
    return _open(record_key, envelope.ciphertext, aad)


class DeviceIdentity:
    """A member device's X25519 key pair (Apple's syncing identity, GPM's member key)."""

    def __init__(self, private_bytes: bytes) -> None:
        self._key = X25519PrivateKey.from_private_bytes(private_bytes)
        self._private_bytes = private_bytes

    def __repr__(self) -> str:
        return "DeviceIdentity(<private key hidden>)"

    @classmethod
    def generate(cls, entropy: Entropy) -> DeviceIdentity:
        return cls(entropy.random_bytes(32))

    def private_bytes(self) -> bytes:
        return self._private_bytes

    @property
    def public_key(self) -> bytes:
        return self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def open_share(self, share: bytes, aad: bytes) -> bytes:
        """Unwrap what ``wrap_share`` sealed to this identity."""
        if len(share) < 32:
            raise CryptoError("share too short")
        ephemeral, sealed = share[:32], share[32:]
        shared = self._key.exchange(X25519PublicKey.from_public_bytes(ephemeral))
        key = _hkdf(shared, _SHARE_INFO + ephemeral + self.public_key)
        return _open(key, sealed, aad)


def wrap_share(recipient: bytes, secret: bytes, aad: bytes, entropy: Entropy) -> bytes:
    """Seal ``secret`` to a member's X25519 public key (ECIES: ephemeral ECDH + AES-GCM)."""
    ephemeral = X25519PrivateKey.from_private_bytes(entropy.random_bytes(32))
    ephemeral_public = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient))
    key = _hkdf(shared, _SHARE_INFO + ephemeral_public + recipient)
    return ephemeral_public + _seal(key, secret, aad, entropy)


def recovery_verifier(recovery_code: str, salt: bytes, n: int = SCRYPT_N) -> bytes:
    """What the HSM keeps of a recovery code: scrypt, as GPM hashes its PIN [S6]."""
    return Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(recovery_code.encode())


def seal_escrow(hsm_key: bytes, payload: bytes, aad: bytes, entropy: Entropy) -> bytes:
    """An escrow record only the HSM can open: sealed under a key derived from its own."""
    return _seal(_hkdf(hsm_key, _ESCROW_INFO), payload, aad, entropy)


def open_escrow(hsm_key: bytes, blob: bytes, aad: bytes) -> bytes:
    return _open(_hkdf(hsm_key, _ESCROW_INFO), blob, aad)
