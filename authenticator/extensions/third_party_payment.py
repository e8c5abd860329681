"""thirdPartyPayment (CTAP 2.2): marks a credential as usable for Secure Payment Confirmation
initiated by a party other than the RP, and reports that mark in assertions."""

from __future__ import annotations

from typing import Any, Final

from authenticator.context import Context
from authenticator.extensions.base import (
    Authentication,
    BaseExtension,
    CredentialView,
    Registration,
)
from authenticator.status import CtapError, CtapStatus

EXTRA_KEY: Final = "tpp"  # short: it may live inside a wrapped credential ID


def _parse_bool(value: Any) -> bool | None:
    if not isinstance(value, bool):
        raise CtapError(CtapStatus.CBOR_UNEXPECTED_TYPE, "thirdPartyPayment must be a boolean")
    return True if value else None


class ThirdPartyPaymentExtension(BaseExtension):
    name = "thirdPartyPayment"

    def parse_registration(self, ctx: Context, value: Any, *, rk: bool) -> bool | None:
        return _parse_bool(value)

    def prepare_registration(self, reg: Registration, value: Any) -> None:
        reg.extra[EXTRA_KEY] = True

    def registration_output(
        self, reg: Registration, value: Any, credential: CredentialView
    ) -> None:
        reg.outputs[self.name] = True

    def parse_authentication(self, ctx: Context, value: Any, *, up: bool) -> bool | None:
        return _parse_bool(value)

    def authentication_output(
        self, auth: Authentication, value: Any, credential: CredentialView
    ) -> None:
        auth.outputs[self.name] = credential.extra.get(EXTRA_KEY) is True
