"""authenticatorConfig (CTAP 2.1 §6.11): enableEnterpriseAttestation, toggleAlwaysUv and
setMinPINLength (newMinPINLength, minPinLengthRPIDs, forceChangePin, and CTAP 2.2's
pinComplexityPolicy, see ``extensions.pin_complexity_policy``).

Theory of operation: when the device is protected by a PIN or built-in UV, or alwaysUv is
on, every subcommand carries a pinUvAuthParam: the token's MAC over ``32 * 0xff || 0x0d ||
subCommand || subCommandParams`` (the parameters' canonical CBOR), with the ``acfg``
permission. An unprotected device accepts the command without one (§6.11 step 2). The
settings persist in the store (``user_verification``) and authenticatorReset wipes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Final

from authenticator import cbor
from authenticator.commands import Command, ConfigKey, ConfigSubCommand, SetMinPinLengthKey
from authenticator.context import Context, Handler
from authenticator.extensions.pin_complexity_policy import enforce as enforce_pin_complexity_policy
from authenticator.extensions.pin_complexity_policy import requested_in_set_min_pin_length
from authenticator.pin_token import Permission
from authenticator.requests import optional, required
from authenticator.status import CtapError, CtapStatus
from authenticator.user_verification import (
    always_uv_enabled,
    enable_enterprise_attestation,
    enterprise_attestation_enabled,
    is_protected,
    min_pin_length,
    pin_is_set,
    pin_length,
    set_always_uv,
    set_force_pin_change,
    set_min_pin_length,
    set_min_pin_length_rp_ids,
    supported_pin_uv_protocols,
)

MESSAGE_PREFIX: Final = b"\xff" * 32 + bytes([Command.CONFIG])  # CTAP 2.1 §6.11 step 4
MAX_MIN_PIN_LENGTH: Final = 63  # a PIN is at most 63 bytes, so no longer minimum makes sense


@dataclass(frozen=True, slots=True)
class ConfigRequest:
    sub_command: int
    params: dict[Any, Any] | None = None
    pin_uv_auth_protocol: int | None = None
    pin_uv_auth_param: bytes | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, params: Mapping[Any, Any]) -> ConfigRequest:
        k = ConfigKey
        return cls(
            sub_command=required(params, k.SUB_COMMAND, int, "subCommand"),
            params=optional(params, k.SUB_COMMAND_PARAMS, dict, "subCommandParams"),
            pin_uv_auth_protocol=optional(params, k.PIN_UV_AUTH_PROTOCOL, int, "pinUvAuthProtocol"),
            pin_uv_auth_param=optional(params, k.PIN_UV_AUTH_PARAM, bytes, "pinUvAuthParam"),
        )


def authenticator_config(ctx: Context, req: ConfigRequest) -> Handler[None]:
    _authorize(ctx, req)
    config = ctx.config
    match req.sub_command:
        case ConfigSubCommand.ENABLE_ENTERPRISE_ATTESTATION if config.enterprise_attestation:
            enable_enterprise_attestation(ctx)
            return None
        case ConfigSubCommand.TOGGLE_ALWAYS_UV if config.always_uv is not None:
            set_always_uv(ctx, not always_uv_enabled(ctx))
            return None
        case ConfigSubCommand.SET_MIN_PIN_LENGTH if config.client_pin:
            _set_min_pin_length(ctx, req.params or {})
            return None
    raise CtapError(CtapStatus.INVALID_SUBCOMMAND, f"config subcommand {req.sub_command}")
    yield  # a generator, like every handler


def _authorize(ctx: Context, req: ConfigRequest) -> None:
    if not (is_protected(ctx) or always_uv_enabled(ctx)):
        return  # §6.11 step 2: nothing protects the device, so nothing to prove
    if req.pin_uv_auth_param is None:
        raise CtapError(CtapStatus.PUAT_REQUIRED, "authenticatorConfig needs a token")
    if req.pin_uv_auth_protocol is None:
        raise CtapError(CtapStatus.MISSING_PARAMETER, "pinUvAuthProtocol is missing")
    if req.pin_uv_auth_protocol not in supported_pin_uv_protocols(ctx):
        raise CtapError(CtapStatus.INVALID_PARAMETER, "unsupported pinUvAuthProtocol")
    sub_command = req.sub_command.to_bytes(1, "big") if 0 <= req.sub_command < 256 else b""
    params = cbor.encode(req.params) if req.params is not None else b""
    ctx.pin_token.authorize(
        req.pin_uv_auth_protocol,
        req.pin_uv_auth_param,
        MESSAGE_PREFIX + sub_command + params,
        Permission.ACFG,
    )


def _set_min_pin_length(ctx: Context, params: Mapping[Any, Any]) -> None:
    k = SetMinPinLengthKey
    current = min_pin_length(ctx)
    new = optional(params, k.NEW_MIN_PIN_LENGTH, int, "newMinPINLength")
    rp_ids_value = optional(params, k.MIN_PIN_LENGTH_RPIDS, list, "minPinLengthRPIDs")
    force = optional(params, k.FORCE_CHANGE_PIN, bool, "forceChangePin") or False
    complexity = requested_in_set_min_pin_length(ctx, params)  # CTAP 2.2 pinComplexityPolicy
    rp_ids: tuple[str, ...] | None = None
    if rp_ids_value is not None:
        if not all(isinstance(r, str) for r in rp_ids_value):
            raise CtapError(CtapStatus.CBOR_UNEXPECTED_TYPE, "minPinLengthRPIDs are strings")
        rp_ids = tuple(rp_ids_value)
    new = current if new is None else new
    # CTAP 2.1 §6.11.4: the minimum only grows; the RP list is bounded.
    if new < current or new > MAX_MIN_PIN_LENGTH:
        raise CtapError(CtapStatus.PIN_POLICY_VIOLATION, "minPINLength may only increase")
    if rp_ids is not None and len(rp_ids) > ctx.config.max_rpids_for_set_min_pin_length:
        raise CtapError(CtapStatus.PIN_POLICY_VIOLATION, "too many minPinLengthRPIDs")
    if force and not pin_is_set(ctx):
        raise CtapError(CtapStatus.PIN_NOT_SET, "forceChangePin without a PIN")
    set_min_pin_length(ctx, new)
    if rp_ids is not None:
        set_min_pin_length_rp_ids(ctx, rp_ids)
    if pin_is_set(ctx) and (force or pin_length(ctx) < new):
        set_force_pin_change(ctx)
    if complexity:
        enforce_pin_complexity_policy(ctx)



def enterprise_attestation(ctx: Context, requested: int | None, rp_id: str) -> bool:
    """makeCredential step 9 (CTAP 2.1 §6.1.2, §7.1): whether this registration gets an
    enterprise attestation. ``ep`` 1 is vendor-facilitated (only for the profile's
    ``enterprise_rp_ids``; other RPs get the ordinary attestation), 2 platform-managed (the
    platform vouches for the RP)."""
    if requested is None:
        return False
    if not enterprise_attestation_enabled(ctx):
        raise CtapError(CtapStatus.INVALID_PARAMETER, "enterprise attestation is not enabled")
    if requested == EnterpriseAttestation.VENDOR_FACILITATED:
        return rp_id in ctx.config.enterprise_rp_ids
    if requested == EnterpriseAttestation.PLATFORM_MANAGED:
        return True
    raise CtapError(CtapStatus.INVALID_OPTION, "enterpriseAttestation must be 1 or 2")


class EnterpriseAttestation(IntEnum):
    VENDOR_FACILITATED = 1
    PLATFORM_MANAGED = 2
