"""The PIN/UV auth protocol operations extensions need (CTAP 2.1 §6.5.6, §6.5.7): a shared
secret from the platform's key-agreement key, to check and decrypt inputs and encrypt outputs.

A thin adapter over ``pin_protocol.py`` (which owns the key-agreement keys), so extensions
depend on three operations rather than on clientPIN's internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from authenticator.context import Context
from authenticator.pin_protocol import PinProtocol, PinUvAuthProtocol
from authenticator.pin_protocol import SharedSecret as ProtocolSecret
from authenticator.status import CtapError, CtapStatus


@dataclass(frozen=True, slots=True)
class SharedSecret:
    """One platform's shared secret under one protocol; lives for one ceremony."""

    protocol: PinProtocol = field(repr=False)
    secret: ProtocolSecret = field(repr=False)

    def verify(self, message: bytes, signature: bytes) -> bool:
        return self.protocol.verify(self.secret.hmac_key, message, signature)

    def decrypt(self, ciphertext: bytes) -> bytes | None:
        return self.protocol.decrypt(self.secret, ciphertext)

    def encrypt(self, plaintext: bytes) -> bytes:
        return self.protocol.encrypt(self.secret, plaintext)


def shared_secret(ctx: Context, protocol: int, key_agreement: dict[Any, Any]) -> SharedSecret:
    """ECDH between the authenticator's key-agreement key and the platform's (§6.5.6)."""
    try:
        pin_protocol = ctx.pin_protocols[PinUvAuthProtocol(protocol)]
    except (ValueError, KeyError):
        raise CtapError(CtapStatus.INVALID_PARAMETER, "unsupported pinUvAuthProtocol") from None
    return SharedSecret(pin_protocol, pin_protocol.decapsulate(key_agreement))
