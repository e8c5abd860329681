"""The pinUvAuthToken and its state (CTAP 2.1 §6.5.2.1 "pinUvAuthToken state", §6.5.5.7
permissions), and CTAP 2.2's persistentPinUvAuthToken, the holder of ``pcmr``.

Theory of operation: the device has one token, a 32-byte random value regenerated at power-up
and whenever clientPIN issues a token (``resetPinUvAuthToken``), after a PIN change and on
authenticatorReset. Issuing it (``begin_using``) records the permissions, an optional
permissions RP ID, the protocol it was sent under, and the userPresent/userVerified flags.
The token then stops being usable ("not in use") when

* it was not used within ``INITIAL_USAGE_TIME_LIMIT`` seconds of issuance,
* ``MAX_USAGE_TIME_PERIOD`` seconds have passed since issuance, or
* ``stop()`` is called (a new token is issued, a PIN change, reset).

userPresent also lapses after ``USER_PRESENT_TIME_LIMIT``. Time comes from the injected clock.

How another command checks a token (the API extensions and other commands use)::

    from authenticator.pin_token import Permission

    # pinUvAuthParam = authenticate(token, message); message is command-specific
    ctx.pin_token.authorize(
        protocol,            # the request's pinUvAuthProtocol (int)
        pin_uv_auth_param,   # the request's pinUvAuthParam (bytes)
        message,             # e.g. 32*0xff || 0x0c || offset for a largeBlobs write
        Permission.LBW,      # the permission the command needs
        rp_id=None,          # or the RP the operation concerns (checked against the binding)
    )                        # raises CtapError(PIN_AUTH_INVALID) on any mismatch

    ctx.pin_token.user_verified   # the token's userVerified flag (False once not in use)
    ctx.pin_token.user_present    # the token's userPresent flag

``authorize`` is ``verify`` (protocol, MAC, in use) followed by ``require_permission``;
each can be called alone. Every failure is ``PIN_AUTH_INVALID``, as the spec says for each
command, so a platform learns nothing about which check failed.

The persistentPinUvAuthToken (CTAP 2.2 §6.5.5.7.2 step 12, §6.5.5.7.3 step 11) is a second,
separate token: asking for exactly ``pcmr`` assigns that permission to it and returns it,
leaving the pinUvAuthToken alone. It has no timers, no RP ID and no flags, and it is device
state, sealed in the store (``PERSISTENT_TOKEN_STATE``), so it survives power cycles. Asking
again returns the same value. ``resetPersistentPinUvAuthToken`` (changePIN, setPIN,
authenticatorReset's wipe) deletes the record: the next grant makes a new random value.
Only the read-only credentialManagement subcommands accept it (``authorize_persistent``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntFlag
from typing import TYPE_CHECKING, Final

from authenticator.clock import Clock
from authenticator.keys import Entropy, Sealer
from authenticator.pin_protocol import PinUvAuthProtocol, verify
from authenticator.status import CtapError, CtapStatus

if TYPE_CHECKING:
    from authenticator.store.base import Store

TOKEN_SIZE: Final = 32  # CTAP 2.1 §6.5.2.1: 32 bytes for both protocols
INITIAL_USAGE_TIME_LIMIT: Final = 30.0  # §6.5.2.1: unused for this long -> stop using
USER_PRESENT_TIME_LIMIT: Final = 30.0  # §6.5.2.1: userPresent lapses after this
MAX_USAGE_TIME_PERIOD: Final = 600.0  # §6.5.2.1: 10 minutes, however often it is used


class Permission(IntFlag):
    """pinUvAuthToken permissions (CTAP 2.1 §6.5.5.7, CTAP 2.2 for PCMR)."""

    MC = 0x01  # makeCredential
    GA = 0x02  # getAssertion
    CM = 0x04  # credentialManagement
    BE = 0x08  # bioEnrollment
    LBW = 0x10  # largeBlobWrite
    ACFG = 0x20  # authenticatorConfig
    PCMR = 0x40  # persistentCredentialManagementReadOnly (CTAP 2.2)


ALL_PERMISSIONS: Final = Permission(sum(Permission))
"""Every defined permission; other bits in a request are ignored (CTAP 2.1 §6.5.5.7.2)."""


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What a token was issued with (for tests and diagnostics; holds no secret)."""

    permissions: Permission
    rp_id: str | None
    protocol: PinUvAuthProtocol


class PinUvAuthToken:
    """The one pinUvAuthToken of a powered-up device. Runtime state: lost on power cycle."""

    def __init__(self, clock: Clock, entropy: Entropy) -> None:
        self._clock = clock
        self._entropy = entropy
        self._value = entropy.random_bytes(TOKEN_SIZE)
        self._in_use = False
        self._permissions = Permission(0)
        self._rp_id: str | None = None
        self._protocol = PinUvAuthProtocol.TWO
        self._issued_at = 0.0
        self._used = False
        self._user_present = False
        self._user_verified = False

    def __repr__(self) -> str:
        grant = self.grant
        return f"PinUvAuthToken(<value hidden>, {grant!r})"

    # -- issuing (clientPIN) --------------------------------------------------------------

    @property
    def value(self) -> bytes:
        """The secret; only clientPIN reads it, to send it encrypted to the platform."""
        return self._value

    def reset(self) -> None:
        """``resetPinUvAuthToken``: a new random value; any issued token stops working."""
        self._value = self._entropy.random_bytes(TOKEN_SIZE)
        self.stop()

    def begin_using(
        self,
        protocol: PinUvAuthProtocol,
        permissions: Permission,
        rp_id: str | None,
        *,
        user_present: bool,
    ) -> None:
        """``beginUsingPinUvAuthToken``: the token was just earned with a PIN or UV."""
        self._in_use = True
        self._protocol = protocol
        self._permissions = permissions
        self._rp_id = rp_id
        self._issued_at = self._clock.now()
        self._used = False
        self._user_present = user_present
        self._user_verified = True

    def stop(self) -> None:
        """``stopUsingPinUvAuthToken``."""
        self._in_use = False
        self._permissions = Permission(0)
        self._rp_id = None
        self._user_present = False
        self._user_verified = False

    # -- state ----------------------------------------------------------------------------

    @property
    def in_use(self) -> bool:
        """Applies the usage timers (``pinUvAuthTokenUsageTimerObserver``) first."""
        if not self._in_use:
            return False
        age = self._clock.now() - self._issued_at
        if age > MAX_USAGE_TIME_PERIOD or (not self._used and age > INITIAL_USAGE_TIME_LIMIT):
            self.stop()
            return False
        if age > USER_PRESENT_TIME_LIMIT:
            self._user_present = False
        return True

    @property
    def user_present(self) -> bool:
        """``getUserPresentFlagValue``."""
        return self.in_use and self._user_present

    @property
    def user_verified(self) -> bool:
        """``getUserVerifiedFlagValue``."""
        return self.in_use and self._user_verified

    @property
    def grant(self) -> TokenGrant | None:
        if not self.in_use:
            return None
        return TokenGrant(self._permissions, self._rp_id, self._protocol)

    @property
    def rp_id(self) -> str | None:
        """The permissions RP ID, if the token is bound to one."""
        return self._rp_id if self.in_use else None

    def clear_user_present(self) -> None:
        self._user_present = False

    def clear_user_verified(self) -> None:
        self._user_verified = False

    def clear_permissions_except_lbw(self) -> None:
        """CTAP 2.1 §6.1.2 step 14 / §6.2.2 step 9: after a ceremony the token keeps only
        ``lbw``, so a platform can still write the credential's large blob."""
        self._permissions &= Permission.LBW

    # -- checking -------------------------------------------------------------------------

    def verify(self, protocol: int | None, message: bytes, param: bytes | None) -> None:
        """The pinUvAuthParam is this token's MAC of ``message`` under ``protocol``."""
        if (
            protocol != self._protocol
            or param is None
            or not self.in_use
            or not verify(self._protocol, self._value, message, param)
        ):
            raise CtapError(CtapStatus.PIN_AUTH_INVALID, "pinUvAuthParam does not verify")
        self._used = True

    def require_permission(
        self, permission: Permission, rp_id: str | None = None, *, bind: bool = False
    ) -> None:
        """The token has ``permission`` (any of the bits, for a combined mask) and, if it is
        bound to an RP, that RP is ``rp_id``. ``bind=True`` binds an unbound token to
        ``rp_id`` (makeCredential/getAssertion, §6.1.2 step 11.5)."""
        if not self.in_use or not self._permissions & permission:
            raise CtapError(CtapStatus.PIN_AUTH_INVALID, f"token lacks {permission!r}")
        if self._rp_id is not None and rp_id is not None and self._rp_id != rp_id:
            raise CtapError(CtapStatus.PIN_AUTH_INVALID, "token is bound to another RP ID")
        if bind and self._rp_id is None and rp_id is not None:
            self._rp_id = rp_id

    def authorize(
        self,
        protocol: int | None,
        param: bytes | None,
        message: bytes,
        permission: Permission,
        rp_id: str | None = None,
        *,
        bind: bool = False,
    ) -> None:
        """``verify`` then ``require_permission``; the whole check most commands need."""
        self.verify(protocol, message, param)
        self.require_permission(permission, rp_id, bind=bind)


# -- the persistentPinUvAuthToken (CTAP 2.2) ------------------------------------------------

PERSISTENT_TOKEN_STATE: Final = "pin/persistent_token"  # noqa: S105 - a store key, not a secret
"""Sealed ``permissions (1 byte) || token (32 bytes)``; no record is the state right after
``resetPersistentPinUvAuthToken``: a value nobody was given, with no permissions."""
_PERSISTENT_TOKEN_AAD: Final = PERSISTENT_TOKEN_STATE.encode()


@dataclass(frozen=True, slots=True)
class PersistentToken:
    """The persistentPinUvAuthToken as stored."""

    value: bytes = field(repr=False)
    permissions: Permission

    @classmethod
    def load(cls, store: Store, sealer: Sealer) -> PersistentToken | None:
        sealed = store.get_state(PERSISTENT_TOKEN_STATE)
        if sealed is None:
            return None
        record = sealer.open(sealed, _PERSISTENT_TOKEN_AAD)
        if record is None or len(record) != 1 + TOKEN_SIZE:
            return None  # not sealed by this device key: never a grant
        return cls(record[1:], Permission(record[0]) & ALL_PERMISSIONS)


def grant_persistent_token(
    store: Store, sealer: Sealer, entropy: Entropy, permissions: Permission
) -> bytes:
    """Assign ``permissions`` to the persistentPinUvAuthToken and return its value: the same
    value as before unless it was reset since (CTAP 2.2 §6.5.5.7.2 step 12.1)."""
    current = PersistentToken.load(store, sealer)
    held = Permission(0) if current is None else current.permissions
    value = entropy.random_bytes(TOKEN_SIZE) if current is None else current.value
    if current is None or held | permissions != held:
        record = bytes([int(held | permissions)]) + value
        store.put_state(PERSISTENT_TOKEN_STATE, sealer.seal(record, _PERSISTENT_TOKEN_AAD))
    return value


def reset_persistent_token(store: Store) -> None:
    """``resetPersistentPinUvAuthToken``: the token stops working and loses its permissions."""
    store.put_state(PERSISTENT_TOKEN_STATE, None)


def authorize_persistent(
    store: Store,
    sealer: Sealer,
    protocol: int | None,
    param: bytes | None,
    message: bytes,
    permission: Permission,
) -> None:
    """The pinUvAuthParam is the persistentPinUvAuthToken's MAC of ``message`` under the
    request's ``protocol``, and that token holds ``permission``; else PIN_AUTH_INVALID."""
    token = PersistentToken.load(store, sealer)
    version = next((p for p in PinUvAuthProtocol if p == protocol), None)
    if (
        token is None
        or version is None
        or param is None
        or not token.permissions & permission
        or not verify(version, token.value, message, param)
    ):
        raise CtapError(CtapStatus.PIN_AUTH_INVALID, "pinUvAuthParam does not verify")
