"""authenticatorClientPIN (CTAP 2.1 §6.5.5): getPINRetries, getKeyAgreement, setPIN,
changePIN, getPinToken, getPinUvAuthTokenUsingPinWithPermissions,
getPinUvAuthTokenUsingUvWithPermissions and getUVRetries.

Theory of operation: the PIN itself is never stored, only LEFT(SHA-256(PIN), 16), sealed
(``user_verification.store_pin``). PIN retries (8 in total) are persistent and decremented
*before* a PIN hash is compared, so pulling the plug mid-check still costs a retry; a correct
PIN restores them. Consecutive wrong PINs since power-up are runtime state
(``Context.pin_mismatches``): after 3, every PIN check answers PIN_AUTH_BLOCKED until a power
cycle; at 0 retries, PIN_BLOCKED until authenticatorReset. A wrong PIN also regenerates the
protocol's key-agreement key. Every token issued replaces the previous one
(``resetPinUvAuthToken``), and so does a PIN change.

PIN rules (§6.5.5.5): newPinEnc decrypts to exactly 64 bytes; the PIN is those bytes up to
the first zero, 1 to 63 bytes of UTF-8, at least minPINLength code points.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from authenticator.commands import ClientPinKey, ClientPinResponseKey, ClientPinSubCommand
from authenticator.context import Context, Handler
from authenticator.pin_protocol import PinProtocol, PinUvAuthProtocol, SharedSecret
from authenticator.pin_token import Permission
from authenticator.requests import optional, required
from authenticator.status import CtapError, CtapStatus
from authenticator.user_verification import (
    built_in_uv_configured,
    force_pin_change,
    min_pin_length,
    perform_built_in_uv,
    pin_is_set,
    pin_retries,
    set_pin_retries,
    set_uv_retries,
    store_pin,
    stored_pin_hash,
    token_permissions_supported,
    uv_retries,
)

PADDED_PIN_LENGTH: Final = 64  # CTAP 2.1 §6.5.5.5: newPinEnc carries exactly 64 bytes
MAX_PIN_BYTES: Final = 63
PIN_HASH_LENGTH: Final = 16
MAX_CONSECUTIVE_MISMATCHES: Final = 3  # then PIN_AUTH_BLOCKED until a power cycle


@dataclass(frozen=True, slots=True)
class ClientPinRequest:
    sub_command: int
    pin_uv_auth_protocol: int | None = None
    key_agreement: dict[Any, Any] | None = field(default=None, repr=False)
    pin_uv_auth_param: bytes | None = field(default=None, repr=False)
    new_pin_enc: bytes | None = field(default=None, repr=False)
    pin_hash_enc: bytes | None = field(default=None, repr=False)
    permissions: int | None = None
    rp_id: str | None = None

    @classmethod
    def parse(cls, params: Mapping[Any, Any]) -> ClientPinRequest:
        k = ClientPinKey
        return cls(
            sub_command=required(params, k.SUB_COMMAND, int, "subCommand"),
            pin_uv_auth_protocol=optional(params, k.PIN_UV_AUTH_PROTOCOL, int, "pinUvAuthProtocol"),
            key_agreement=optional(params, k.KEY_AGREEMENT, dict, "keyAgreement"),
            pin_uv_auth_param=optional(params, k.PIN_UV_AUTH_PARAM, bytes, "pinUvAuthParam"),
            new_pin_enc=optional(params, k.NEW_PIN_ENC, bytes, "newPinEnc"),
            pin_hash_enc=optional(params, k.PIN_HASH_ENC, bytes, "pinHashEnc"),
            permissions=optional(params, k.PERMISSIONS, int, "permissions"),
            rp_id=optional(params, k.RP_ID, str, "rpId"),
        )


def client_pin(ctx: Context, req: ClientPinRequest) -> Handler[dict[int, Any] | None]:
    sub = ClientPinSubCommand
    config = ctx.config
    match req.sub_command:
        case sub.GET_PIN_RETRIES if config.client_pin:
            return {
                ClientPinResponseKey.PIN_RETRIES: pin_retries(ctx),
                ClientPinResponseKey.POWER_CYCLE_STATE: ctx.pin_mismatches
                >= MAX_CONSECUTIVE_MISMATCHES,
            }
        case sub.GET_KEY_AGREEMENT:
            protocol = _protocol(ctx, req)
            return {ClientPinResponseKey.KEY_AGREEMENT: protocol.public_cose_key()}
        case sub.SET_PIN if config.client_pin:
            _set_pin(ctx, req)
            return None
        case sub.CHANGE_PIN if config.client_pin:
            _change_pin(ctx, req)
            return None
        case sub.GET_PIN_TOKEN if config.client_pin:
            return _get_pin_token(ctx, req, None)
        case sub.GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS if (
            config.client_pin and config.pin_uv_auth_token
        ):
            return _get_pin_token(ctx, req, _permissions(ctx, req))
        case sub.GET_PIN_UV_AUTH_TOKEN_USING_UV_WITH_PERMISSIONS if (
            config.built_in_uv and config.pin_uv_auth_token
        ):
            return (yield from _get_uv_token(ctx, req))
        case sub.GET_UV_RETRIES if config.built_in_uv:
            return {ClientPinResponseKey.UV_RETRIES: uv_retries(ctx)}
    raise CtapError(CtapStatus.INVALID_SUBCOMMAND, f"clientPIN subcommand {req.sub_command}")


def _protocol(ctx: Context, req: ClientPinRequest) -> PinProtocol:
    if req.pin_uv_auth_protocol is None:
        raise CtapError(CtapStatus.MISSING_PARAMETER, "pinUvAuthProtocol is missing")
    try:
        return ctx.pin_protocols[PinUvAuthProtocol(req.pin_uv_auth_protocol)]
    except (ValueError, KeyError):
        raise CtapError(CtapStatus.INVALID_PARAMETER, "unsupported pinUvAuthProtocol") from None


def _need(value: Any, what: str) -> Any:
    if value is None:
        raise CtapError(CtapStatus.MISSING_PARAMETER, f"{what} is missing")
    return value


def _new_pin(ctx: Context, secret: SharedSecret, new_pin_enc: bytes) -> tuple[bytes, int]:
    """The new PIN's hash and length in code points, after the PIN rules (§6.5.5.5 6-9)."""
    padded = secret.decrypt(new_pin_enc)
    if padded is None or len(padded) != PADDED_PIN_LENGTH:
        raise CtapError(CtapStatus.INVALID_PARAMETER, "newPinEnc is not 64 padded bytes")
    pin = padded.split(b"\x00", 1)[0]
    if len(pin) > MAX_PIN_BYTES:
        raise CtapError(CtapStatus.PIN_POLICY_VIOLATION, "the PIN is longer than 63 bytes")
    try:
        code_points = len(pin.decode("utf-8"))
    except UnicodeDecodeError:
        # The spec says the PIN is UTF-8 and names no code; a policy violation says why.
        raise CtapError(CtapStatus.PIN_POLICY_VIOLATION, "the PIN is not UTF-8") from None
    if code_points < min_pin_length(ctx):
        raise CtapError(CtapStatus.PIN_POLICY_VIOLATION, "the PIN is shorter than minPINLength")
    return hashlib.sha256(pin).digest()[:PIN_HASH_LENGTH], code_points


def _set_pin(ctx: Context, req: ClientPinRequest) -> None:
    protocol = _protocol(ctx, req)
    key_agreement = _need(req.key_agreement, "keyAgreement")
    param = _need(req.pin_uv_auth_param, "pinUvAuthParam")
    new_pin_enc = _need(req.new_pin_enc, "newPinEnc")
    if pin_is_set(ctx):
        # CTAP 2.1 §6.5.5.5 step 3: a PIN already set -> PIN_AUTH_INVALID (changePIN instead).
        raise CtapError(CtapStatus.PIN_AUTH_INVALID, "a PIN is already set")
    secret = protocol.decapsulate(key_agreement)
    if not secret.verify(new_pin_enc, param):
        raise CtapError(CtapStatus.PIN_AUTH_INVALID, "pinUvAuthParam does not verify")
    pin_hash, code_points = _new_pin(ctx, secret, new_pin_enc)
    store_pin(ctx, pin_hash, code_points)


def _check_pin_hash(
    ctx: Context, protocol: PinProtocol, secret: SharedSecret, pin_hash_enc: bytes
) -> bytes:
    """Compare pinHashEnc with the stored hash (§6.5.5.7.1 steps 5-8); return the hash."""
    if ctx.pin_mismatches >= MAX_CONSECUTIVE_MISMATCHES:
        raise CtapError(CtapStatus.PIN_AUTH_BLOCKED, "3 wrong PINs: power cycle the device")
    stored = stored_pin_hash(ctx)
    if stored is None:
        raise CtapError(CtapStatus.PIN_NOT_SET, "no PIN is set")
    retries = pin_retries(ctx) - 1
    set_pin_retries(ctx, retries)  # durable before the comparison
    presented = secret.decrypt(pin_hash_enc)
    if presented is None or not hmac.compare_digest(presented, stored):
        protocol.regenerate()
        ctx.pin_mismatches += 1
        if retries <= 0:
            raise CtapError(CtapStatus.PIN_BLOCKED, "no PIN retries left")
        if ctx.pin_mismatches >= MAX_CONSECUTIVE_MISMATCHES:
            raise CtapError(CtapStatus.PIN_AUTH_BLOCKED, "3 wrong PINs: power cycle the device")
        raise CtapError(CtapStatus.PIN_INVALID, "wrong PIN")
    ctx.pin_mismatches = 0
    set_pin_retries(ctx, ctx.config.pin_retries)
    if ctx.config.built_in_uv:
        set_uv_retries(ctx, ctx.config.uv_retries)  # the PIN unblocks built-in UV too
    return stored


def _change_pin(ctx: Context, req: ClientPinRequest) -> None:
    protocol = _protocol(ctx, req)
    key_agreement = _need(req.key_agreement, "keyAgreement")
    pin_hash_enc = _need(req.pin_hash_enc, "pinHashEnc")
    new_pin_enc = _need(req.new_pin_enc, "newPinEnc")
    param = _need(req.pin_uv_auth_param, "pinUvAuthParam")
    if not pin_is_set(ctx):
        raise CtapError(CtapStatus.PIN_NOT_SET, "no PIN is set")
    if pin_retries(ctx) <= 0:
        raise CtapError(CtapStatus.PIN_BLOCKED, "no PIN retries left")
    secret = protocol.decapsulate(key_agreement)
    if not secret.verify(new_pin_enc + pin_hash_enc, param):
        raise CtapError(CtapStatus.PIN_AUTH_INVALID, "pinUvAuthParam does not verify")
    old_hash = _check_pin_hash(ctx, protocol, secret, pin_hash_enc)
    new_hash, code_points = _new_pin(ctx, secret, new_pin_enc)
    if force_pin_change(ctx) and hmac.compare_digest(new_hash, old_hash):
        # CTAP 2.1 §6.5.5.6: a forced change must change the PIN.
        raise CtapError(CtapStatus.PIN_POLICY_VIOLATION, "the new PIN equals the old one")
    store_pin(ctx, new_hash, code_points)
    ctx.pin_token.reset()  # resetPinUvAuthToken: tokens from the old PIN stop working


def _permissions(ctx: Context, req: ClientPinRequest) -> tuple[Permission, str | None]:
    """Checks shared by both "WithPermissions" subcommands (§6.5.5.7.2 steps 3-5)."""
    permissions = _need(req.permissions, "permissions")
    if permissions == 0:
        raise CtapError(CtapStatus.INVALID_PARAMETER, "permissions is zero")
    if permissions < 0 or permissions & ~int(token_permissions_supported(ctx)):
        raise CtapError(CtapStatus.UNAUTHORIZED_PERMISSION, "a permission is not supported")
    granted = Permission(permissions)
    if granted & (Permission.MC | Permission.GA) and req.rp_id is None:
        raise CtapError(CtapStatus.MISSING_PARAMETER, "rpId is required for mc and ga")
    return granted, req.rp_id


def _get_pin_token(
    ctx: Context, req: ClientPinRequest, grant: tuple[Permission, str | None] | None
) -> dict[int, Any]:
    protocol = _protocol(ctx, req)
    key_agreement = _need(req.key_agreement, "keyAgreement")
    pin_hash_enc = _need(req.pin_hash_enc, "pinHashEnc")
    config = ctx.config
    if grant is None:
        if req.permissions is not None or req.rp_id is not None:
            # CTAP 2.1 §6.5.5.7.1: getPinToken takes no permissions.
            raise CtapError(CtapStatus.INVALID_PARAMETER, "getPinToken takes no permissions")
        # The legacy token does what a CTAP 2.0 PIN token did: mc and ga (and, for the
        # FIDO_2_1_PRE credentialMgmtPreview, cm).
        permissions = Permission(0)
        if not config.no_mc_ga_permissions_with_client_pin:
            permissions |= Permission.MC | Permission.GA
        if config.credential_management_preview:
            permissions |= Permission.CM
        grant = (permissions, None)
    elif config.no_mc_ga_permissions_with_client_pin and grant[0] & (Permission.MC | Permission.GA):
        raise CtapError(CtapStatus.UNAUTHORIZED_PERMISSION, "noMcGaPermissionsWithClientPin")
    if not pin_is_set(ctx):
        raise CtapError(CtapStatus.PIN_NOT_SET, "no PIN is set")
    if pin_retries(ctx) <= 0:
        raise CtapError(CtapStatus.PIN_BLOCKED, "no PIN retries left")
    secret = protocol.decapsulate(key_agreement)
    _check_pin_hash(ctx, protocol, secret, pin_hash_enc)
    if force_pin_change(ctx):
        raise CtapError(CtapStatus.PIN_POLICY_VIOLATION, "the PIN must be changed first")
    return _issue(ctx, protocol, secret, grant, user_present=False)


def _get_uv_token(ctx: Context, req: ClientPinRequest) -> Handler[dict[int, Any]]:
    protocol = _protocol(ctx, req)
    key_agreement = _need(req.key_agreement, "keyAgreement")
    grant = _permissions(ctx, req)
    if not built_in_uv_configured(ctx):
        raise CtapError(CtapStatus.NOT_ALLOWED, "built-in UV is not configured")
    secret = protocol.decapsulate(key_agreement)
    yield from perform_built_in_uv(ctx, req.rp_id or "", "user verification")
    # The UV gesture is a touch as well: the token starts with userPresent set.
    return _issue(ctx, protocol, secret, grant, user_present=True)


def _issue(
    ctx: Context,
    protocol: PinProtocol,
    secret: SharedSecret,
    grant: tuple[Permission, str | None],
    *,
    user_present: bool,
) -> dict[int, Any]:
    token = ctx.pin_token
    token.reset()
    token.begin_using(protocol.version, grant[0], grant[1], user_present=user_present)
    return {ClientPinResponseKey.PIN_UV_AUTH_TOKEN: secret.encrypt(token.value)}
