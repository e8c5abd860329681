"""pinComplexityPolicy (CTAP 2.2): a PIN complexity policy beyond minPINLength, the getInfo
fields that report it (``pinComplexityPolicy`` 0x1B, ``pinComplexityPolicyURL`` 0x1C), the
authenticatorConfig setMinPINLength parameter that turns it on (``pinComplexityPolicy`` 0x04,
§6.11.4), and the registration extension that tells authorized RPs whether it is enforced
(§12.6).

Theory of operation. A profile either has no policy (``AuthenticatorConfig.
pin_complexity_policy`` is None: no getInfo field, no extension, the config parameter is
ignored like any key a CTAP 2.1 device does not know) or has one, enforced from the factory or
not. getInfo 0x1B is then always present: true while enforced, false while merely supported.
Enforcement is persistent state: setMinPINLength with ``pinComplexityPolicy: true`` turns it
on, nothing but authenticatorReset turns it off again (as minPINLength, it only tightens).
While enforced, setPIN and changePIN refuse a new PIN that breaks a rule with
PIN_POLICY_VIOLATION, after the minPINLength check (§6.5.5.5 step 10, §6.5.5.6).

Where the spec is silent we choose, and say so:

- Turning the policy on while a PIN is set also sets forcePINChange: the device keeps only a
  hash of the PIN, so it cannot tell whether the PIN complies; the next PIN is checked.
  (minPINLength does the same when the PIN is known to be too short.)
- ``pinComplexityPolicy: false`` changes nothing; a non-boolean is CBOR_UNEXPECTED_TYPE.
- The extension answers only RPs on the minPinLengthRPIDs list (set by setMinPINLength), as
  minPinLength does, since the policy says something about the user's PIN.

The rules themselves are the vendor's (the spec names none); ``violation`` implements the
profile's ``PinComplexityPolicy``: no PIN that is one shorter unit repeated ("1111",
"1212"), no PIN that is one run up or down by one ("1234", "9876", "7890", "abcd"), and no PIN
on the blocklist, all compared case-insensitively. Reasons never quote the PIN: they end up
in logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise
from typing import Any, Final

from authenticator.commands import GetInfoKey, SetMinPinLengthKey
from authenticator.config import PinComplexityPolicy
from authenticator.context import Context
from authenticator.extensions.base import BaseExtension, CredentialView, Registration
from authenticator.requests import optional
from authenticator.status import CtapError, CtapStatus
from authenticator.user_verification import (
    min_pin_length_rp_ids,
    pin_is_set,
    set_force_pin_change,
)

ENFORCED_STATE: Final = "pin_complexity/enforced"
"""Store name of the enforcement flag; absent = the profile's ``enforced``. Reset wipes it."""

DIGITS: Final = 10  # digit-only PINs run round the keypad: "7890", "8901", "1098"


def policy(ctx: Context) -> PinComplexityPolicy | None:
    """The device's policy, if it has one: a PIN complexity policy needs a PIN."""
    config = ctx.config
    return config.pin_complexity_policy if config.client_pin else None


def enforced(ctx: Context) -> bool:
    """getInfo ``pinComplexityPolicy``: whether setPIN/changePIN apply the policy now."""
    current = policy(ctx)
    if current is None:
        return False
    raw = ctx.store.get_state(ENFORCED_STATE)
    return current.enforced if raw is None else raw == b"\x01"


def enforce(ctx: Context) -> None:
    """Turn the policy on (setMinPINLength ``pinComplexityPolicy: true``). A PIN set before
    may break the policy and only its hash is kept, so the user must choose a new one."""
    if policy(ctx) is None or enforced(ctx):
        return
    ctx.store.put_state(ENFORCED_STATE, b"\x01")
    if pin_is_set(ctx):
        set_force_pin_change(ctx)


def violation(rules: PinComplexityPolicy, pin: str) -> str | None:
    """Why ``pin`` breaks ``rules``, or None when it complies. Never quotes the PIN."""
    text = pin.casefold()
    if rules.reject_repeats and _is_repeat(text):
        return "the PIN repeats one pattern"
    if rules.reject_sequences and _is_sequence(text):
        return "the PIN is a sequence"
    if text in {entry.casefold() for entry in rules.blocklist}:
        return "the PIN is a well-known one"
    return None


def _is_repeat(text: str) -> bool:
    """One shorter unit repeated: "1111", "1212", "123123", "abab"."""
    size = len(text)
    return any(size % unit == 0 and text == text[:unit] * (size // unit) for unit in range(1, size))


def _is_sequence(text: str) -> bool:
    """One run of code points up or down by one: "1234", "4321", "abcd"; digits wrap round
    ("7890", "1098")."""
    if len(text) < 2:
        return False
    steps = {ord(b) - ord(a) for a, b in pairwise(text)}
    if text.isdigit() and text.isascii():
        steps = {step % DIGITS for step in steps}
        return steps in ({1}, {DIGITS - 1})
    return steps in ({1}, {-1})


def require_complex_pin(ctx: Context, pin: str) -> None:
    """setPIN/changePIN: a new PIN must comply while the policy is enforced."""
    current = policy(ctx)
    if current is None or not enforced(ctx):
        return
    why = violation(current, pin)
    if why is not None:
        raise CtapError(CtapStatus.PIN_POLICY_VIOLATION, why)


def requested_in_set_min_pin_length(ctx: Context, params: Mapping[Any, Any]) -> bool:
    """Whether setMinPINLength asks to enforce the policy (its ``pinComplexityPolicy``
    parameter), checked before the command changes anything. A device without a policy
    ignores the key, as a CTAP 2.1 device ignores keys it does not know."""
    if policy(ctx) is None:
        return False
    value = optional(params, SetMinPinLengthKey.PIN_COMPLEXITY_POLICY, bool, "pinComplexityPolicy")
    return value is True


def advertise(ctx: Context, info: dict[int, Any]) -> None:
    """getInfo 0x1B (present exactly when a policy exists) and 0x1C (its URL, as bytes)."""
    current = policy(ctx)
    if current is None:
        return
    info[GetInfoKey.PIN_COMPLEXITY_POLICY] = enforced(ctx)
    if current.url is not None:
        info[GetInfoKey.PIN_COMPLEXITY_POLICY_URL] = current.url.encode()


class PinComplexityPolicyExtension(BaseExtension):
    """§12.6: the input is ``true``; the output is getInfo's ``pinComplexityPolicy``, for RPs
    on the minPinLengthRPIDs list only."""

    name = "pinComplexityPolicy"

    def available(self, ctx: Context) -> bool:
        # The RP list comes from authenticatorConfig setMinPINLength (CTAP 2.1 §6.11.4).
        return policy(ctx) is not None and ctx.config.authenticator_config

    def parse_registration(self, ctx: Context, value: Any, *, rk: bool) -> bool | None:
        if not isinstance(value, bool):
            raise CtapError(
                CtapStatus.CBOR_UNEXPECTED_TYPE, "pinComplexityPolicy must be a boolean"
            )
        return True if value else None

    def registration_output(
        self, reg: Registration, value: Any, credential: CredentialView
    ) -> None:
        if reg.rp_id in min_pin_length_rp_ids(reg.ctx):
            reg.outputs[self.name] = enforced(reg.ctx)
