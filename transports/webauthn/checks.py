"""Assertion helpers for relying-party tests: read what a response JSON carries (authenticator
data flags and counter, attested credential, attestation statement) and assert on it with
messages that say what was expected (WebAuthn L3 §6.1 authenticator data, §6.5 attestation).

They take the dicts ``WebAuthnClient`` returns (or any RegistrationResponseJSON /
AuthenticationResponseJSON) and never verify signatures: that is the relying party's job,
and the code under test.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

import cbor2

from authenticator.auth_data import AuthDataFlag
from transports.webauthn.codec import b64url_decode


@dataclass(frozen=True, slots=True)
class AuthenticatorData:
    """Parsed authenticator data (WebAuthn §6.1)."""

    rp_id_hash: bytes
    flags: AuthDataFlag
    sign_count: int
    aaguid: bytes | None = None
    credential_id: bytes | None = None
    credential_public_key: dict[int, Any] | None = field(default=None, repr=False)
    extensions: dict[str, Any] = field(default_factory=dict)

    @property
    def user_present(self) -> bool:
        return AuthDataFlag.UP in self.flags

    @property
    def user_verified(self) -> bool:
        return AuthDataFlag.UV in self.flags

    @property
    def backup_eligible(self) -> bool:
        return AuthDataFlag.BE in self.flags

    @property
    def backed_up(self) -> bool:
        return AuthDataFlag.BS in self.flags

    @property
    def aaguid_uuid(self) -> uuid.UUID | None:
        return None if self.aaguid is None else uuid.UUID(bytes=self.aaguid)

    @classmethod
    def parse(cls, data: bytes) -> AuthenticatorData:
        if len(data) < 37:
            raise ValueError("authenticator data is shorter than 37 bytes")
        flags = AuthDataFlag(data[32])
        (sign_count,) = struct.unpack(">I", data[33:37])
        stream = BytesIO(data[37:])
        decoder = cbor2.CBORDecoder(stream)
        aaguid = credential_id = None
        public_key = None
        if AuthDataFlag.AT in flags:
            aaguid = stream.read(16)
            (length,) = struct.unpack(">H", stream.read(2))
            credential_id = stream.read(length)
            public_key = decoder.decode()
        extensions = decoder.decode() if AuthDataFlag.ED in flags else {}
        return cls(
            data[:32], flags, sign_count, aaguid, credential_id, public_key, dict(extensions)
        )


def authenticator_data(response: Mapping[str, Any]) -> AuthenticatorData:
    """The authenticator data of a registration or authentication response JSON."""
    inner = response["response"]
    if "authenticatorData" in inner:
        return AuthenticatorData.parse(b64url_decode(inner["authenticatorData"], "authData"))
    attestation = cbor2.loads(b64url_decode(inner["attestationObject"], "attestationObject"))
    return AuthenticatorData.parse(attestation["authData"])


def attestation_object(response: Mapping[str, Any]) -> dict[str, Any]:
    """The decoded attestation object: {"fmt", "attStmt", "authData"}."""
    decoded: dict[str, Any] = cbor2.loads(
        b64url_decode(response["response"]["attestationObject"], "attestationObject")
    )
    return decoded


def client_data(response: Mapping[str, Any]) -> dict[str, Any]:
    import json

    parsed: dict[str, Any] = json.loads(
        b64url_decode(response["response"]["clientDataJSON"], "clientDataJSON")
    )
    return parsed


def assert_flags(
    response: Mapping[str, Any],
    *,
    up: bool | None = None,
    uv: bool | None = None,
    be: bool | None = None,
    bs: bool | None = None,
) -> AuthenticatorData:
    """Check the flags given (None: don't care); returns the parsed data for more checks."""
    data = authenticator_data(response)
    expected = {"UP": up, "UV": uv, "BE": be, "BS": bs}
    wrong = [
        f"{name}={'set' if AuthDataFlag[name] in data.flags else 'clear'} (expected "
        f"{'set' if want else 'clear'})"
        for name, want in expected.items()
        if want is not None and (AuthDataFlag[name] in data.flags) != want
    ]
    if wrong:
        raise AssertionError("authenticator data flags: " + ", ".join(wrong))
    return data


def assert_counter_increased(previous: int, response: Mapping[str, Any]) -> int:
    """WebAuthn §7.2 step 21: a non-zero counter must grow; returns the new value."""
    count = authenticator_data(response).sign_count
    if (count != 0 or previous != 0) and count <= previous:
        raise AssertionError(f"signature counter {count} is not greater than {previous}")
    return count


def assert_attestation(
    response: Mapping[str, Any],
    *,
    fmt: str | None = None,
    aaguid: bytes | uuid.UUID | str | None = None,
    x5c: bool | None = None,
) -> dict[str, Any]:
    """Check the attestation format, the AAGUID and whether a certificate chain is present."""
    attestation = attestation_object(response)
    problems = []
    if fmt is not None and attestation["fmt"] != fmt:
        problems.append(f"fmt {attestation['fmt']!r} (expected {fmt!r})")
    if aaguid is not None:
        want = uuid.UUID(str(aaguid)).bytes if not isinstance(aaguid, bytes) else aaguid
        got = AuthenticatorData.parse(attestation["authData"]).aaguid
        if got != want:
            shown = uuid.UUID(bytes=got or bytes(16))
            problems.append(f"AAGUID {shown} (expected {uuid.UUID(bytes=want)})")
    if x5c is not None and ("x5c" in attestation["attStmt"]) != x5c:
        problems.append("x5c " + ("missing" if x5c else "present"))
    if problems:
        raise AssertionError("attestation: " + ", ".join(problems))
    return attestation
