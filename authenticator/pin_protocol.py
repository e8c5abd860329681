"""PIN/UV auth protocols one and two (CTAP 2.1 §6.5.6, §6.5.7): the authenticator's
key-agreement key, ECDH decapsulation, the shared secret's encrypt/decrypt, and the MAC
(``authenticate``/``verify``) used by every ``pinUvAuthParam``.

Theory of operation: each protocol owns one P-256 key-agreement key, created at power-up
(``initialize``) and replaced by ``regenerate`` (after a wrong PIN, CTAP 2.1 §6.5.5.7.1). The
platform sends its own public key with every PIN subcommand; ``decapsulate`` turns the pair into
a ``SharedSecret`` that lives only for the command. Protocol 1 uses SHA-256(Z) as both AES-CBC
key (zero IV) and HMAC key, with 16-byte MACs; protocol 2 derives separate HMAC and AES keys
with HKDF-SHA-256, sends a random IV in front of each ciphertext and uses full 32-byte MACs.

With ``keys.py`` and ``attestation/`` this is the only user of ``cryptography.hazmat``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from authenticator.keys import CoseCurve, CoseKeyType, Entropy
from authenticator.status import CtapError, CtapStatus

AES_BLOCK: Final = 16
P256_ORDER: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
ECDH_ES_HKDF_256: Final = -25  # CTAP 2.1 §6.5.6: the COSE alg the key claims (not what it does)
_HKDF_SALT: Final = bytes(32)
_HKDF_INFO_HMAC: Final = b"CTAP2 HMAC key"
_HKDF_INFO_AES: Final = b"CTAP2 AES key"


class PinUvAuthProtocol(IntEnum):
    ONE = 1
    TWO = 2


@dataclass(frozen=True, slots=True)
class SharedSecret:
    """The result of ``decapsulate``: protocol 1 uses one 32-byte key for both roles;
    protocol 2 has an HMAC key and an AES key. Never shown by repr.

    ``verify``/``decrypt``/``encrypt`` are the operations clientPIN and extensions
    (hmac-secret) need on it."""

    protocol: PinUvAuthProtocol
    hmac_key: bytes = field(repr=False)
    aes_key: bytes = field(repr=False)
    entropy: Entropy = field(repr=False, compare=False)

    def verify(self, message: bytes, signature: bytes) -> bool:
        return verify(self.protocol, self.hmac_key, message, signature)

    def encrypt(self, plaintext: bytes) -> bytes:
        """AES-256-CBC without padding; protocol 2 puts a random IV in front."""
        iv = bytes(AES_BLOCK)
        if self.protocol is PinUvAuthProtocol.TWO:
            iv = self.entropy.random_bytes(AES_BLOCK)
        encryptor = Cipher(algorithms.AES(self.aes_key), modes.CBC(iv)).encryptor()
        body = encryptor.update(plaintext) + encryptor.finalize()
        return iv + body if self.protocol is PinUvAuthProtocol.TWO else body

    def decrypt(self, ciphertext: bytes) -> bytes | None:
        """The plaintext, or None when the ciphertext is not a whole number of blocks (the
        caller chooses the status code, which differs by subcommand)."""
        iv = bytes(AES_BLOCK)
        if self.protocol is PinUvAuthProtocol.TWO:
            iv, ciphertext = ciphertext[:AES_BLOCK], ciphertext[AES_BLOCK:]
            if len(iv) != AES_BLOCK:
                return None
        if not ciphertext or len(ciphertext) % AES_BLOCK:
            return None
        decryptor = Cipher(algorithms.AES(self.aes_key), modes.CBC(iv)).decryptor()
        return decryptor.update(ciphertext) + decryptor.finalize()


def authenticate(protocol: PinUvAuthProtocol, key: bytes, message: bytes) -> bytes:
    """The MAC a platform sends as pinUvAuthParam (§6.5.6 and §6.5.7 ``authenticate``)."""
    mac = hmac.new(key, message, hashlib.sha256).digest()
    return mac[:16] if protocol is PinUvAuthProtocol.ONE else mac


def verify(protocol: PinUvAuthProtocol, key: bytes, message: bytes, signature: bytes) -> bool:
    """Constant-time check of a pinUvAuthParam; a wrong length is simply a mismatch."""
    return hmac.compare_digest(authenticate(protocol, key, message), signature)


class PinProtocol:
    """One PIN/UV auth protocol with its current key-agreement key (runtime state only)."""

    def __init__(self, version: PinUvAuthProtocol, entropy: Entropy) -> None:
        self.version = version
        self._entropy = entropy
        self._key = self._new_key()

    def __repr__(self) -> str:
        return f"PinProtocol({int(self.version)}, <key-agreement key hidden>)"

    def _new_key(self) -> ec.EllipticCurvePrivateKey:
        # From the injected entropy, so that a seeded device is reproducible.
        wide = int.from_bytes(self._entropy.random_bytes(48), "big")
        return ec.derive_private_key(wide % (P256_ORDER - 1) + 1, ec.SECP256R1())

    def regenerate(self) -> None:
        """A new key-agreement key: shared secrets made with the old one stop working."""
        self._key = self._new_key()

    def public_cose_key(self) -> dict[int, Any]:
        """getKeyAgreement's answer (§6.5.6 ``getPublicKey``)."""
        numbers = self._key.public_key().public_numbers()
        return {
            1: CoseKeyType.EC2,
            3: ECDH_ES_HKDF_256,
            -1: CoseCurve.P256,
            -2: numbers.x.to_bytes(32, "big"),
            -3: numbers.y.to_bytes(32, "big"),
        }

    def decapsulate(self, peer: Any) -> SharedSecret:
        """ECDH with the platform's COSE key. A malformed key or a point off the curve is
        INVALID_PARAMETER (§6.5.6 ``decapsulate``: "if ... invalid, return error")."""
        if not isinstance(peer, dict):
            raise CtapError(CtapStatus.CBOR_UNEXPECTED_TYPE, "keyAgreement is not a map")
        x, y = peer.get(-2), peer.get(-3)
        if (
            peer.get(1) != CoseKeyType.EC2
            or peer.get(-1) != CoseCurve.P256
            or not isinstance(x, bytes)
            or not isinstance(y, bytes)
            or len(x) != 32
            or len(y) != 32
        ):
            raise CtapError(CtapStatus.INVALID_PARAMETER, "keyAgreement is not a P-256 key")
        try:
            public = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
            ).public_key()
        except ValueError:
            raise CtapError(CtapStatus.INVALID_PARAMETER, "keyAgreement is off the curve") from None
        z = self._key.exchange(ec.ECDH(), public)
        if self.version is PinUvAuthProtocol.ONE:
            key = hashlib.sha256(z).digest()
            return SharedSecret(self.version, key, key, self._entropy)
        return SharedSecret(
            self.version, _hkdf(z, _HKDF_INFO_HMAC), _hkdf(z, _HKDF_INFO_AES), self._entropy
        )

    # The same operations, protocol-first, for callers that hold the protocol.
    def encrypt(self, secret: SharedSecret, plaintext: bytes) -> bytes:
        return secret.encrypt(plaintext)

    def decrypt(self, secret: SharedSecret, ciphertext: bytes) -> bytes | None:
        return secret.decrypt(ciphertext)

    def authenticate(self, key: bytes, message: bytes) -> bytes:
        return authenticate(self.version, key, message)

    def verify(self, key: bytes, message: bytes, signature: bytes) -> bool:
        return verify(self.version, key, message, signature)


def _hkdf(z: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=info).derive(z)


def make_protocols(
    versions: tuple[int, ...], entropy: Entropy
) -> dict[PinUvAuthProtocol, PinProtocol]:
    """The protocols a profile enables, each with a fresh key (``initialize`` at power-up)."""
    return {
        PinUvAuthProtocol(v): PinProtocol(PinUvAuthProtocol(v), entropy)
        for v in versions
        if v in PinUvAuthProtocol._value2member_map_
    }
