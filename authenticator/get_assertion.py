"""authenticatorGetAssertion and authenticatorGetNextAssertion (CTAP 2.1 §6.2, §6.3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from authenticator import extensions
from authenticator.auth_data import BE, BS, UP, UV, build_auth_data
from authenticator.commands import GetAssertionResponseKey
from authenticator.context import Context, Handler, rp_id_hash
from authenticator.credential import StoredCredential
from authenticator.keys import CredentialKey
from authenticator.pin_token import Permission
from authenticator.requests import PUBLIC_KEY, GetAssertionRequest
from authenticator.status import CtapError, CtapStatus
from authenticator.user_verification import check_pin_uv_auth_param, verify_user

# Response keys bound once (an IntEnum class attribute read costs ~70 ns more).
_CREDENTIAL: Final = GetAssertionResponseKey.CREDENTIAL
_AUTH_DATA: Final = GetAssertionResponseKey.AUTH_DATA
_SIGNATURE: Final = GetAssertionResponseKey.SIGNATURE
_USER: Final = GetAssertionResponseKey.USER
_GA_PERMISSION: Final = Permission.GA


@dataclass(slots=True)
class Candidate:
    """A credential that may answer: its ID, key and (for stored ones) its record.

    Not frozen, unlike requests and records: one is built per assertion, never changed, and
    a frozen dataclass takes three times as long to construct (object.__setattr__ per field).
    """

    credential_id: bytes
    key: CredentialKey = field(repr=False)
    stored: StoredCredential | None = None
    cred_protect: int = 1
    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # extension state
    secrets: dict[str, bytes] = field(default_factory=dict, repr=False)  # sealed ext. state

    def view(self, rp_id: str) -> extensions.CredentialView:
        return extensions.CredentialView(
            self.credential_id,
            rp_id,
            self.stored is None,
            self.cred_protect,
            self.extra,
            self.secrets,
        )

    @property
    def backup_flags(self) -> int:
        stored = self.stored
        if stored is None or not stored.backup_eligible:
            return 0
        return BE | BS if stored.backup_state else BE


@dataclass
class PendingAssertions:
    """getNextAssertion's state: the credentials still to return and the request context."""

    rp_id_hash: bytes
    client_data_hash: bytes
    flags: int
    remaining: list[Candidate]
    total: int
    user_verified: bool
    last_call: float
    rp_id: str = ""
    extension_inputs: extensions.ParsedInputs = field(default_factory=extensions.ParsedInputs)


def get_assertion(ctx: Context, req: GetAssertionRequest) -> Handler[dict[int, Any]]:
    config = ctx.config
    # Steps 1-2: pinUvAuthParam / pinUvAuthProtocol.
    if req.pin_uv_auth_param is not None:
        yield from check_pin_uv_auth_param(
            ctx, req.rp_id, req.pin_uv_auth_param, req.pin_uv_auth_protocol
        )

    # Step 3: options.
    if "rk" in req.options:
        # CTAP 2.1 §6.2.2 step 3.1: rk is meaningless for getAssertion.
        raise CtapError(CtapStatus.UNSUPPORTED_OPTION, "rk is not a getAssertion option")
    up = req.options.get("up", True)
    uv = req.options.get("uv", False)
    if uv and not config.built_in_uv:
        raise CtapError(CtapStatus.INVALID_OPTION, "uv: no built-in user verification")
    # Extension inputs are checked before any touch is asked for (extensions/base.py).
    extension_inputs = extensions.parse_authentication(ctx, req.extensions, up=up)
    # Steps 5-6: alwaysUv, then the pinUvAuthToken or the built-in UV gesture.
    verification = yield from verify_user(
        ctx,
        rp_id=req.rp_id,
        client_data_hash=req.client_data_hash,
        param=req.pin_uv_auth_param,
        protocol=req.pin_uv_auth_protocol,
        uv=uv,
        permission=_GA_PERMISSION,
        up=up,  # CTAP 2.1 §6.2.2 step 5: alwaysUv only when "up" is true
        reason="sign in",
    )
    uv = verification.user_verified

    # Step 7: locate the credentials, minus those credProtect hides.
    rp_hash = rp_id_hash(req.rp_id)
    candidates = _locate(ctx, req, rp_hash, user_verified=uv)
    if not candidates:
        raise CtapError(CtapStatus.NO_CREDENTIALS)

    # Step 9: user presence, unless the UV gesture or the token's userPresent proved it.
    flags = UV if uv else 0
    if up:
        yield from verification.collect_presence(ctx, "sign in")
        flags |= UP

    first, rest = candidates[0], candidates[1:]
    discoverable_mode = not req.allow_list
    ctx.pending = None
    if discoverable_mode and rest:
        ctx.pending = PendingAssertions(
            rp_hash,
            req.client_data_hash,
            flags,
            rest,
            len(candidates),
            uv,
            ctx.clock.now(),
            rp_id=req.rp_id,
            extension_inputs=extension_inputs,
        )
    response = _sign(
        ctx,
        first,
        rp_hash,
        req.client_data_hash,
        flags,
        uv,
        discoverable_mode,
        req.rp_id,
        extension_inputs,
    )
    if discoverable_mode and rest:
        response[GetAssertionResponseKey.NUMBER_OF_CREDENTIALS] = len(candidates)
    return response


def get_next_assertion(ctx: Context) -> Handler[dict[int, Any]]:
    pending = ctx.pending
    if not isinstance(pending, PendingAssertions) or not pending.remaining:
        raise CtapError(CtapStatus.NOT_ALLOWED, "no assertion to continue")
    if ctx.clock.now() - pending.last_call > ctx.config.get_next_assertion_timeout:
        ctx.pending = None
        raise CtapError(CtapStatus.NOT_ALLOWED, "getNextAssertion timer expired")
    candidate = pending.remaining.pop(0)
    pending.last_call = ctx.clock.now()
    if not pending.remaining:
        ctx.pending = None
    else:
        ctx.pending = pending
    return _sign(
        ctx,
        candidate,
        pending.rp_id_hash,
        pending.client_data_hash,
        pending.flags,
        pending.user_verified,
        True,
        pending.rp_id,
        pending.extension_inputs,
    )
    yield  # a generator, like every handler


def _locate(
    ctx: Context, req: GetAssertionRequest, rp_hash: bytes, *, user_verified: bool
) -> list[Candidate]:
    allow_list = bool(req.allow_list)
    if allow_list:
        # CTAP 2.1 §6.2.2 step 12: one credential when an allowList is given, so the first
        # usable entry ends the search.
        for descriptor in req.allow_list:
            unwrapped = ctx.unwrap(rp_hash, descriptor.id)
            if unwrapped is not None:
                if extensions.permits(
                    unwrapped.cred_protect, user_verified=user_verified, allow_list=True
                ):
                    return [
                        Candidate(
                            descriptor.id,
                            unwrapped.key,
                            None,
                            unwrapped.cred_protect,
                            unwrapped.extra,
                            {},
                        )
                    ]
                continue
            stored = ctx.store.get(descriptor.id)
            if (
                stored is not None
                and stored.rp_id == req.rp_id
                and extensions.permits(
                    stored.cred_protect, user_verified=user_verified, allow_list=True
                )
            ):
                return [_open(ctx, stored)]
        return []
    return [
        _open(ctx, c)
        for c in ctx.store.discoverable(req.rp_id)
        if extensions.permits(c.cred_protect, user_verified=user_verified, allow_list=False)
    ]


def _open(ctx: Context, stored: StoredCredential) -> Candidate:
    secrets = ctx.open_secrets(stored)
    return Candidate(
        stored.credential_id,
        secrets.key,
        stored,
        stored.cred_protect,
        stored.extra,
        secrets.extra,
    )


def _sign(
    ctx: Context,
    candidate: Candidate,
    rp_hash: bytes,
    client_data_hash: bytes,
    flags: int,
    user_verified: bool,
    include_user_details: bool,
    rp_id: str = "",
    extension_inputs: extensions.ParsedInputs | None = None,
) -> dict[int, Any]:
    flags |= candidate.backup_flags
    # Step 10: extensions, per credential (getNextAssertion too).
    auth = None
    if extension_inputs:
        auth = extensions.Authentication(
            ctx, rp_id, user_verified=user_verified, user_present=bool(flags & UP)
        )
        extensions.authentication_outputs(auth, extension_inputs, candidate.view(rp_id))
    # The counter is durable before the signature carrying it exists (WebAuthn §6.1.1).
    sign_count = ctx.next_sign_count(candidate.credential_id)
    outputs = None if auth is None else auth.outputs
    auth_data = build_auth_data(rp_hash, flags, sign_count, None, outputs)
    signature = candidate.key.sign(auth_data + client_data_hash)
    response: dict[int, Any] = {
        _CREDENTIAL: {"id": candidate.credential_id, "type": PUBLIC_KEY},
        _AUTH_DATA: auth_data,
        _SIGNATURE: signature,
    }
    stored = candidate.stored
    if stored is not None and stored.discoverable:
        user: dict[str, Any] = {"id": stored.user_id}
        # CTAP 2.1 §6.2.2 step 12: identifying details only after user verification, and only
        # when the platform must choose among accounts (no allowList).
        if user_verified and include_user_details:
            if stored.user_name is not None:
                user["name"] = stored.user_name
            if stored.user_display_name is not None:
                user["displayName"] = stored.user_display_name
        response[_USER] = user
    if auth is not None:
        if auth.large_blob_key is not None:
            response[GetAssertionResponseKey.LARGE_BLOB_KEY] = auth.large_blob_key
        if auth.unsigned_outputs:
            response[GetAssertionResponseKey.UNSIGNED_EXTENSION_OUTPUTS] = auth.unsigned_outputs
    return response
