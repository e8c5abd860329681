"""What protects the device, and the user-verification steps makeCredential and getAssertion
share (CTAP 2.1 §6.1.2 steps 1-2, 6-11 and 14; §6.2.2 steps 1-2, 5-6 and 9).

Owns the persistent PIN/UV state in the store (names under ``pin/``, ``uv/`` and
``config/``): the sealed PIN hash, PIN retries, the PIN's length, minPINLength and its RP IDs,
forcePINChange, built-in UV retries, alwaysUv and enterprise attestation. Nothing here is
secret in clear: the PIN hash is sealed under the device key (``Sealer``) and the rest are
counters and flags.

Theory of operation for a ceremony: ``check_pin_uv_auth_param`` answers the zero-length
"probe" and rejects unsupported protocols; ``verify_user`` applies alwaysUv and
makeCredUvNotRqd, then checks the pinUvAuthToken (MAC over clientDataHash, permission, RP
binding, userVerified) or performs the built-in UV gesture (``NeedPresence(
user_verification=True)``, answered ``Presence.APPROVED`` or ``Presence.UV_FAILED``); the
returned ``Verification`` then collects user presence at the step the spec says, skipping the
touch when the UV gesture or the token's userPresent flag already proved it, and clears the
token's flags and permissions afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from authenticator import cbor
from authenticator.commands import GetInfoKey
from authenticator.context import Context, Handler
from authenticator.pin_token import Permission
from authenticator.presence import NeedPresence, Presence
from authenticator.status import CtapError, CtapStatus

PIN_HASH_STATE: Final = "pin/hash"  # sealed LEFT(SHA-256(PIN), 16)
PIN_RETRIES_STATE: Final = "pin/retries"
PIN_LENGTH_STATE: Final = "pin/length"  # the current PIN's length in code points
FORCE_PIN_CHANGE_STATE: Final = "pin/force_change"
MIN_PIN_LENGTH_STATE: Final = "pin/min_length"
MIN_PIN_LENGTH_RP_IDS_STATE: Final = "pin/min_length_rp_ids"
UV_RETRIES_STATE: Final = "uv/retries"
ALWAYS_UV_STATE: Final = "config/always_uv"
ENTERPRISE_ATTESTATION_STATE: Final = "config/ep"
PIN_HASH_AAD: Final = PIN_HASH_STATE.encode()


# -- persistent state -----------------------------------------------------------------------


def _get_int(ctx: Context, name: str, default: int) -> int:
    raw = ctx.store.get_state(name)
    return default if raw is None else int.from_bytes(raw, "big")


def _put_int(ctx: Context, name: str, value: int, default: int | None = None) -> None:
    ctx.store.put_state(name, None if value == default else value.to_bytes(2, "big"))


def _get_flag(ctx: Context, name: str, default: bool) -> bool:
    raw = ctx.store.get_state(name)
    return default if raw is None else raw == b"\x01"


def _put_flag(ctx: Context, name: str, value: bool) -> None:
    ctx.store.put_state(name, b"\x01" if value else b"\x00")


def supported_pin_uv_protocols(ctx: Context) -> tuple[int, ...]:
    """The PIN/UV auth protocols this device implements, in order of preference."""
    return tuple(int(p) for p in ctx.config.pin_uv_protocols if p in (1, 2))


def pin_is_set(ctx: Context) -> bool:
    return ctx.config.client_pin and ctx.store.get_state(PIN_HASH_STATE) is not None


def stored_pin_hash(ctx: Context) -> bytes | None:
    sealed = ctx.store.get_state(PIN_HASH_STATE)
    return None if sealed is None else ctx.sealer.open_or_fail(sealed, PIN_HASH_AAD)


def store_pin(ctx: Context, pin_hash: bytes, code_points: int) -> None:
    """A new PIN: its sealed hash, its length, full retries, and no forced change."""
    ctx.store.put_state(PIN_HASH_STATE, ctx.sealer.seal(pin_hash, PIN_HASH_AAD))
    _put_int(ctx, PIN_LENGTH_STATE, code_points)
    set_pin_retries(ctx, ctx.config.pin_retries)
    ctx.store.put_state(FORCE_PIN_CHANGE_STATE, None)


def pin_retries(ctx: Context) -> int:
    return _get_int(ctx, PIN_RETRIES_STATE, ctx.config.pin_retries)


def set_pin_retries(ctx: Context, value: int) -> None:
    _put_int(ctx, PIN_RETRIES_STATE, value, ctx.config.pin_retries)


def pin_length(ctx: Context) -> int:
    return _get_int(ctx, PIN_LENGTH_STATE, 0)


def min_pin_length(ctx: Context) -> int:
    return _get_int(ctx, MIN_PIN_LENGTH_STATE, ctx.config.min_pin_length)


def set_min_pin_length(ctx: Context, value: int) -> None:
    _put_int(ctx, MIN_PIN_LENGTH_STATE, value, ctx.config.min_pin_length)


def min_pin_length_rp_ids(ctx: Context) -> tuple[str, ...]:
    """RP IDs allowed to read minPINLength through the minPinLength extension."""
    raw = ctx.store.get_state(MIN_PIN_LENGTH_RP_IDS_STATE)
    if raw is None:
        return ()
    return tuple(str(rp_id) for rp_id in cbor.loads_lenient(raw))


def set_min_pin_length_rp_ids(ctx: Context, rp_ids: tuple[str, ...]) -> None:
    ctx.store.put_state(MIN_PIN_LENGTH_RP_IDS_STATE, cbor.encode(list(rp_ids)))


def force_pin_change(ctx: Context) -> bool:
    return _get_flag(ctx, FORCE_PIN_CHANGE_STATE, False)


def set_force_pin_change(ctx: Context) -> None:
    _put_flag(ctx, FORCE_PIN_CHANGE_STATE, True)


def uv_retries(ctx: Context) -> int:
    return _get_int(ctx, UV_RETRIES_STATE, ctx.config.uv_retries)


def set_uv_retries(ctx: Context, value: int) -> None:
    _put_int(ctx, UV_RETRIES_STATE, value, ctx.config.uv_retries)


def always_uv_enabled(ctx: Context) -> bool:
    if ctx.config.always_uv is None:
        return False
    return _get_flag(ctx, ALWAYS_UV_STATE, ctx.config.always_uv)


def set_always_uv(ctx: Context, value: bool) -> None:
    _put_flag(ctx, ALWAYS_UV_STATE, value)


def enterprise_attestation_enabled(ctx: Context) -> bool:
    return ctx.config.enterprise_attestation and _get_flag(ctx, ENTERPRISE_ATTESTATION_STATE, False)


def enable_enterprise_attestation(ctx: Context) -> None:
    _put_flag(ctx, ENTERPRISE_ATTESTATION_STATE, True)


def built_in_uv_configured(ctx: Context) -> bool:
    """A built-in UV method exists and is ready (getInfo option "uv" is true): always for
    the platform profile; on the bio profile only once a finger is enrolled."""
    if not ctx.config.built_in_uv:
        return False
    if ctx.config.bio_enrollment:
        from authenticator.bio_enrollment import enrolled  # deferred: it may import us

        return enrolled(ctx)
    return True


def is_protected(ctx: Context) -> bool:
    """ "Protected by some form of user verification" (CTAP 2.1 §6.1.2 step 6)."""
    return pin_is_set(ctx) or built_in_uv_configured(ctx)


def grantable_permissions(ctx: Context, *, via_uv: bool) -> Permission:
    """The permissions a new token may carry (CTAP 2.1 §6.5.5.7.2-3 step 4; others are
    UNAUTHORIZED_PERMISSION). A token from built-in UV gets ``be`` only with the option
    "uvBioEnroll" and ``acfg`` only with "uvAcfg"; this device advertises neither, so those
    need the PIN. ``mc``/``ga`` from the PIN depend on noMcGaPermissionsWithClientPin."""
    config = ctx.config
    allowed = Permission(0)
    if via_uv or not config.no_mc_ga_permissions_with_client_pin:
        allowed |= Permission.MC | Permission.GA
    if config.credential_management or config.credential_management_preview:
        allowed |= Permission.CM
    if config.per_credential_management_read_only and config.credential_management:
        allowed |= Permission.PCMR
    if config.bio_enrollment and not via_uv:
        allowed |= Permission.BE
    if config.large_blobs:
        allowed |= Permission.LBW
    if config.authenticator_config and not via_uv:
        allowed |= Permission.ACFG
    return allowed


# -- built-in UV ----------------------------------------------------------------------------


def perform_built_in_uv(ctx: Context, rp_id: str, reason: str) -> Handler[None]:
    """One built-in UV gesture (a simulated fingerprint match), counting failures, with the
    status codes of getPinUvAuthTokenUsingUvWithPermissions (CTAP 2.1 §6.5.5.7.3 steps 7-10).

    The transport's answer decides: APPROVED is a match, UV_FAILED a mismatch (a retry spent;
    UV_BLOCKED when none remain), anything else the usual presence status. makeCredential and
    getAssertion translate these failures (``_ceremony_built_in_uv``).
    """
    retries = uv_retries(ctx)
    if retries <= 0:
        raise CtapError(CtapStatus.UV_BLOCKED, "built-in UV is blocked; use the PIN")
    outcome = yield NeedPresence(rp_id, user_verification=True, reason=reason)
    if outcome is Presence.UV_FAILED:
        set_uv_retries(ctx, retries - 1)
        if retries - 1 <= 0:
            raise CtapError(CtapStatus.UV_BLOCKED, "built-in UV failed; no retries left")
        raise CtapError(CtapStatus.UV_INVALID, "built-in UV did not match")
    outcome.require()
    if retries != ctx.config.uv_retries:
        set_uv_retries(ctx, ctx.config.uv_retries)


def _ceremony_built_in_uv(
    ctx: Context, rp_id: str, reason: str, *, pin_helps: bool
) -> Handler[None]:
    """The built-in UV of makeCredential step 11.2 / getAssertion step 6.2 (the "uv" option,
    the CTAP 2.0 path). Its failures answer differently from getPinUvAuthTokenUsingUv's
    UV_INVALID/UV_BLOCKED: CTAP 2.1 §6.1.2 step 11.2.3 and §6.2.2 step 6.2.3 say a user action
    timeout -> USER_ACTION_TIMEOUT; else, if a PIN is set and may grant mc/ga ("clientPin"
    true, noMcGaPermissionsWithClientPin absent) -> PUAT_REQUIRED, so the platform falls back
    to the PIN; else uvRetries at 0 -> PIN_BLOCKED (the spec's code, not UV_BLOCKED); else
    OPERATION_DENIED. A platform's CTAPHID_CANCEL stays KEEPALIVE_CANCEL (§11.2.9.1.5)."""
    try:
        yield from perform_built_in_uv(ctx, rp_id, reason)
    except CtapError as error:
        if error.status in (CtapStatus.USER_ACTION_TIMEOUT, CtapStatus.KEEPALIVE_CANCEL):
            raise
        if pin_helps and pin_is_set(ctx):
            raise CtapError(CtapStatus.PUAT_REQUIRED, "built-in UV failed; use the PIN") from error
        if uv_retries(ctx) <= 0:
            raise CtapError(CtapStatus.PIN_BLOCKED, "built-in UV is blocked") from error
        raise CtapError(CtapStatus.OPERATION_DENIED, "built-in UV failed") from error


# -- the ceremony steps ---------------------------------------------------------------------


def check_pin_uv_auth_param(
    ctx: Context, rp_id: str, param: bytes | None, protocol: int | None
) -> Handler[None]:
    """Steps 1-2: the zero-length pinUvAuthParam probe, then the protocol's presence and
    support."""
    if param is None:
        return
    protocols = supported_pin_uv_protocols(ctx)
    if not param and protocols:
        # CTAP 2.1 §6.1.2 step 1: a platform asks "is a PIN set?" with a touch.
        (yield NeedPresence(rp_id, reason="select authenticator")).require()
        if pin_is_set(ctx):
            raise CtapError(CtapStatus.PIN_INVALID, "a PIN is set")
        raise CtapError(CtapStatus.PIN_NOT_SET, "no PIN is set")
    if protocol is None:
        raise CtapError(CtapStatus.MISSING_PARAMETER, "pinUvAuthProtocol is missing")
    if protocol not in protocols:
        raise CtapError(CtapStatus.INVALID_PARAMETER, "unsupported pinUvAuthProtocol")


@dataclass
class Verification:
    """The outcome of steps 6-11: whether the user is verified, by what, and whether
    presence is already proven."""

    rp_id: str
    user_verified: bool = False
    token_used: bool = False
    user_present: bool = False

    def collect_presence(self, ctx: Context, reason: str) -> Handler[None]:
        """Step 14 (makeCredential) / 9 (getAssertion), when "up" is true: touch unless the
        built-in UV gesture or the token's userPresent flag proved presence; then a token
        keeps only its lbw permission and loses its flags."""
        if not self.user_present:
            (yield NeedPresence(self.rp_id, reason=reason)).require()
            self.user_present = True
        if self.token_used:
            token = ctx.pin_token
            token.clear_user_present()
            token.clear_user_verified()
            token.clear_permissions_except_lbw()


def verify_user(
    ctx: Context,
    *,
    rp_id: str,
    client_data_hash: bytes,
    param: bytes | None,
    protocol: int | None,
    uv: bool,
    permission: Permission,
    rk: bool = False,
    up: bool = True,
    reason: str,
) -> Handler[Verification]:
    """Steps 5-11 of makeCredential (``permission=MC``, ``rk`` = the requested option) or
    5-6 of getAssertion (``permission=GA``, ``up`` = the "up" option)."""
    config = ctx.config
    if param is not None:
        uv = False  # CTAP 2.1 §6.1.2 step 5: a pinUvAuthParam takes precedence over "uv"
    if uv and not built_in_uv_configured(ctx):
        raise CtapError(CtapStatus.INVALID_OPTION, "uv: built-in UV is not configured")
    # "clientPin is supported for the mc/ga permission": otherwise the PIN cannot help.
    pin_helps = config.client_pin and not config.no_mc_ga_permissions_with_client_pin
    # CTAP 2.1 §6.2.2 step 5: alwaysUv applies to getAssertion only when "up" is true; a
    # silent (up=false) assertion proceeds as if alwaysUv were off.
    always_uv = up and always_uv_enabled(ctx)
    if always_uv and param is None and not uv:
        # CTAP 2.1 §6.1.2 step 6 / §6.2.2 step 5.
        if built_in_uv_configured(ctx):
            uv = True
        elif pin_helps:
            raise CtapError(CtapStatus.PUAT_REQUIRED, "alwaysUv: a pinUvAuthToken is required")
        else:
            raise CtapError(CtapStatus.OPERATION_DENIED, "alwaysUv without a usable UV method")
    uv_not_required = config.make_cred_uv_not_required and not always_uv  # step 6.1
    if (
        permission is Permission.MC
        and param is None
        and not uv
        and not (uv_not_required and not rk)
        and is_protected(ctx)  # last: it reads the store, and getAssertion never needs it
    ):
        # CTAP 2.1 §6.1.2 steps 7-8 (CTAP 2.0: PIN_REQUIRED, the same code): a token helps
        # only when a PIN is set ("clientPin" true); built-in UV alone: OPERATION_DENIED.
        if pin_helps and pin_is_set(ctx):
            raise CtapError(CtapStatus.PUAT_REQUIRED, "this device requires user verification")
        raise CtapError(CtapStatus.OPERATION_DENIED, "user verification is required")

    result = Verification(rp_id)
    if param is not None:
        # Step 11: the token's MAC over clientDataHash, its permission, its RP binding.
        token = ctx.pin_token
        token.authorize(protocol, param, client_data_hash, permission, rp_id, bind=True)
        if not token.user_verified:
            raise CtapError(CtapStatus.PIN_AUTH_INVALID, "the token's userVerified is clear")
        result.token_used = True
        result.user_verified = True
        result.user_present = token.user_present
    elif uv:
        yield from _ceremony_built_in_uv(ctx, rp_id, reason, pin_helps=pin_helps)
        result.user_verified = True
        result.user_present = True  # the UV gesture is a touch (step 14: "up" already proven)
    return result


# -- getInfo --------------------------------------------------------------------------------


def advertise(ctx: Context, options: dict[str, bool], info: dict[int, Any]) -> None:
    """The getInfo options and fields of PIN/UV, credential management, authenticatorConfig
    and enterprise attestation (CTAP 2.1 §6.4), from the same profile fields and state that
    decide behaviour."""
    config = ctx.config
    protocols = supported_pin_uv_protocols(ctx)
    if not protocols:
        return
    info[GetInfoKey.PIN_UV_AUTH_PROTOCOLS] = list(protocols)
    if config.client_pin:
        options["clientPin"] = pin_is_set(ctx)
        info[GetInfoKey.MIN_PIN_LENGTH] = min_pin_length(ctx)
    if config.built_in_uv:
        options["uv"] = built_in_uv_configured(ctx)
        info[GetInfoKey.PREFERRED_PLATFORM_UV_ATTEMPTS] = config.preferred_platform_uv_attempts
        info[GetInfoKey.UV_MODALITY] = config.uv_modality
    if config.pin_uv_auth_token:
        options["pinUvAuthToken"] = True
        if config.client_pin:
            info[GetInfoKey.FORCE_PIN_CHANGE] = force_pin_change(ctx)
    if config.no_mc_ga_permissions_with_client_pin:
        options["noMcGaPermissionsWithClientPin"] = True
    if config.always_uv is not None and (config.authenticator_config or always_uv_enabled(ctx)):
        # CTAP 2.1 §6.4: present means the feature is supported. Without authenticatorConfig
        # it can never be toggled: a device that always requires UV says true, and one that
        # never can says nothing rather than a false it could never change.
        options["alwaysUv"] = always_uv_enabled(ctx)
    if config.make_cred_uv_not_required and not always_uv_enabled(ctx):
        # CTAP 2.1 §7.4: alwaysUv overrides makeCredUvNotRqd.
        options["makeCredUvNotRqd"] = True
    if config.credential_management:
        options["credMgmt"] = True
        if config.per_credential_management_read_only:
            options["perCredMgmtRO"] = True
    if config.credential_management_preview:
        options["credentialMgmtPreview"] = True
    if config.authenticator_config:
        options["authnrCfg"] = True
        if config.client_pin:
            options["setMinPINLength"] = True
            info[GetInfoKey.MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH] = (
                config.max_rpids_for_set_min_pin_length
            )
    if config.enterprise_attestation:
        options["ep"] = enterprise_attestation_enabled(ctx)
