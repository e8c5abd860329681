"""The W3C JSON forms a relying party sends and receives (WebAuthn L3 §5.1.8-§5.1.11:
PublicKeyCredentialCreationOptionsJSON, ...RequestOptionsJSON, RegistrationResponseJSON,
AuthenticationResponseJSON), client data serialization (§5.8.1.2 CCDToString), and the
public-key conversion behind ``getPublicKey()`` (§5.2.1.1).

Everything here is plain functions over dicts and bytes: the fast path of the client.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from transports.webauthn.errors import EncodingError, OptionsTypeError

PUBLIC_KEY: Final = "public-key"

# SubjectPublicKeyInfo DER prefixes (RFC 5480, RFC 8410) for the fixed-size keys: the key bytes
# follow. Building these by hand is exact and saves a key object per registration.
_SPKI_P256: Final = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
_SPKI_P384: Final = bytes.fromhex("3076301006072a8648ce3d020106052b81040022036200")
_SPKI_ED25519: Final = bytes.fromhex("302a300506032b6570032100")
_COSE_KTY, _COSE_ALG, _COSE_CRV, _COSE_X, _COSE_Y = 1, 3, -1, -2, -3
_COSE_N, _COSE_E = -1, -2


def b64url(data: bytes) -> str:
    """base64url without padding (WebAuthn §3, RFC 4648 §5)."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_TO_URL).decode()


_TO_URL: Final = bytes.maketrans(b"+/", b"-_")
_FROM_URL: Final = bytes.maketrans(b"-_", b"+/")
_URL_ALPHABET: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)


def b64url_decode(value: Any, what: str) -> bytes:
    """Decode a base64url member; a wrong type is a TypeError, bad text an EncodingError."""
    if not isinstance(value, str):
        raise OptionsTypeError(f"{what} must be a base64url string")
    raw = value.encode()
    if len(raw) % 4 == 1 or not _URL_ALPHABET.issuperset(raw.rstrip(b"=")):
        raise EncodingError(f"{what} is not base64url")
    try:
        return binascii.a2b_base64(raw.translate(_FROM_URL) + b"=" * (-len(raw) % 4))
    except binascii.Error:
        raise EncodingError(f"{what} is not base64url") from None


def load_options(options: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
    """The options object: a JSON text or dict, bare or wrapped as ``{"publicKey": ...}``."""
    if isinstance(options, str | bytes):
        try:
            loaded = json.loads(options)
        except ValueError as error:
            raise OptionsTypeError(f"options are not JSON: {error}") from None
    else:
        loaded = options
    if not isinstance(loaded, Mapping):
        raise OptionsTypeError("options must be a JSON object")
    inner = loaded.get("publicKey")
    if isinstance(inner, Mapping):
        loaded = inner
    return loaded if type(loaded) is dict else dict(loaded)


def member(options: Mapping[str, Any], name: str, kind: type, what: str) -> Any:
    if name not in options:
        raise OptionsTypeError(f"{what} is required")
    value = options[name]
    if type(value) is kind or (kind is Mapping and type(value) is dict):
        return value  # the common case, without an ABC isinstance check
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise OptionsTypeError(f"{what} must be {kind.__name__}")
    return value


def optional_member(options: Mapping[str, Any], name: str, kind: type, what: str) -> Any:
    value = options.get(name)
    if value is None or type(value) is kind or (kind is Mapping and type(value) is dict):
        return value
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise OptionsTypeError(f"{what} must be {kind.__name__}")
    return value


def descriptors(value: Any, what: str) -> list[dict[str, Any]]:
    """Credential descriptors, decoded; unknown types are dropped (WebAuthn §5.8.3)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise OptionsTypeError(f"{what} must be a list")
    result = []
    for entry in value:
        if not isinstance(entry, Mapping):
            raise OptionsTypeError(f"{what} entries must be objects")
        kind = member(entry, "type", str, f"{what}[].type")
        credential_id = b64url_decode(entry.get("id"), f"{what}[].id")
        if kind == PUBLIC_KEY:
            result.append({"id": credential_id, "type": PUBLIC_KEY})
    return result


def client_data_json(
    kind: str, challenge: bytes, origin: str, top_origin: str | None = None
) -> bytes:
    """CollectedClientData serialized as CCDToString does (WebAuthn L3 §5.8.1.2): members in
    the fixed order type, challenge, origin, crossOrigin, then topOrigin when cross-origin, so
    a relying party may verify it with the limited verification algorithm (§5.8.1.3)."""
    text = (
        '{"type":'
        + _ccd_string(kind)
        + ',"challenge":'
        + _ccd_string(b64url(challenge))
        + ',"origin":'
        + _ccd_string(origin)
    )
    if top_origin is not None and top_origin != origin:
        text += ',"crossOrigin":true,"topOrigin":' + _ccd_string(top_origin)
    else:
        text += ',"crossOrigin":false'
    return (text + "}").encode()


def _ccd_string(value: str) -> str:
    """CCDToString for one string: only '"', '\\' and C0 controls are escaped, the latter as
    lowercase \\u00XX (unlike JSON.stringify's short escapes)."""
    if value.isprintable() and '"' not in value and "\\" not in value:
        return '"' + value + '"'
    out = ['"']
    for char in value:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif code < 0x20:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def spki_from_cose(cose: Mapping[int, Any]) -> bytes | None:
    """The DER SubjectPublicKeyInfo of a COSE_Key, or None for key types we cannot express
    (``getPublicKey()`` returns null for those, WebAuthn §5.2.1.1)."""
    kty, crv = cose.get(_COSE_KTY), cose.get(_COSE_CRV)
    x, y = cose.get(_COSE_X), cose.get(_COSE_Y)
    if kty == 2 and isinstance(x, bytes) and isinstance(y, bytes):  # EC2
        if crv == 1 and len(x) == 32 and len(y) == 32:
            return _SPKI_P256 + b"\x04" + x + y
        if crv == 2 and len(x) == 48 and len(y) == 48:
            return _SPKI_P384 + b"\x04" + x + y
        return None
    if kty == 1 and crv == 6 and isinstance(x, bytes) and len(x) == 32:  # OKP
        return _SPKI_ED25519 + x
    if kty == 3:  # RSA
        numbers = rsa.RSAPublicNumbers(
            int.from_bytes(cose[_COSE_E], "big"), int.from_bytes(cose[_COSE_N], "big")
        )
        spki: bytes = numbers.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return spki
    return None
