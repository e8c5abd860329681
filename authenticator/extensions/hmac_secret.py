"""hmac-secret (CTAP 2.1 §12.5) and hmac-secret-mc (CTAP 2.2): a per-credential
pseudo-random function, the basis of WebAuthn's PRF extension (WebAuthn L3 §10.1.4).

Each credential made with ``hmac-secret: true`` has two 32-byte secrets, CredRandomWithUV and
CredRandomWithoutUV; an assertion answers HMAC-SHA-256(CredRandom, salt) for one or two
salts, with the secret chosen by whether the user was verified in that assertion, so PRF
outputs with and without UV differ and each is stable. Salts travel encrypted under a
PIN/UV-protocol shared secret (ECDH with the authenticator's key-agreement key), and so do
the outputs.

Where CredRandom lives: a stored credential keeps both values sealed with its private key
(``CredentialSecrets.extra``); a wrapped, non-resident credential has no record, so its values
are derived from the device key and the credential ID with HKDF (our design; OpenSK derives
them from the credential's private key). Either way an authenticatorReset destroys them.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any, Final

from authenticator.context import Context
from authenticator.extensions.base import (
    Authentication,
    BaseExtension,
    CredentialView,
    Registration,
)
from authenticator.extensions.shared_secret import SharedSecret, shared_secret
from authenticator.status import CtapError, CtapStatus
from authenticator.user_verification import supported_pin_uv_protocols

EXTRA_KEY: Final = "hs"  # public mark: the credential was made with hmac-secret
SECRET_WITH_UV: Final = "credRandomWithUV"  # noqa: S105 - a name, not a secret
SECRET_WITHOUT_UV: Final = "credRandomWithoutUV"  # noqa: S105 - a name
CRED_RANDOM_SIZE: Final = 32
SALT_SIZE: Final = 32
DEFAULT_PROTOCOL: Final = 1  # §12.5: an absent pinUvAuthProtocol means protocol 1


@dataclass(frozen=True, slots=True)
class HmacSecretInput:
    """The salt-carrying input map of hmac-secret (getAssertion) and hmac-secret-mc."""

    key_agreement: dict[Any, Any] = field(repr=False)
    salt_enc: bytes = field(repr=False)
    salt_auth: bytes = field(repr=False)
    pin_uv_auth_protocol: int = DEFAULT_PROTOCOL

    @classmethod
    def parse(cls, value: Any, what: str) -> HmacSecretInput:
        if not isinstance(value, dict):
            raise CtapError(CtapStatus.CBOR_UNEXPECTED_TYPE, f"{what} input must be a map")
        for key in (1, 2, 3):
            if key not in value:
                raise CtapError(CtapStatus.MISSING_PARAMETER, f"{what} input lacks key {key}")
        key_agreement, salt_enc, salt_auth = value[1], value[2], value[3]
        protocol = value.get(4, DEFAULT_PROTOCOL)
        if (
            not isinstance(key_agreement, dict)
            or not isinstance(salt_enc, bytes)
            or not isinstance(salt_auth, bytes)
            or not isinstance(protocol, int)
            or isinstance(protocol, bool)
        ):
            raise CtapError(CtapStatus.CBOR_UNEXPECTED_TYPE, f"{what} input has a wrong type")
        return cls(key_agreement, salt_enc, salt_auth, protocol)

    def open(self, ctx: Context) -> OpenedSalts:
        """Check saltAuth and decrypt the salts (CTAP 2.1 §12.5 steps 1-4).

        Done when the request is parsed, so a bad input fails before the user is asked for a
        touch and before a credential is stored.
        """
        secret = shared_secret(ctx, self.pin_uv_auth_protocol, self.key_agreement)
        if not secret.verify(self.salt_enc, self.salt_auth):
            raise CtapError(CtapStatus.PIN_AUTH_INVALID, "saltAuth does not verify")
        salts = secret.decrypt(self.salt_enc)
        if salts is None or len(salts) not in (SALT_SIZE, 2 * SALT_SIZE):
            raise CtapError(CtapStatus.INVALID_LENGTH, "one or two 32-byte salts expected")
        return OpenedSalts(secret, salts)


@dataclass(frozen=True, slots=True)
class OpenedSalts:
    """Verified, decrypted salts and the shared secret to encrypt the outputs with."""

    secret: SharedSecret = field(repr=False)
    salts: bytes = field(repr=False)

    def evaluate(self, cred_random: bytes) -> bytes:
        """Encrypted HMAC-SHA-256(CredRandom, salt1) [|| ...(salt2)] (§12.5 steps 5-6)."""
        outputs = b"".join(
            hmac.digest(cred_random, self.salts[i : i + SALT_SIZE], hashlib.sha256)
            for i in range(0, len(self.salts), SALT_SIZE)
        )
        return self.secret.encrypt(outputs)


def cred_random(ctx: Context, credential: CredentialView, user_verified: bool) -> bytes | None:
    """The credential's CredRandomWithUV or CredRandomWithoutUV, if it has hmac-secret."""
    if credential.extra.get(EXTRA_KEY) is not True:
        return None
    name = SECRET_WITH_UV if user_verified else SECRET_WITHOUT_UV
    if credential.wrapped:
        return ctx.sealer.derive(
            b"fidoemu hmac-secret " + name.encode(), credential.credential_id, CRED_RANDOM_SIZE
        )
    return credential.secrets.get(name)


class HmacSecretExtension(BaseExtension):
    name = "hmac-secret"

    def available(self, ctx: Context) -> bool:
        return bool(supported_pin_uv_protocols(ctx))

    def parse_registration(self, ctx: Context, value: Any, *, rk: bool) -> bool | None:
        if not isinstance(value, bool):
            raise CtapError(CtapStatus.CBOR_UNEXPECTED_TYPE, "hmac-secret must be a boolean")
        return True if value else None

    def prepare_registration(self, reg: Registration, value: Any) -> None:
        reg.extra[EXTRA_KEY] = True
        for name in (SECRET_WITH_UV, SECRET_WITHOUT_UV):
            reg.secrets[name] = reg.ctx.entropy.random_bytes(CRED_RANDOM_SIZE)

    def registration_output(
        self, reg: Registration, value: Any, credential: CredentialView
    ) -> None:
        reg.outputs[self.name] = True

    def parse_authentication(self, ctx: Context, value: Any, *, up: bool) -> OpenedSalts:
        parsed = HmacSecretInput.parse(value, self.name)
        if not up:
            # As OpenSK: the PRF is never evaluated silently (CTAP 2.1 §12.5 requires UP).
            raise CtapError(CtapStatus.UNSUPPORTED_OPTION, "hmac-secret needs user presence")
        return parsed.open(ctx)

    def authentication_output(
        self, auth: Authentication, value: Any, credential: CredentialView
    ) -> None:
        secret = cred_random(auth.ctx, credential, auth.user_verified)
        if secret is not None:  # a credential made without hmac-secret gets no output
            auth.outputs[self.name] = value.evaluate(secret)


class HmacSecretMcExtension(BaseExtension):
    """CTAP 2.2: the same salts at registration, so a PRF is usable at once."""

    name = "hmac-secret-mc"

    def available(self, ctx: Context) -> bool:
        return bool(supported_pin_uv_protocols(ctx))

    def parse_registration(self, ctx: Context, value: Any, *, rk: bool) -> OpenedSalts:
        return HmacSecretInput.parse(value, self.name).open(ctx)

    def registration_output(
        self, reg: Registration, value: Any, credential: CredentialView
    ) -> None:
        # Only together with hmac-secret: true (the registry runs hmac-secret first).
        secret = cred_random(reg.ctx, credential, reg.user_verified)
        if secret is not None:
            reg.outputs[self.name] = value.evaluate(secret)
