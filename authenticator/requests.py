"""Typed CTAP2 requests parsed from CBOR maps (CTAP 2.1 §6.1, §6.2).

``parse()`` checks presence and types in the order the spec's algorithms read them. Where
the spec leaves the status code open, the choice is written next to the check. Unknown map
keys are ignored (CTAP 2.1 §6: forward compatibility); values of known keys with the wrong CBOR
type answer ``CBOR_UNEXPECTED_TYPE``; absent required ones ``MISSING_PARAMETER``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from authenticator.commands import GetAssertionKey, MakeCredentialKey
from authenticator.status import CtapError, CtapStatus

T = TypeVar("T")

MAX_USER_ID_LENGTH: Final = 64  # WebAuthn §5.4.3: a user handle is at most 64 bytes
MAX_NAME_BYTES: Final = 64  # CTAP 2.1 §6.1: name/displayName may be truncated to 64 bytes
CLIENT_DATA_HASH_LENGTH: Final = 32
PUBLIC_KEY: Final = "public-key"


_ABSENT: Final = object()

# Request keys bound once: reading a member through its IntEnum class costs ~50 ns more under
# Python 3.11 (EnumType.__getattr__ puts every class attribute read on a slow path).
_MC_CLIENT_DATA_HASH: Final = MakeCredentialKey.CLIENT_DATA_HASH
_MC_RP: Final = MakeCredentialKey.RP
_MC_USER: Final = MakeCredentialKey.USER
_MC_PUB_KEY_CRED_PARAMS: Final = MakeCredentialKey.PUB_KEY_CRED_PARAMS
_MC_EXCLUDE_LIST: Final = MakeCredentialKey.EXCLUDE_LIST
_MC_EXTENSIONS: Final = MakeCredentialKey.EXTENSIONS
_MC_OPTIONS: Final = MakeCredentialKey.OPTIONS
_MC_PIN_UV_AUTH_PARAM: Final = MakeCredentialKey.PIN_UV_AUTH_PARAM
_MC_PIN_UV_AUTH_PROTOCOL: Final = MakeCredentialKey.PIN_UV_AUTH_PROTOCOL
_MC_ENTERPRISE_ATTESTATION: Final = MakeCredentialKey.ENTERPRISE_ATTESTATION
_MC_ATTESTATION_FORMATS_PREFERENCE: Final = MakeCredentialKey.ATTESTATION_FORMATS_PREFERENCE
_GA_RP_ID: Final = GetAssertionKey.RP_ID
_GA_CLIENT_DATA_HASH: Final = GetAssertionKey.CLIENT_DATA_HASH
_GA_ALLOW_LIST: Final = GetAssertionKey.ALLOW_LIST
_GA_EXTENSIONS: Final = GetAssertionKey.EXTENSIONS
_GA_OPTIONS: Final = GetAssertionKey.OPTIONS
_GA_PIN_UV_AUTH_PARAM: Final = GetAssertionKey.PIN_UV_AUTH_PARAM
_GA_PIN_UV_AUTH_PROTOCOL: Final = GetAssertionKey.PIN_UV_AUTH_PROTOCOL


def _typed(value: Any, kind: type[T], what: str) -> T:
    if type(value) is kind:  # the decoder's exact types: the common case, checked first
        return value
    # bool is an int subclass in Python; CBOR keeps them apart.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CtapError(CtapStatus.CBOR_UNEXPECTED_TYPE, f"{what} must be {kind.__name__}")
    return value


def required(params: Mapping[Any, Any], key: Any, kind: type[T], what: str) -> T:
    value = params.get(key, _ABSENT)
    if type(value) is kind:  # as in _typed; repeated here to save a call per field
        return value
    if value is _ABSENT:
        raise CtapError(CtapStatus.MISSING_PARAMETER, f"{what} is missing")
    return _typed(value, kind, what)


def optional(params: Mapping[Any, Any], key: Any, kind: type[T], what: str) -> T | None:
    value = params.get(key, _ABSENT)
    if value is _ABSENT:
        return None
    return _typed(value, kind, what)


def truncate_utf8(text: str, limit: int = MAX_NAME_BYTES) -> str:
    """Cut at a character boundary so the result is valid UTF-8 (CTAP 2.1 §6.1)."""
    if len(text) * 4 <= limit:
        return text  # no code point takes more than 4 bytes: nothing to cut (the usual case)
    return text.encode()[:limit].decode("utf-8", errors="ignore")


@dataclass(slots=True)
class RelyingParty:
    id: str
    name: str | None = None

    @classmethod
    def parse(cls, value: Any) -> RelyingParty:
        rp = _typed(value, dict, "rp")
        name = optional(rp, "name", str, "rp.name")
        return cls(required(rp, "id", str, "rp.id"), None if name is None else truncate_utf8(name))


@dataclass(slots=True)
class User:
    id: bytes
    name: str | None = None
    display_name: str | None = None

    @classmethod
    def parse(cls, value: Any) -> User:
        user = _typed(value, dict, "user")
        user_id = required(user, "id", bytes, "user.id")
        if len(user_id) > MAX_USER_ID_LENGTH:
            # The spec names no code; INVALID_LENGTH says what is wrong (as OpenSK does).
            raise CtapError(CtapStatus.INVALID_LENGTH, "user.id is longer than 64 bytes")
        name = optional(user, "name", str, "user.name")
        display_name = optional(user, "displayName", str, "user.displayName")
        optional(user, "icon", str, "user.icon")
        return cls(
            user_id,
            None if name is None else truncate_utf8(name),
            None if display_name is None else truncate_utf8(display_name),
        )


@dataclass(slots=True)
class CredentialDescriptor:
    id: bytes
    type: str = PUBLIC_KEY


def parse_descriptors(value: Any, what: str, limit: int) -> tuple[CredentialDescriptor, ...]:
    entries = _typed(value, list, what)
    if len(entries) > limit:
        # As Chromium's virtual device with reject_large_allow_and_exclude_lists.
        raise CtapError(CtapStatus.LIMIT_EXCEEDED, f"{what} exceeds maxCredentialCountInList")
    descriptors = []
    for entry in entries:
        # Well-typed entries take no call per field; anything else goes through the checks
        # below, in the same order (type, id, transports), for the same status codes.
        if type(entry) is not dict:
            _typed(entry, dict, "credential descriptor")
        kind = entry.get("type")
        if type(kind) is not str:
            kind = required(entry, "type", str, "credential descriptor type")
        credential_id = entry.get("id")
        if type(credential_id) is not bytes:
            credential_id = required(entry, "id", bytes, "credential descriptor id")
        transports = entry.get("transports", _ABSENT)
        if transports is not _ABSENT and type(transports) is not list:
            optional(entry, "transports", list, "credential descriptor transports")
        if kind == PUBLIC_KEY:  # WebAuthn §5.8.3: ignore credential types we do not know
            descriptors.append(CredentialDescriptor(credential_id, kind))
    return tuple(descriptors)


def parse_options(value: Any) -> dict[str, bool]:
    options = _typed(value, dict, "options")
    for name, flag in options.items():
        _typed(name, str, "option name")
        if type(flag) is not bool:
            raise CtapError(CtapStatus.CBOR_UNEXPECTED_TYPE, f"option {name} must be bool")
    return dict(options)


def parse_client_data_hash(params: Mapping[Any, Any], key: Any) -> bytes:
    client_data_hash = required(params, key, bytes, "clientDataHash")
    if len(client_data_hash) != CLIENT_DATA_HASH_LENGTH:
        raise CtapError(CtapStatus.INVALID_LENGTH, "clientDataHash is not 32 bytes")
    return client_data_hash


@dataclass(slots=True)
class MakeCredentialRequest:
    client_data_hash: bytes
    rp: RelyingParty
    user: User
    algorithms: tuple[int, ...]  # in the RP's order of preference; only "public-key" entries
    exclude_list: tuple[CredentialDescriptor, ...] = ()
    extensions: dict[str, Any] = field(default_factory=dict)
    options: dict[str, bool] = field(default_factory=dict)
    pin_uv_auth_param: bytes | None = None
    pin_uv_auth_protocol: int | None = None
    enterprise_attestation: int | None = None
    attestation_formats_preference: tuple[str, ...] = ()

    @classmethod
    def parse(cls, params: Mapping[Any, Any], *, max_list: int) -> MakeCredentialRequest:
        client_data_hash = parse_client_data_hash(params, _MC_CLIENT_DATA_HASH)
        rp = RelyingParty.parse(required(params, _MC_RP, dict, "rp"))
        user = User.parse(required(params, _MC_USER, dict, "user"))
        algorithms = []
        for entry in required(params, _MC_PUB_KEY_CRED_PARAMS, list, "pubKeyCredParams"):
            param = _typed(entry, dict, "pubKeyCredParams entry")
            kind = required(param, "type", str, "pubKeyCredParams type")
            algorithm = required(param, "alg", int, "pubKeyCredParams alg")
            if kind == PUBLIC_KEY:
                algorithms.append(algorithm)
        exclude = params.get(_MC_EXCLUDE_LIST)
        formats = optional(
            params, _MC_ATTESTATION_FORMATS_PREFERENCE, list, "attestationFormatsPreference"
        )
        return cls(
            client_data_hash=client_data_hash,
            rp=rp,
            user=user,
            algorithms=tuple(algorithms),
            exclude_list=()
            if exclude is None
            else parse_descriptors(exclude, "excludeList", max_list),
            extensions=optional(params, _MC_EXTENSIONS, dict, "extensions") or {},
            options=parse_options(params[_MC_OPTIONS]) if _MC_OPTIONS in params else {},
            pin_uv_auth_param=optional(params, _MC_PIN_UV_AUTH_PARAM, bytes, "pinUvAuthParam"),
            pin_uv_auth_protocol=optional(
                params, _MC_PIN_UV_AUTH_PROTOCOL, int, "pinUvAuthProtocol"
            ),
            enterprise_attestation=optional(
                params, _MC_ENTERPRISE_ATTESTATION, int, "enterpriseAttestation"
            ),
            attestation_formats_preference=()
            if formats is None
            else tuple(_typed(f, str, "attestation format") for f in formats),
        )


@dataclass(slots=True)
class GetAssertionRequest:
    rp_id: str
    client_data_hash: bytes
    allow_list: tuple[CredentialDescriptor, ...] = ()
    extensions: dict[str, Any] = field(default_factory=dict)
    options: dict[str, bool] = field(default_factory=dict)
    pin_uv_auth_param: bytes | None = None
    pin_uv_auth_protocol: int | None = None

    @classmethod
    def parse(cls, params: Mapping[Any, Any], *, max_list: int) -> GetAssertionRequest:
        rp_id = required(params, _GA_RP_ID, str, "rpId")
        client_data_hash = parse_client_data_hash(params, _GA_CLIENT_DATA_HASH)
        allow = params.get(_GA_ALLOW_LIST)
        return cls(
            rp_id=rp_id,
            client_data_hash=client_data_hash,
            allow_list=() if allow is None else parse_descriptors(allow, "allowList", max_list),
            extensions=optional(params, _GA_EXTENSIONS, dict, "extensions") or {},
            options=parse_options(params[_GA_OPTIONS]) if _GA_OPTIONS in params else {},
            pin_uv_auth_param=optional(params, _GA_PIN_UV_AUTH_PARAM, bytes, "pinUvAuthParam"),
            pin_uv_auth_protocol=optional(
                params, _GA_PIN_UV_AUTH_PROTOCOL, int, "pinUvAuthProtocol"
            ),
        )
