"""Client-side processing of the extensions that need the platform's cryptography: the
hmac-secret salt exchange behind WebAuthn PRF and ``hmacGetSecret`` (CTAP 2.1 §12.5, CTAP 2.2
hmac-secret-mc, WebAuthn L3 §10.1.4), and large-blob reads and writes (WebAuthn §10.1.5,
CTAP 2.1 §6.10).

The shared secret comes from the authenticator's key agreement (clientPIN getKeyAgreement)
through python-fido2's PIN/UV protocol classes; the secret never leaves this object's memory
(``repr=False``) and the trace redacts salts and outputs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from fido2.cose import CoseKey
from fido2.ctap import CtapDevice
from fido2.ctap2 import Ctap2
from fido2.ctap2.blob import LargeBlobs
from fido2.ctap2.pin import ClientPin, PinProtocol, PinProtocolV1, PinProtocolV2

from transports.webauthn.codec import b64url, b64url_decode
from transports.webauthn.errors import (
    EncodingError,
    NotSupportedError,
    OptionsTypeError,
    SyntaxError_,
)

PRF_CONTEXT: Final = b"WebAuthn PRF\x00"
SALT_LENGTH: Final = 32


def prf_salt(value: bytes) -> bytes:
    """WebAuthn L3 §10.1.4: the hmac-secret salt for a PRF input."""
    return hashlib.sha256(PRF_CONTEXT + value).digest()


@dataclass
class SaltSession:
    """One key agreement with the authenticator, to send encrypted salts and read outputs."""

    protocol: PinProtocol
    key_agreement: Mapping[int, Any]
    shared_secret: bytes = field(repr=False)

    @classmethod
    def open(cls, device: CtapDevice, pin_uv_protocols: tuple[int, ...]) -> SaltSession:
        protocol: PinProtocol = PinProtocolV2() if 2 in pin_uv_protocols else PinProtocolV1()
        ctap2 = Ctap2(device)
        answer = ctap2.client_pin(protocol.VERSION, ClientPin.CMD.GET_KEY_AGREEMENT)
        peer = CoseKey(answer[ClientPin.RESULT.KEY_AGREEMENT])
        key_agreement, shared_secret = protocol.encapsulate(peer)
        return cls(protocol, key_agreement, shared_secret)

    def salts(self, first: bytes, second: bytes | None) -> dict[int, Any]:
        """The hmac-secret input map (keyAgreement, saltEnc, saltAuth, pinUvAuthProtocol)."""
        if len(first) != SALT_LENGTH or (second is not None and len(second) != SALT_LENGTH):
            raise OptionsTypeError("hmac-secret salts are 32 bytes")
        encrypted = self.protocol.encrypt(self.shared_secret, first + (second or b""))
        return {
            1: dict(sorted(self.key_agreement.items(), key=_cose_order)),
            2: encrypted,
            3: self.protocol.authenticate(self.shared_secret, encrypted),
            4: self.protocol.VERSION,
        }

    def outputs(self, encrypted: bytes) -> tuple[bytes, bytes | None]:
        plain = self.protocol.decrypt(self.shared_secret, encrypted)
        return plain[:SALT_LENGTH], plain[SALT_LENGTH:] or None


def _cose_order(item: tuple[int, Any]) -> tuple[int, int]:
    key = item[0]
    return (0, key) if key >= 0 else (1, -key)  # CTAP2 canonical: unsigned first, then negative


@dataclass(frozen=True, slots=True)
class SaltRequest:
    """What the relying party asked for: PRF inputs (hashed into salts) or raw hmac salts."""

    first: bytes = field(repr=False)
    second: bytes | None = field(repr=False)
    prf: bool  # True: report as "prf" results; False: as "hmacGetSecret" outputs

    def to_json(self, outputs: tuple[bytes, bytes | None]) -> dict[str, Any]:
        first, second = outputs
        if self.prf:
            results = {"first": b64url(first)}
            if second is not None and self.second is not None:
                results["second"] = b64url(second)
            return {"prf": {"results": results}}
        secret = {"output1": b64url(first)}
        if second is not None and self.second is not None:
            secret["output2"] = b64url(second)
        return {"hmacGetSecret": secret}


def _prf_values(values: Any, what: str) -> SaltRequest:
    if not isinstance(values, Mapping) or "first" not in values:
        raise OptionsTypeError(f"{what} needs 'first'")
    first = prf_salt(b64url_decode(values["first"], f"{what}.first"))
    second = values.get("second")
    return SaltRequest(
        first,
        None if second is None else prf_salt(b64url_decode(second, f"{what}.second")),
        True,
    )


def check_registration_inputs(extensions: Mapping[str, Any]) -> None:
    """Client extension processing at registration that rejects the request outright."""
    prf = extensions.get("prf")
    if isinstance(prf, Mapping) and prf.get("evalByCredential"):
        # WebAuthn L3 §10.1.4: evalByCredential names credentials, none exist yet.
        raise NotSupportedError("prf.evalByCredential is not allowed at registration")
    large_blob = extensions.get("largeBlob")
    if isinstance(large_blob, Mapping) and ("read" in large_blob or "write" in large_blob):
        # WebAuthn L3 §10.1.5: read and write are authentication inputs.
        raise NotSupportedError("largeBlob.read/write are not allowed at registration")


def check_authentication_inputs(extensions: Mapping[str, Any], allow_ids: list[bytes]) -> None:
    """Client extension processing at authentication that rejects the request outright."""
    large_blob = extensions.get("largeBlob")
    if isinstance(large_blob, Mapping):
        # WebAuthn L3 §10.1.5: support is a registration input; read and write exclude
        # each other.
        if "support" in large_blob:
            raise NotSupportedError("largeBlob.support is not allowed at authentication")
        if "read" in large_blob and "write" in large_blob:
            raise NotSupportedError("largeBlob.read and largeBlob.write are exclusive")
    prf = extensions.get("prf")
    by_credential = prf.get("evalByCredential") if isinstance(prf, Mapping) else None
    if not isinstance(by_credential, Mapping) or not by_credential:
        return
    # WebAuthn L3 §10.1.4: evalByCredential needs allowCredentials (NotSupportedError), and
    # each key must be a non-empty base64url credential ID from it (SyntaxError).
    if not allow_ids:
        raise NotSupportedError("prf.evalByCredential requires allowCredentials")
    for key in by_credential:
        decoded = _credential_id(key)
        if decoded is None or decoded not in allow_ids:
            raise SyntaxError_(
                f"prf.evalByCredential key {key!r} is not the base64url ID of an "
                "allowCredentials entry"
            )


def _credential_id(key: Any) -> bytes | None:
    if not isinstance(key, str) or not key:
        return None
    try:
        return b64url_decode(key, "prf.evalByCredential key")
    except (OptionsTypeError, EncodingError):
        return None


def registration_salts(extensions: Mapping[str, Any]) -> SaltRequest | None:
    """prf.eval at registration (sent as hmac-secret-mc)."""
    prf = extensions.get("prf")
    if isinstance(prf, Mapping) and prf.get("eval") is not None:
        return _prf_values(prf["eval"], "prf.eval")
    return None


def authentication_salts(
    extensions: Mapping[str, Any], allow_ids: list[bytes]
) -> SaltRequest | None:
    """prf (eval, or evalByCredential for the allowed credential) or hmacGetSecret."""
    prf = extensions.get("prf")
    if isinstance(prf, Mapping):
        by_credential = prf.get("evalByCredential")
        if isinstance(by_credential, Mapping) and by_credential:
            check_authentication_inputs({"prf": prf}, allow_ids)
            for key, values in by_credential.items():
                if b64url_decode(key, "prf.evalByCredential key") in allow_ids:
                    return _prf_values(values, "prf.evalByCredential")
        if prf.get("eval") is not None:
            return _prf_values(prf["eval"], "prf.eval")
        return None
    hmac = extensions.get("hmacGetSecret")
    if isinstance(hmac, Mapping) and "salt1" in hmac:
        salt2 = hmac.get("salt2")
        return SaltRequest(
            b64url_decode(hmac["salt1"], "hmacGetSecret.salt1"),
            None if salt2 is None else b64url_decode(salt2, "hmacGetSecret.salt2"),
            False,
        )
    return None


def read_large_blob(device: CtapDevice, key: bytes) -> bytes | None:
    return LargeBlobs(Ctap2(device)).get_blob(key)


@dataclass(frozen=True, slots=True)
class PinUvToken:
    """A pinUvAuthToken the client obtained in this ceremony, with the protocol that made it."""

    protocol: PinProtocol
    token: bytes = field(repr=False)


def write_large_blob(
    device: CtapDevice, key: bytes, data: bytes, token: PinUvToken | None = None
) -> bool:
    """Write the credential's blob. Without ``token`` this works only while the authenticator
    has no PIN and no alwaysUv; a protected one needs a pinUvAuthToken with the lbw permission
    (CTAP 2.1 §6.10.2 step 3)."""
    from fido2.ctap import CtapError

    try:
        if token is None:
            LargeBlobs(Ctap2(device)).put_blob(key, data)
        else:
            LargeBlobs(Ctap2(device), token.protocol, token.token).put_blob(key, data)
    except CtapError:
        return False
    return True
