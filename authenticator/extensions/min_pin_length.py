"""minPinLength (CTAP 2.1 §12.4): tells RPs the authenticator's current minimum PIN length,
but only RPs on the list set by authenticatorConfig setMinPINLength (``minPinLengthRPIDs``).

The list and the length are clientPIN/config state (``user_verification.py``); this module
only reads them. Not listed in getInfo's ``extensions``: clients detect it by the
``setMinPINLength`` option (as python-fido2 does).
"""

from __future__ import annotations

from typing import Any

from authenticator.context import Context
from authenticator.extensions.base import BaseExtension, CredentialView, Registration
from authenticator.status import CtapError, CtapStatus
from authenticator.user_verification import min_pin_length, min_pin_length_rp_ids


class MinPinLengthExtension(BaseExtension):
    name = "minPinLength"
    advertised = False

    def available(self, ctx: Context) -> bool:
        # The RP list is set with authenticatorConfig setMinPINLength (CTAP 2.1 §6.11.4).
        return ctx.config.authenticator_config and ctx.config.client_pin

    def parse_registration(self, ctx: Context, value: Any, *, rk: bool) -> bool | None:
        if not isinstance(value, bool):
            raise CtapError(CtapStatus.CBOR_UNEXPECTED_TYPE, "minPinLength must be a boolean")
        return True if value else None

    def registration_output(
        self, reg: Registration, value: Any, credential: CredentialView
    ) -> None:
        # §12.4: RPs not on the list get no output at all.
        if reg.rp_id in min_pin_length_rp_ids(reg.ctx):
            reg.outputs[self.name] = min_pin_length(reg.ctx)
