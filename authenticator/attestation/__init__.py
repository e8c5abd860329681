"""Attestation statements (WebAuthn §8) and the per-store attestation PKI.

Each store gets its own root CA and, per AAGUID, a batch certificate meeting the packed
attestation certificate requirements (WebAuthn §8.2.1): version 3, subject C/O/OU
"Authenticator Attestation"/CN, basic constraints CA=false, and the non-critical
id-fido-gen-ce-aaguid extension. The root is exportable (``root_certificate_pem``) so relying
party tests can trust it. The PKI lives in store state under ``attestation/`` and survives an
authenticatorReset, as a real device's factory identity does.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from authenticator.config import AttestationFormat
from authenticator.keys import CoseAlgorithm, CredentialKey, Entropy, Sealer
from authenticator.status import CtapError, CtapStatus
from authenticator.store.base import Store

ID_FIDO_GEN_CE_AAGUID: Final = ObjectIdentifier("1.3.6.1.4.1.45724.1.1.4")
STATE_PREFIX: Final = "attestation/"
_SEAL_KEY: Final = STATE_PREFIX + "seal_key"
_ROOT: Final = STATE_PREFIX + "root"
_NOT_BEFORE: Final = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
_NOT_AFTER: Final = datetime.datetime(2099, 12, 31, tzinfo=datetime.UTC)
_PACKED: Final = AttestationFormat.PACKED
_ES256: Final = int(CoseAlgorithm.ES256)  # batch keys are P-256


@dataclass(frozen=True, slots=True)
class Attestation:
    fmt: str
    statement: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Signer:
    key: CredentialKey = field(repr=False)
    certificate: x509.Certificate
    certificate_der: bytes


class AttestationAuthority:
    """The store's attestation root and batch certificates, created on first use."""

    def __init__(self, store: Store, entropy: Entropy) -> None:
        self._store = store
        self._entropy = entropy
        seal_key = store.get_state(_SEAL_KEY)
        if seal_key is None:
            seal_key = entropy.random_bytes(32)
            store.put_state(_SEAL_KEY, seal_key)
        self._sealer = Sealer(seal_key, entropy)
        self._root = self._load_or_make(_ROOT, None)
        self._batches: dict[bytes, _Signer] = {}

    @property
    def root_certificate(self) -> x509.Certificate:
        return self._root.certificate

    def root_certificate_pem(self) -> str:
        return self._root.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def batch(self, aaguid: bytes) -> _Signer:
        signer = self._batches.get(aaguid)
        if signer is None:
            signer = self._load_or_make(f"{STATE_PREFIX}batch/{aaguid.hex()}", aaguid)
            self._batches[aaguid] = signer
        return signer

    def _load_or_make(self, name: str, aaguid: bytes | None) -> _Signer:
        key_name, cert_name = name + "/key", name + "/cert"
        sealed, der = self._store.get_state(key_name), self._store.get_state(cert_name)
        if sealed is not None and der is not None:
            plain = self._sealer.open_or_fail(sealed, key_name.encode())
            key = CredentialKey.from_private_bytes(
                CoseAlgorithm.ES256, plain, deterministic=self._entropy.deterministic
            )
            return _Signer(key, x509.load_der_x509_certificate(der), der)
        key = CredentialKey.generate(CoseAlgorithm.ES256, self._entropy)
        certificate = self._issue(key, aaguid)
        self._store.put_state(key_name, self._sealer.seal(key.private_bytes(), key_name.encode()))
        der = certificate.public_bytes(serialization.Encoding.DER)
        self._store.put_state(cert_name, der)
        return _Signer(key, certificate, der)

    def _issue(self, key: CredentialKey, aaguid: bytes | None) -> x509.Certificate:
        public_key = key.private_key.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)  # noqa: S101 - ES256 above
        serial = int.from_bytes(self._entropy.random_bytes(16), "big") >> 1 | 1
        store_id = self._entropy.random_bytes(4).hex()  # tells stores apart in a trust list
        if aaguid is None:
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fidoemu"),
                    x509.NameAttribute(NameOID.COMMON_NAME, f"fidoemu Attestation Root {store_id}"),
                ]
            )
            issuer, signing_key = subject, key
            builder = (
                x509.CertificateBuilder()
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=False,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=True,
                        crl_sign=True,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
            )
        else:
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fidoemu"),
                    x509.NameAttribute(
                        NameOID.ORGANIZATIONAL_UNIT_NAME, "Authenticator Attestation"
                    ),
                    x509.NameAttribute(NameOID.COMMON_NAME, f"fidoemu batch {aaguid.hex()}"),
                ]
            )
            issuer, signing_key = self._root.certificate.subject, self._root.key
            builder = (
                x509.CertificateBuilder()
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(
                    x509.UnrecognizedExtension(ID_FIDO_GEN_CE_AAGUID, b"\x04\x10" + aaguid),
                    critical=False,
                )
            )
        signing_private = signing_key.private_key
        assert isinstance(signing_private, ec.EllipticCurvePrivateKey)  # noqa: S101
        return (
            builder.subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(_NOT_BEFORE)
            .not_valid_after(_NOT_AFTER)
            .sign(signing_private, hashes.SHA256(), ecdsa_deterministic=self._entropy.deterministic)
        )

    def attest(
        self,
        fmt: AttestationFormat,
        aaguid: bytes,
        auth_data: bytes,
        client_data_hash: bytes,
        credential_key: CredentialKey,
    ) -> Attestation:
        signed = auth_data + client_data_hash
        if fmt is _PACKED:  # the default, first: no enum attribute reads on the way
            batch = self.batch(aaguid)
            return Attestation(
                "packed",
                {"alg": _ES256, "sig": batch.key.sign(signed), "x5c": [batch.certificate_der]},
            )
        match fmt:
            case AttestationFormat.NONE:
                return Attestation("none", {})
            case AttestationFormat.SELF:
                signature = credential_key.sign(signed)
                return Attestation(
                    "packed", {"alg": int(credential_key.algorithm), "sig": signature}
                )
            case AttestationFormat.FIDO_U2F:
                return self._fido_u2f(aaguid, auth_data, client_data_hash, credential_key)
        raise AssertionError(f"unhandled attestation format {fmt}")

    def _fido_u2f(
        self, aaguid: bytes, auth_data: bytes, client_data_hash: bytes, key: CredentialKey
    ) -> Attestation:
        # WebAuthn §8.6: only P-256 credentials; the signed data mirrors a U2F registration.
        if key.algorithm != CoseAlgorithm.ES256:
            raise CtapError(CtapStatus.UNSUPPORTED_ALGORITHM, "fido-u2f attests ES256 keys only")
        cred_id_len = int.from_bytes(auth_data[53:55], "big")
        credential_id = auth_data[55 : 55 + cred_id_len]
        batch = self.batch(aaguid)
        signed = (
            b"\x00" + auth_data[:32] + client_data_hash + credential_id + key.uncompressed_point()
        )
        return Attestation(
            "fido-u2f",
            {
                "sig": batch.key.sign(signed),
                "x5c": [batch.certificate_der],
            },
        )
