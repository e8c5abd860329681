"""credProtect (CTAP 2.1 §12.1): a per-credential policy on when the credential may be used
without user verification.

Enforcement lives in the ceremonies, through ``permits``: getAssertion step 7 drops
credentials the policy hides (§6.2.2), and makeCredential step 12 ignores an excluded
credential whose level is userVerificationRequired unless the user was verified (§6.1.2), so
a platform cannot probe for it without UV.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Final

from authenticator.context import Context
from authenticator.extensions.base import (
    Authentication,
    BaseExtension,
    CredentialView,
    Registration,
)
from authenticator.status import CtapError, CtapStatus


class CredProtect(IntEnum):
    """The policy levels (CTAP 2.1 §12.1 "credProtect" values)."""

    UV_OPTIONAL = 0x01  # userVerificationOptional
    UV_OPTIONAL_WITH_CREDENTIAL_ID_LIST = 0x02  # userVerificationOptionalWithCredentialIDList
    UV_REQUIRED = 0x03  # userVerificationRequired


# Plain ints for ``permits``, which runs per credential per assertion (an IntEnum class
# attribute read costs ~70 ns more than a module global).
_WITH_ID_LIST: Final = int(CredProtect.UV_OPTIONAL_WITH_CREDENTIAL_ID_LIST)
_UV_REQUIRED: Final = int(CredProtect.UV_REQUIRED)


def permits(level: int, *, user_verified: bool, allow_list: bool) -> bool:
    """Whether a credential with this policy may answer (CTAP 2.1 §6.2.2 step 7)."""
    if user_verified:
        return True
    if level >= _UV_REQUIRED:
        return False
    return not (level == _WITH_ID_LIST and not allow_list)


class CredProtectExtension(BaseExtension):
    name = "credProtect"

    def parse_registration(self, ctx: Context, value: Any, *, rk: bool) -> CredProtect:
        if not isinstance(value, int) or isinstance(value, bool):
            raise CtapError(CtapStatus.CBOR_UNEXPECTED_TYPE, "credProtect must be an integer")
        try:
            return CredProtect(value)
        except ValueError:
            # The spec names no code; silently weaker protection would surprise the RP.
            raise CtapError(CtapStatus.INVALID_PARAMETER, "unknown credProtect level") from None

    def prepare_registration(self, reg: Registration, value: Any) -> None:
        reg.cred_protect = int(value)

    def registration_output(
        self, reg: Registration, value: Any, credential: CredentialView
    ) -> None:
        reg.outputs[self.name] = credential.cred_protect

    def authentication_output(
        self, auth: Authentication, value: Any, credential: CredentialView
    ) -> None:
        return None  # enforced by getAssertion itself; no assertion input or output
