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
(``resetPinUvAuthToken``), and so does a PIN change, except a request for exactly ``pcmr``
(CTAP 2.2): that returns the persistentPinUvAuthToken (``pin_token.grant_persistent_token``)
and leaves the pinUvAuthToken as it was. Setting or changing the PIN resets the persistent
token too. While it holds a permission, getInfo carries ``encIdentifier`` (CTAP 2.2, 0x19):
a device identifier only that token's holder can read (``advertise_persistent_token``).

forcePINChange (set by authenticatorConfig's setMinPINLength) refuses tokens after a
correct PIN: the legacy getPinToken answers PIN_INVALID (CTAP 2.1 §6.5.5.7.1 step 11), the
"WithPermissions" subcommand PIN_POLICY_VIOLATION (§6.5.5.7.2 step 11).

PIN rules (§6.5.5.5 steps 6-10): newPinEnc decrypts (else PIN_AUTH_INVALID) to exactly 64
bytes (else INVALID_PARAMETER); the PIN is those bytes minus trailing zeros, at most 63 bytes
of UTF-8, at least minPINLength code points and, while a CTAP 2.2 PIN complexity policy is
enforced, compliant with it (else PIN_POLICY_VIOLATION; ``extensions.pin_complexity_policy``).

Every subcommand checks in the spec's step order: all mandatory parameters first
(MISSING_PARAMETER), then the protocol (INVALID_PARAMETER), then its own steps.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from authenticator.commands import (
    ClientPinKey,
    ClientPinResponseKey,
    ClientPinSubCommand,
    GetInfoKey,
)
from authenticator.context import Context, Handler
from authenticator.extensions.pin_complexity_policy import require_complex_pin
from authenticator.pin_protocol import AES_BLOCK, PinProtocol, PinUvAuthProtocol, SharedSecret
from authenticator.pin_token import (
    ALL_PERMISSIONS,
    Permission,
    PersistentToken,
    grant_persistent_token,
    reset_persistent_token,
)
from authenticator.requests import optional, required
from authenticator.status import CtapError, CtapStatus
from authenticator.user_verification import (
    built_in_uv_configured,
    force_pin_change,
    grantable_permissions,
    min_pin_length,
    perform_built_in_uv,
    pin_is_set,
    pin_retries,
    set_pin_retries,
    set_uv_retries,
    store_pin,
    stored_pin_hash,
    uv_retries,
)

PADDED_PIN_LENGTH: Final = 64  # CTAP 2.1 §6.5.5.5: newPinEnc carries exactly 64 bytes
MAX_PIN_BYTES: Final = 63
PIN_HASH_LENGTH: Final = 16
MAX_CONSECUTIVE_MISMATCHES: Final = 3  # then PIN_AUTH_BLOCKED until a power cycle
DEVICE_IDENTIFIER_PURPOSE: Final = b"fidoemu encIdentifier"
ENC_IDENTIFIER_INFO: Final = b"encIdentifier"  # CTAP 2.2 §6.4: the HKDF info of its key


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
        permissions = optional(params, k.PERMISSIONS, int, "permissions")
        if permissions is not None and permissions < 0:
            raise CtapError(CtapStatus.CBOR_UNEXPECTED_TYPE, "permissions is an unsigned int")
        return cls(
            sub_command=required(params, k.SUB_COMMAND, int, "subCommand"),
            pin_uv_auth_protocol=optional(params, k.PIN_UV_AUTH_PROTOCOL, int, "pinUvAuthProtocol"),
            key_agreement=optional(params, k.KEY_AGREEMENT, dict, "keyAgreement"),
            pin_uv_auth_param=optional(params, k.PIN_UV_AUTH_PARAM, bytes, "pinUvAuthParam"),
            new_pin_enc=optional(params, k.NEW_PIN_ENC, bytes, "newPinEnc"),
            pin_hash_enc=optional(params, k.PIN_HASH_ENC, bytes, "pinHashEnc"),
            permissions=permissions,
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
            # §6.5.5.4: a fresh key per request is not required; the key changes on regenerate.
            protocol = _protocol(ctx, req)
            return {ClientPinResponseKey.KEY_AGREEMENT: protocol.public_cose_key()}
        case sub.SET_PIN if config.client_pin:
            _set_pin(ctx, req)
            return None
        case sub.CHANGE_PIN if config.client_pin:
            _change_pin(ctx, req)
            return None
        case sub.GET_PIN_TOKEN if config.client_pin:
            return _get_pin_token(ctx, req, with_permissions=False)
        case sub.GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS if (
            config.client_pin and config.pin_uv_auth_token
        ):
            return _get_pin_token(ctx, req, with_permissions=True)
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


def _mandatory(ctx: Context, req: ClientPinRequest, *names: str) -> PinProtocol:
    """Step 1 (every mandatory parameter present), then step 2 (the protocol supported)."""
    _need(req.pin_uv_auth_protocol, "pinUvAuthProtocol")
    for name in names:
        _need(getattr(req, name), name)
    return _protocol(ctx, req)


def _new_pin(ctx: Context, secret: SharedSecret, new_pin_enc: bytes) -> tuple[bytes, int]:
    """The new PIN's hash and length in code points, after the PIN rules (§6.5.5.5 6-10)."""
    padded = secret.decrypt(new_pin_enc)
    if padded is None:
        # Step 6: decrypt failed (not whole AES blocks; for protocol 2, no IV).
        raise CtapError(CtapStatus.PIN_AUTH_INVALID, "newPinEnc does not decrypt")
    if len(padded) != PADDED_PIN_LENGTH:
        raise CtapError(CtapStatus.INVALID_PARAMETER, "paddedNewPin is not 64 bytes")
    pin = padded.rstrip(b"\x00")  # step 8: drop trailing zeros
    if len(pin) > MAX_PIN_BYTES:
        raise CtapError(CtapStatus.PIN_POLICY_VIOLATION, "the PIN is longer than 63 bytes")
    try:
        text = pin.decode("utf-8")
    except UnicodeDecodeError:
        # The spec says the PIN is UTF-8 and names no code; a policy violation says why.
        raise CtapError(CtapStatus.PIN_POLICY_VIOLATION, "the PIN is not UTF-8") from None
    code_points = len(text)
    if code_points < min_pin_length(ctx):
        raise CtapError(CtapStatus.PIN_POLICY_VIOLATION, "the PIN is shorter than minPINLength")
    require_complex_pin(ctx, text)  # CTAP 2.2: the PIN complexity policy, when enforced
    return hashlib.sha256(pin).digest()[:PIN_HASH_LENGTH], code_points


def _set_pin(ctx: Context, req: ClientPinRequest) -> None:
    protocol = _mandatory(ctx, req, "key_agreement", "pin_uv_auth_param", "new_pin_enc")
    key_agreement, param, new_pin_enc = req.key_agreement, req.pin_uv_auth_param, req.new_pin_enc
    assert param is not None and new_pin_enc is not None  # noqa: S101 - checked by _mandatory
    if pin_is_set(ctx):
        # CTAP 2.1 §6.5.5.5 step 3: a PIN already set -> PIN_AUTH_INVALID (changePIN instead).
        raise CtapError(CtapStatus.PIN_AUTH_INVALID, "a PIN is already set")
    secret = protocol.decapsulate(key_agreement)
    if not secret.verify(new_pin_enc, param):
        raise CtapError(CtapStatus.PIN_AUTH_INVALID, "pinUvAuthParam does not verify")
    pin_hash, code_points = _new_pin(ctx, secret, new_pin_enc)
    # Not a step of §6.5.5.5, but a pcmr grant earned by built-in UV before there was a PIN
    # should not outlive the PIN's arrival (as changePIN's step 20 would revoke it).
    reset_persistent_token(ctx.store)
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
    protocol = _mandatory(
        ctx, req, "key_agreement", "pin_hash_enc", "new_pin_enc", "pin_uv_auth_param"
    )
    key_agreement, param = req.key_agreement, req.pin_uv_auth_param
    pin_hash_enc, new_pin_enc = req.pin_hash_enc, req.new_pin_enc
    assert pin_hash_enc is not None and new_pin_enc is not None  # noqa: S101 - _mandatory
    assert param is not None  # noqa: S101 - checked by _mandatory
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
    # CTAP 2.2 §6.5.5.6: resetPersistentPinUvAuthToken. Spec order puts it after the new
    # PIN is stored; revoking first means a crash in between can never leave the grant made
    # under the old PIN alive next to the new one (the other way it only costs a re-grant).
    reset_persistent_token(ctx.store)
    store_pin(ctx, new_hash, code_points)
    ctx.pin_token.reset()  # resetPinUvAuthToken: tokens from the old PIN stop working


def _permissions(ctx: Context, req: ClientPinRequest, *, via_uv: bool) -> Permission:
    """Steps 3-4 of both "WithPermissions" subcommands (§6.5.5.7.2, §6.5.5.7.3): zero is
    INVALID_PARAMETER; a permission this device does not grant is UNAUTHORIZED_PERMISSION;
    undefined bits are ignored. The rpId stays optional: makeCredential and getAssertion bind
    an unbound token to their RP (§6.1.2 step 11.5)."""
    permissions = req.permissions
    assert permissions is not None  # noqa: S101 - checked by _mandatory
    if permissions == 0:
        raise CtapError(CtapStatus.INVALID_PARAMETER, "permissions is zero")
    requested = Permission(permissions & int(ALL_PERMISSIONS))
    refused = requested & ~grantable_permissions(ctx, via_uv=via_uv)
    if requested & Permission.PCMR and requested != Permission.PCMR:
        refused |= Permission.PCMR  # CTAP 2.2: pcmr is only granted alone
    if refused:
        raise CtapError(CtapStatus.UNAUTHORIZED_PERMISSION, f"not granted: {refused!r}")
    return requested


def _get_pin_token(
    ctx: Context, req: ClientPinRequest, *, with_permissions: bool
) -> dict[int, Any]:
    """getPinToken (§6.5.5.7.1) or getPinUvAuthTokenUsingPinWithPermissions (§6.5.5.7.2)."""
    mandatory = ("key_agreement", "pin_hash_enc") + (("permissions",) if with_permissions else ())
    protocol = _mandatory(ctx, req, *mandatory)
    key_agreement, pin_hash_enc = req.key_agreement, req.pin_hash_enc
    assert pin_hash_enc is not None  # noqa: S101 - checked by _mandatory
    config = ctx.config
    if with_permissions:
        permissions = _permissions(ctx, req, via_uv=False)
    else:
        if req.permissions is not None or req.rp_id is not None:
            # §6.5.5.7.1 steps 3-4: getPinToken takes no permissions and no rpId.
            raise CtapError(CtapStatus.INVALID_PARAMETER, "getPinToken takes no permissions")
        # Step 14: the default permissions, mc and ga, unless noMcGaPermissionsWithClientPin;
        # the FIDO_2_1_PRE credentialMgmtPreview used this token for cm as well.
        permissions = Permission(0)
        if not config.no_mc_ga_permissions_with_client_pin:
            permissions |= Permission.MC | Permission.GA
        if config.credential_management_preview:
            permissions |= Permission.CM
    if not pin_is_set(ctx):
        raise CtapError(CtapStatus.PIN_NOT_SET, "no PIN is set")
    if pin_retries(ctx) <= 0:
        raise CtapError(CtapStatus.PIN_BLOCKED, "no PIN retries left")
    secret = protocol.decapsulate(key_agreement)
    _check_pin_hash(ctx, protocol, secret, pin_hash_enc)
    if force_pin_change(ctx):
        if not with_permissions:
            # CTAP 2.1 §6.5.5.7.1 step 11: the superseded getPinToken answers PIN_INVALID.
            raise CtapError(CtapStatus.PIN_INVALID, "the PIN must be changed first")
        # §6.5.5.7.2 step 11: the platform should direct the user to change the PIN.
        raise CtapError(CtapStatus.PIN_POLICY_VIOLATION, "the PIN must be changed first")
    return _issue(ctx, protocol, secret, permissions, req.rp_id, user_present=False)


def _get_uv_token(ctx: Context, req: ClientPinRequest) -> Handler[dict[int, Any]]:
    """getPinUvAuthTokenUsingUvWithPermissions (§6.5.5.7.3)."""
    protocol = _mandatory(ctx, req, "key_agreement", "permissions")
    key_agreement = req.key_agreement
    permissions = _permissions(ctx, req, via_uv=True)
    if not built_in_uv_configured(ctx):
        raise CtapError(CtapStatus.NOT_ALLOWED, "built-in UV is not configured")
    secret = protocol.decapsulate(key_agreement)
    yield from perform_built_in_uv(ctx, req.rp_id or "", "user verification")
    # The UV gesture is a touch as well: the token starts with userPresent set.
    return _issue(ctx, protocol, secret, permissions, req.rp_id, user_present=True)


def _issue(
    ctx: Context,
    protocol: PinProtocol,
    secret: SharedSecret,
    permissions: Permission,
    rp_id: str | None,
    *,
    user_present: bool,
) -> dict[int, Any]:
    if permissions == Permission.PCMR:
        # CTAP 2.2 §6.5.5.7.2 step 12 / §6.5.5.7.3 step 11: exactly pcmr is the persistent
        # token's; it returns before resetPinUvAuthToken, so a live mc/ga token keeps working.
        # The rpId (if any) belongs to the pinUvAuthToken's steps and is not recorded.
        value = grant_persistent_token(ctx.store, ctx.sealer, ctx.entropy, permissions)
        return {ClientPinResponseKey.PIN_UV_AUTH_TOKEN: secret.encrypt(value)}
    token = ctx.pin_token
    token.reset()
    token.begin_using(protocol.version, permissions, rp_id, user_present=user_present)
    return {ClientPinResponseKey.PIN_UV_AUTH_TOKEN: secret.encrypt(token.value)}


def advertise_persistent_token(ctx: Context, info: dict[int, Any]) -> None:
    """getInfo's ``encIdentifier`` (CTAP 2.2 §6.4, optional): while the persistentPinUvAuthToken
    holds a permission, a 16-byte device identifier under AES-128-CBC with a fresh IV in front,
    keyed by HKDF-SHA-256(persistentPinUvAuthToken, salt 32 zero bytes, "encIdentifier").
    Anyone may call getInfo; only the token's holder can tell two answers come from one device.
    The identifier is derived from the device key, so authenticatorReset changes it."""
    config = ctx.config
    if not (config.credential_management and config.per_credential_management_read_only):
        return
    token = PersistentToken.load(ctx.store, ctx.sealer)
    if token is None or not token.permissions:
        return
    identifier = ctx.sealer.derive(DEVICE_IDENTIFIER_PURPOSE, b"", AES_BLOCK)
    key = HKDF(
        hashes.SHA256(), AES_BLOCK, salt=bytes(32), info=ENC_IDENTIFIER_INFO
    ).derive(token.value)
    # Protocol two's encrypt is exactly "random IV || AES-CBC(key, IV, plaintext)"; a
    # 16-byte key makes it AES-128.
    cipher = SharedSecret(PinUvAuthProtocol.TWO, b"", key, ctx.entropy)
    info[GetInfoKey.ENC_IDENTIFIER] = cipher.encrypt(identifier)
