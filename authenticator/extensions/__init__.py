"""The extension registry (CTAP 2.1 §12): every extension this authenticator implements,
one module each behind the ``Extension`` protocol.

The capability profile (``AuthenticatorConfig.extensions``) names the enabled ones; getInfo's
``extensions`` list and the ceremonies both come from ``enabled()``, so what is advertised is
exactly what is processed. Inputs for extensions that are unknown or disabled are ignored
(CTAP 2.1 §6.1.2 step 15, WebAuthn §9).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from authenticator.context import Context
from authenticator.extensions.base import (
    Authentication,
    BaseExtension,
    CredentialView,
    Extension,
    Registration,
)
from authenticator.extensions.cred_blob import CredBlobExtension
from authenticator.extensions.cred_protect import CredProtect, CredProtectExtension, permits
from authenticator.extensions.hmac_secret import HmacSecretExtension, HmacSecretMcExtension
from authenticator.extensions.large_blob_key import LargeBlobKeyExtension
from authenticator.extensions.min_pin_length import MinPinLengthExtension
from authenticator.extensions.pin_complexity_policy import PinComplexityPolicyExtension
from authenticator.extensions.third_party_payment import ThirdPartyPaymentExtension
from authenticator.status import CtapError, CtapStatus

__all__ = [
    "REGISTRY",
    "Authentication",
    "BaseExtension",
    "CredProtect",
    "CredentialView",
    "Extension",
    "ParsedInputs",
    "Registration",
    "advertised",
    "authentication_outputs",
    "enabled",
    "parse_authentication",
    "parse_registration",
    "permits",
    "prepare_registration",
    "registration_outputs",
]

REGISTRY: Final[dict[str, Extension]] = {
    extension.name: extension
    for extension in (
        # Order matters where one reads another's state: hmac-secret before hmac-secret-mc.
        CredProtectExtension(),
        HmacSecretExtension(),
        HmacSecretMcExtension(),
        CredBlobExtension(),
        LargeBlobKeyExtension(),
        MinPinLengthExtension(),
        ThirdPartyPaymentExtension(),
        PinComplexityPolicyExtension(),
    )
}
"""Every implemented extension by its CTAP identifier."""


@dataclass(frozen=True, slots=True)
class ParsedInputs:
    """The enabled extensions a request asked for, with their parsed inputs, in registry
    order. Parsed inputs may hold runtime secrets (hmac-secret salts): never logged."""

    entries: tuple[tuple[Extension, Any], ...] = ()

    def __repr__(self) -> str:
        return f"ParsedInputs({[extension.name for extension, _ in self.entries]})"

    def __bool__(self) -> bool:
        return bool(self.entries)


def enabled(ctx: Context) -> list[Extension]:
    """The extensions this device processes: enabled in the profile and available."""
    return [
        extension
        for name, extension in REGISTRY.items()
        if name in ctx.config.extensions and extension.available(ctx)
    ]


def advertised(ctx: Context) -> list[str]:
    """getInfo's ``extensions`` list (CTAP 2.1 §6.4)."""
    return [extension.name for extension in enabled(ctx) if extension.advertised]


def _check_names(inputs: dict[Any, Any]) -> None:
    for name in inputs:
        if not isinstance(name, str):
            raise CtapError(CtapStatus.CBOR_UNEXPECTED_TYPE, "extension identifiers are text")


_NONE: Final = ParsedInputs(())


def parse_registration(ctx: Context, inputs: dict[Any, Any], *, rk: bool) -> ParsedInputs:
    if not inputs:
        return _NONE  # the common case: skip building the enabled list
    _check_names(inputs)
    entries = []
    for extension in enabled(ctx):
        if extension.name in inputs:
            value = extension.parse_registration(ctx, inputs[extension.name], rk=rk)
            if value is not None:
                entries.append((extension, value))
    return ParsedInputs(tuple(entries))


def prepare_registration(reg: Registration, parsed: ParsedInputs) -> None:
    for extension, value in parsed.entries:
        extension.prepare_registration(reg, value)


def registration_outputs(reg: Registration, parsed: ParsedInputs, view: CredentialView) -> None:
    for extension, value in parsed.entries:
        extension.registration_output(reg, value, view)


def parse_authentication(ctx: Context, inputs: dict[Any, Any], *, up: bool) -> ParsedInputs:
    if not inputs:
        return _NONE
    _check_names(inputs)
    entries = []
    for extension in enabled(ctx):
        if extension.name in inputs:
            value = extension.parse_authentication(ctx, inputs[extension.name], up=up)
            if value is not None:
                entries.append((extension, value))
    return ParsedInputs(tuple(entries))


def authentication_outputs(
    auth: Authentication, parsed: ParsedInputs, view: CredentialView
) -> None:
    for extension, value in parsed.entries:
        extension.authentication_output(auth, value, view)
