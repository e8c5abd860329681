"""Credential key pairs (COSE algorithms), signing, and sealing secrets under the device key.

With ``attestation/`` and ``pin_protocol.py`` this is the only user of ``cryptography.hazmat``.
Private keys leave this module only sealed (AES-256-GCM under the device master key).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final, Protocol, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from authenticator import cbor
from authenticator.status import CtapError, CtapStatus


class CoseAlgorithm(IntEnum):
    """COSE algorithm identifiers (IANA COSE registry) the authenticator can create keys for."""

    ES256 = -7
    EDDSA = -8  # Ed25519 under the polymorphic EdDSA identifier (WebAuthn §5.8.5)
    ED25519 = -19  # fully-specified Ed25519 (RFC 9864)
    ES384 = -35
    RS256 = -257


class CoseKeyType(IntEnum):
    OKP = 1
    EC2 = 2
    RSA = 3


class CoseCurve(IntEnum):
    P256 = 1
    P384 = 2
    ED25519 = 6


PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey

_EC_CURVES: Final = {CoseAlgorithm.ES256: ec.SECP256R1(), CoseAlgorithm.ES384: ec.SECP384R1()}
_EC_HASHES: Final = {CoseAlgorithm.ES256: hashes.SHA256(), CoseAlgorithm.ES384: hashes.SHA384()}
_EC_COSE_CURVES: Final = {CoseAlgorithm.ES256: CoseCurve.P256, CoseAlgorithm.ES384: CoseCurve.P384}
_ECDSA: Final = {
    (alg, deterministic): ec.ECDSA(hash_, deterministic_signing=deterministic)
    for alg, hash_ in _EC_HASHES.items()
    for deterministic in (False, True)
}
_EDDSA: Final = frozenset({CoseAlgorithm.EDDSA, CoseAlgorithm.ED25519})
_SCALAR_SIZES: Final = {CoseAlgorithm.ES256: 32, CoseAlgorithm.ES384: 48}
_EC_ORDERS: Final = {
    CoseAlgorithm.ES256: 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    CoseAlgorithm.ES384: int(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
        16,
    ),
}


_ES256: Final = CoseAlgorithm.ES256


def _es256_cose_layout() -> tuple[bytes, bytes]:
    """The bytes around x and y in a P-256 COSE_Key, taken from the canonical encoder itself
    (RFC 9052 §7, CTAP 2.1 §8): {1: 2, 3: -7, -1: 1, -2: x, -3: y}, each coordinate a 32-byte
    string with a 2-byte head (0x58 0x20)."""
    x, y = b"\x01" * 32, b"\x02" * 32
    encoded = cbor.encode({1: 2, 3: -7, -1: 1, -2: x, -3: y})
    head, rest = encoded.split(x)
    middle, tail = rest.split(y)
    if tail:
        raise AssertionError("a COSE_Key ends with its y coordinate")
    return head, middle


_ES256_COSE_HEAD, _ES256_COSE_MIDDLE = _es256_cose_layout()


class Entropy(Protocol):
    """Where randomness comes from: the OS by default, a seed in deterministic test mode."""

    deterministic: bool

    def random_bytes(self, n: int) -> bytes: ...


class SystemEntropy:
    deterministic = False

    def random_bytes(self, n: int) -> bytes:
        return os.urandom(n)


class SeededEntropy:
    """Reproducible bytes for golden tests. Not secret: never use it for a real key."""

    deterministic = True

    def __init__(self, seed: int | bytes | str) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - deliberate: reproducibility, not secrecy

    def random_bytes(self, n: int) -> bytes:
        return self._rng.randbytes(n)


@dataclass(frozen=True, slots=True)
class CredentialKey:
    algorithm: CoseAlgorithm
    private_key: PrivateKey = field(repr=False)
    deterministic: bool = False
    # An EC key's exported numbers, kept after the first export: one export gives both the
    # scalar (to seal) and the public point (for the COSE key), and each costs ~5 µs.
    _ec_numbers: ec.EllipticCurvePrivateNumbers | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def sign(self, data: bytes) -> bytes:
        """A WebAuthn signature: DER ECDSA, raw Ed25519, or RSASSA-PKCS1-v1_5."""
        # Dispatch on the algorithm, not isinstance(): ABC checks cost a microsecond each.
        ecdsa = _ECDSA.get((self.algorithm, self.deterministic))
        if ecdsa is not None:
            return self.private_key.sign(data, ecdsa)  # type: ignore[call-arg, arg-type]
        if self.algorithm in _EDDSA:
            return self.private_key.sign(data)  # type: ignore[call-arg]
        return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg, arg-type]

    def cose_public_key(self) -> dict[int, int | bytes]:
        """The COSE_Key of the public key (RFC 9052 §7, WebAuthn §6.5.1.1), keys in canonical
        order so it encodes canonically without a sort."""
        algorithm = self.algorithm
        size = _SCALAR_SIZES.get(algorithm)
        if size is not None:
            public = self._exported_ec_numbers().public_numbers
            return {
                1: CoseKeyType.EC2,
                3: algorithm,
                -1: _EC_COSE_CURVES[algorithm],
                -2: public.x.to_bytes(size, "big"),
                -3: public.y.to_bytes(size, "big"),
            }
        if algorithm in _EDDSA:
            raw = self.private_key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            return {1: CoseKeyType.OKP, 3: algorithm, -1: CoseCurve.ED25519, -2: raw}
        key = self.private_key
        assert isinstance(key, rsa.RSAPrivateKey)  # noqa: S101 - the only other kind
        rsa_numbers = key.public_key().public_numbers()
        n_len = (rsa_numbers.n.bit_length() + 7) // 8
        e_len = (rsa_numbers.e.bit_length() + 7) // 8
        return {
            1: CoseKeyType.RSA,
            3: algorithm,
            -1: rsa_numbers.n.to_bytes(n_len, "big"),
            -2: rsa_numbers.e.to_bytes(e_len, "big"),
        }

    def encoded_cose_public_key(self) -> bytes:
        """``cose_public_key()`` in CTAP2-canonical CBOR. A P-256 key's map has one fixed
        layout (only x and y vary), so it is spliced rather than encoded: every registration
        builds one."""
        if self.algorithm == _ES256:
            public = self._exported_ec_numbers().public_numbers
            return (
                _ES256_COSE_HEAD
                + public.x.to_bytes(32, "big")
                + _ES256_COSE_MIDDLE
                + public.y.to_bytes(32, "big")
            )
        return cbor.encode(self.cose_public_key())

    def _exported_ec_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        numbers = self._ec_numbers
        if numbers is None:
            # Only EC algorithms call this (those in _SCALAR_SIZES).
            numbers = cast(ec.EllipticCurvePrivateKey, self.private_key).private_numbers()
            object.__setattr__(self, "_ec_numbers", numbers)  # a cache, not state: frozen
        return numbers

    def uncompressed_point(self) -> bytes:
        """The raw P-256 public key U2F uses (0x04 || X || Y)."""
        key = self.private_key
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError("U2F needs a P-256 key")
        return key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def private_bytes(self) -> bytes:
        """The compact private key: the EC scalar, the Ed25519 seed, or PKCS#8 DER for RSA."""
        key = self.private_key
        size = _SCALAR_SIZES.get(self.algorithm)
        if size is not None:
            return self._exported_ec_numbers().private_value.to_bytes(size, "big")
        if self.algorithm in _EDDSA:
            return key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        return key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_private_bytes(
        cls, algorithm: CoseAlgorithm, data: bytes, *, deterministic: bool = False
    ) -> CredentialKey:
        key: PrivateKey
        if algorithm in _EC_CURVES:
            key = ec.derive_private_key(int.from_bytes(data, "big"), _EC_CURVES[algorithm])
        elif algorithm in (CoseAlgorithm.EDDSA, CoseAlgorithm.ED25519):
            key = ed25519.Ed25519PrivateKey.from_private_bytes(data)
        else:
            loaded = serialization.load_der_private_key(data, password=None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise ValueError("not an RSA key")
            key = loaded
        return cls(algorithm, key, deterministic)

    @classmethod
    def generate(cls, algorithm: CoseAlgorithm, entropy: Entropy) -> CredentialKey:
        if not entropy.deterministic:
            return cls(algorithm, _generate_random(algorithm))
        if algorithm in _EC_CURVES:
            size = _SCALAR_SIZES[algorithm]
            wide = int.from_bytes(entropy.random_bytes(size + 16), "big")
            scalar = wide % (_EC_ORDERS[algorithm] - 1) + 1  # uniform enough, never zero
            return cls.from_private_bytes(
                algorithm, scalar.to_bytes(size, "big"), deterministic=True
            )
        if algorithm in (CoseAlgorithm.EDDSA, CoseAlgorithm.ED25519):
            return cls.from_private_bytes(algorithm, entropy.random_bytes(32), deterministic=True)
        # cryptography cannot seed RSA key generation; a deterministic run still gets a fresh
        # RSA key (its PKCS#1 v1.5 signatures are deterministic once the key is fixed).
        return cls(algorithm, _generate_random(algorithm), True)


def _generate_random(algorithm: CoseAlgorithm) -> PrivateKey:
    if algorithm in _EC_CURVES:
        return ec.generate_private_key(_EC_CURVES[algorithm])
    if algorithm in (CoseAlgorithm.EDDSA, CoseAlgorithm.ED25519):
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


NONCE_SIZE: Final = 12
SEAL_OVERHEAD: Final = NONCE_SIZE + 16


class Sealer:
    """AES-256-GCM under the device master key; what it seals is bound to ``aad``."""

    def __init__(self, master_key: bytes, entropy: Entropy) -> None:
        if len(master_key) != 32:
            raise ValueError("the master key is 32 bytes")
        self._aead = AESGCM(master_key)
        self._entropy = entropy
        self._master_key = master_key

    def __repr__(self) -> str:
        return "Sealer(<master key hidden>)"

    def derive(self, purpose: bytes, context: bytes, length: int = 32) -> bytes:
        """A secret bound to this device key, ``purpose`` and ``context`` (HKDF-SHA-256,
        RFC 5869): per-credential secrets of wrapped IDs that have no record to live in."""
        return HKDF(hashes.SHA256(), length, salt=purpose, info=context).derive(self._master_key)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = self._entropy.random_bytes(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes | None:
        """The plaintext, or None when ``sealed`` was not made by this key for this ``aad``."""
        if len(sealed) < SEAL_OVERHEAD:
            return None
        try:
            return self._aead.decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], aad)
        except InvalidTag:
            return None

    def open_or_fail(self, sealed: bytes, aad: bytes) -> bytes:
        plaintext = self.open(sealed, aad)
        if plaintext is None:
            raise CtapError(CtapStatus.INTEGRITY_FAILURE, "stored secret failed authentication")
        return plaintext
