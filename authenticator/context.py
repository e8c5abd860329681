"""The state a command handler works with: configuration, ports, device secrets, and the one
pending stateful command. Runtime fields here are lost on a power cycle; persistent ones live
in the store."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias, TypeVar

from authenticator.attestation import AttestationAuthority
from authenticator.clock import Clock
from authenticator.config import AuthenticatorConfig, CounterMode
from authenticator.credential import (
    CredentialSecrets,
    StoredCredential,
    UnwrappedCredential,
    unwrap_credential_id,
)
from authenticator.keys import Entropy, Sealer
from authenticator.pin_protocol import PinProtocol, PinUvAuthProtocol, make_protocols
from authenticator.pin_token import PinUvAuthToken
from authenticator.presence import NeedPresence, Presence
from authenticator.status import CtapError, CtapStatus
from authenticator.store.base import GLOBAL_COUNTER, Store

R = TypeVar("R")
Handler: TypeAlias = Generator[NeedPresence, Presence, R]
"""A command's algorithm: yields presence requests, returns its response."""

MASTER_KEY_STATE: Final = "device/master_key"
KEY_CACHE_SIZE: Final = 1024
_PER_CREDENTIAL: Final = CounterMode.PER_CREDENTIAL  # read per assertion: bound once


@functools.lru_cache(maxsize=256)
def rp_id_hash(rp_id: str) -> bytes:
    """SHA-256 of the RP ID; remembered, since a client keeps talking to the same few RPs."""
    return hashlib.sha256(rp_id.encode()).digest()


@dataclass
class Context:
    config: AuthenticatorConfig
    store: Store
    clock: Clock
    entropy: Entropy
    attestation: AttestationAuthority
    sealer: Sealer
    powered_up_at: float
    pending: Any = None  # the one stateful command awaiting its continuation
    extensions: dict[str, Any] = field(default_factory=dict)  # runtime state of features
    # PIN/UV runtime state (CTAP 2.1 §6.5.2): the protocols' key-agreement keys, the one
    # pinUvAuthToken, and consecutive wrong PINs since power-up (3 -> PIN_AUTH_BLOCKED).
    pin_protocols: dict[PinUvAuthProtocol, PinProtocol] = field(init=False, repr=False)
    pin_token: PinUvAuthToken = field(init=False, repr=False)
    pin_mismatches: int = 0
    # Opened keys, as a device keeps them in RAM: rebuilding an EC key object from its scalar
    # costs a point multiplication, as much as the signature itself. Lost on power cycle.
    _keys: dict[tuple[bytes, bytes], UnwrappedCredential] = field(default_factory=dict, repr=False)
    _secrets: dict[bytes, CredentialSecrets] = field(default_factory=dict, repr=False)

    def forget_keys(self) -> None:
        self._keys.clear()
        self._secrets.clear()

    def unwrap(self, rp_id_hash: bytes, credential_id: bytes) -> UnwrappedCredential | None:
        """The key inside a wrapped credential ID made by this device for this RP, if it is."""
        cached = self._keys.get((rp_id_hash, credential_id))
        if cached is not None:
            return cached
        unwrapped = unwrap_credential_id(
            self.sealer, rp_id_hash, credential_id, deterministic=self.entropy.deterministic
        )
        if unwrapped is not None:
            _remember(self._keys, (rp_id_hash, credential_id), unwrapped)
        return unwrapped

    def open_secrets(self, stored: StoredCredential) -> CredentialSecrets:
        cached = self._secrets.get(stored.credential_id)
        if cached is not None:
            return cached
        secrets = CredentialSecrets.open(
            self.sealer,
            stored.sealed_secrets,
            stored.credential_id,
            deterministic=self.entropy.deterministic,
        )
        if secrets is None:
            raise CtapError(CtapStatus.INTEGRITY_FAILURE, "a stored key failed authentication")
        _remember(self._secrets, stored.credential_id, secrets)
        return secrets

    def __post_init__(self) -> None:
        self.pin_protocols = make_protocols(self.config.pin_uv_protocols, self.entropy)
        self.pin_token = PinUvAuthToken(self.clock, self.entropy)

    @classmethod
    def load_sealer(cls, store: Store, entropy: Entropy) -> Sealer:
        master_key = store.get_state(MASTER_KEY_STATE)
        if master_key is None:
            master_key = entropy.random_bytes(32)
            store.put_state(MASTER_KEY_STATE, master_key)
        return Sealer(master_key, entropy)

    def next_sign_count(self, credential_id: bytes) -> int:
        """The counter value for a new signature, durable before it is used (WebAuthn §6.1.1)."""
        counter = self.config.counter
        if counter is _PER_CREDENTIAL:  # the default, tested first
            return self.store.next_sign_count(credential_id)
        if counter is CounterMode.GLOBAL:
            return self.store.next_sign_count(GLOBAL_COUNTER)
        return 0  # CounterMode.ZERO

    def registration_sign_count(self) -> int:
        if self.config.counter is CounterMode.GLOBAL:
            return self.store.next_sign_count(GLOBAL_COUNTER)
        return 0


K = TypeVar("K")
V = TypeVar("V")


def _remember(cache: dict[K, V], key: K, value: V) -> None:
    if len(cache) >= KEY_CACHE_SIZE:
        del cache[next(iter(cache))]  # oldest first: dicts keep insertion order
    cache[key] = value
