"""authenticatorCredentialManagement (CTAP 2.1 §6.8; 0x0A, and 0x41 for the FIDO_2_1_PRE
prototype): getCredsMetadata, enumerateRPsBegin/GetNextRP, enumerateCredentialsBegin/
GetNextCredential, deleteCredential and updateUserInformation, over discoverable credentials.

Theory of operation: every subcommand but the two "next" ones carries a pinUvAuthParam, the
token's MAC over ``subCommand || subCommandParams`` (the parameters' canonical CBOR, which is
the bytes received: the decoder accepts only canonical CBOR). The pinUvAuthToken needs ``cm``.
The read-only subcommands (getCredsMetadata, enumerateRPsBegin, enumerateCredentialsBegin)
also accept CTAP 2.2's persistentPinUvAuthToken holding ``pcmr`` (tried when the MAC is not
the pinUvAuthToken's); deleteCredential and updateUserInformation never do, so a MAC made
with it there is simply PIN_AUTH_INVALID. A pinUvAuthToken bound to an RP ID may only touch
that RP's credentials, and may not list RPs or read the metadata (§6.8.2-§6.8.3); the
persistent token is never bound.

An enumeration is a stateful sequence in ``Context.pending``: the Begin subcommand snapshots
what to return; each Next returns one more. Any other command (including another
credentialManagement subcommand) ends it, as does a power cycle; a Next without one is
NOT_ALLOWED.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Final

from authenticator import cbor
from authenticator.commands import (
    Command,
    CredentialManagementKey,
    CredentialManagementParamKey,
    CredentialManagementResponseKey,
    CredentialManagementSubCommand,
)
from authenticator.context import Context, Handler, rp_id_hash
from authenticator.credential import StoredCredential
from authenticator.extensions.large_blob_key import SECRET_KEY as LARGE_BLOB_KEY_SECRET
from authenticator.extensions.third_party_payment import EXTRA_KEY as THIRD_PARTY_PAYMENT
from authenticator.pin_token import Permission, authorize_persistent
from authenticator.requests import PUBLIC_KEY, User, optional, required
from authenticator.status import CtapError, CtapStatus
from authenticator.user_verification import supported_pin_uv_protocols

Sub = CredentialManagementSubCommand
Out = CredentialManagementResponseKey
_NEXT: Final = frozenset(
    {Sub.ENUMERATE_RPS_GET_NEXT_RP, Sub.ENUMERATE_CREDENTIALS_GET_NEXT_CREDENTIAL}
)
_READ_ONLY: Final = frozenset(
    {
        Sub.GET_CREDS_METADATA,
        Sub.ENUMERATE_RPS_BEGIN,
        Sub.ENUMERATE_CREDENTIALS_BEGIN,
    }
)


@dataclass(frozen=True, slots=True)
class CredentialManagementRequest:
    sub_command: int
    params: dict[Any, Any] | None = None
    pin_uv_auth_protocol: int | None = None
    pin_uv_auth_param: bytes | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, params: Mapping[Any, Any]) -> CredentialManagementRequest:
        k = CredentialManagementKey
        return cls(
            sub_command=required(params, k.SUB_COMMAND, int, "subCommand"),
            params=optional(params, k.SUB_COMMAND_PARAMS, dict, "subCommandParams"),
            pin_uv_auth_protocol=optional(params, k.PIN_UV_AUTH_PROTOCOL, int, "pinUvAuthProtocol"),
            pin_uv_auth_param=optional(params, k.PIN_UV_AUTH_PARAM, bytes, "pinUvAuthParam"),
        )


@dataclass
class PendingEnumeration:
    """The rest of an RP or credential enumeration."""

    remaining: list[dict[int, Any]]
    continues: Sub
    continued_by: ClassVar[tuple[Command, ...]] = (
        Command.CREDENTIAL_MANAGEMENT,
        Command.CREDENTIAL_MANAGEMENT_PRE,
    )


def credential_management(
    ctx: Context, req: CredentialManagementRequest
) -> Handler[dict[int, Any] | None]:
    try:
        sub = Sub(req.sub_command)
    except ValueError:
        ctx.pending = None  # not a continuation: it ends an enumeration like any other
        raise CtapError(CtapStatus.INVALID_SUBCOMMAND, f"subcommand {req.sub_command}") from None
    if sub in _NEXT:
        return _next(ctx, sub)
    ctx.pending = None  # any other subcommand ends an enumeration
    if sub is Sub.UPDATE_USER_INFORMATION and not ctx.config.credential_management:
        # Not in the FIDO_2_1_PRE prototype.
        raise CtapError(CtapStatus.INVALID_SUBCOMMAND, "updateUserInformation")
    bound = _authorize(ctx, req, sub)
    params = req.params or {}
    match sub:
        case Sub.GET_CREDS_METADATA:
            _require_unbound(bound)
            count = ctx.store.discoverable_count()
            return {
                Out.EXISTING_RESIDENT_CREDENTIALS_COUNT: count,
                Out.MAX_POSSIBLE_REMAINING_RESIDENT_CREDENTIALS_COUNT: max(
                    0, ctx.config.max_resident_credentials - count
                ),
            }
        case Sub.ENUMERATE_RPS_BEGIN:
            _require_unbound(bound)
            rps: list[dict[int, Any]] = [
                {Out.RP: _rp_entity(rp_id, name), Out.RP_ID_HASH: rp_id_hash(rp_id)}
                for rp_id, name in _relying_parties(ctx).items()
            ]
            return _begin(ctx, rps, Out.TOTAL_RPS, Sub.ENUMERATE_RPS_GET_NEXT_RP)
        case Sub.ENUMERATE_CREDENTIALS_BEGIN:
            wanted = required(params, CredentialManagementParamKey.RP_ID_HASH, bytes, "rpIDHash")
            rp_id = next((r for r in _relying_parties(ctx) if rp_id_hash(r) == wanted), None)
            if bound is not None and rp_id_hash(bound) != wanted:
                raise CtapError(CtapStatus.PIN_AUTH_INVALID, "token is bound to another RP ID")
            if rp_id is None:
                raise CtapError(CtapStatus.NO_CREDENTIALS, "no credentials for this RP")
            credentials = [_describe(ctx, c) for c in ctx.store.discoverable(rp_id)]
            return _begin(
                ctx,
                credentials,
                Out.TOTAL_CREDENTIALS,
                Sub.ENUMERATE_CREDENTIALS_GET_NEXT_CREDENTIAL,
            )
        case Sub.DELETE_CREDENTIAL:
            stored = _find(ctx, params, bound)
            ctx.store.delete(stored.credential_id)
            return None
        case Sub.UPDATE_USER_INFORMATION:
            stored = _find(ctx, params, bound)
            user = User.parse(required(params, CredentialManagementParamKey.USER, dict, "user"))
            if user.id != stored.user_id:
                raise CtapError(CtapStatus.INVALID_PARAMETER, "user.id differs from the stored")
            # §6.8.6: absent or empty fields are removed.
            ctx.store.put(
                replace(
                    stored,
                    user_name=user.name or None,
                    user_display_name=user.display_name or None,
                )
            )
            return None
    raise CtapError(CtapStatus.INVALID_SUBCOMMAND, f"subcommand {req.sub_command}")
    yield  # a generator, like every handler


def _authorize(ctx: Context, req: CredentialManagementRequest, sub: Sub) -> str | None:
    """Check the token; return the RP ID the authorizing token is bound to, if any."""
    if req.pin_uv_auth_param is None:
        raise CtapError(CtapStatus.PUAT_REQUIRED, "credentialManagement needs a token")
    if req.pin_uv_auth_protocol is None:
        raise CtapError(CtapStatus.MISSING_PARAMETER, "pinUvAuthProtocol is missing")
    if req.pin_uv_auth_protocol not in supported_pin_uv_protocols(ctx):
        raise CtapError(CtapStatus.INVALID_PARAMETER, "unsupported pinUvAuthProtocol")
    message = bytes([sub]) + (cbor.encode(req.params) if req.params is not None else b"")
    protocol, param = req.pin_uv_auth_protocol, req.pin_uv_auth_param
    token = ctx.pin_token
    if sub in _READ_ONLY:
        try:
            token.verify(protocol, message, param)
        except CtapError:
            # CTAP 2.2 §6.8.2-§6.8.4: or the persistentPinUvAuthToken, with pcmr.
            authorize_persistent(ctx.store, ctx.sealer, protocol, param, message, Permission.PCMR)
            return None
        token.require_permission(Permission.CM)
    else:
        token.authorize(protocol, param, message, Permission.CM)
    return token.rp_id


def _require_unbound(bound: str | None) -> None:
    if bound is not None:
        # §6.8.2/§6.8.3: an RP-bound token may not see other RPs.
        raise CtapError(CtapStatus.PIN_AUTH_INVALID, "token is bound to an RP ID")


def _relying_parties(ctx: Context) -> dict[str, str | None]:
    """RP IDs of discoverable credentials, oldest first, with the newest name seen."""
    rps: dict[str, str | None] = {}
    for credential in ctx.store.credentials():
        if credential.discoverable:
            rps[credential.rp_id] = credential.rp_name or rps.get(credential.rp_id)
    return rps


def _rp_entity(rp_id: str, name: str | None) -> dict[str, str]:
    return {"id": rp_id} if name is None else {"id": rp_id, "name": name}


def _describe(ctx: Context, stored: StoredCredential) -> dict[int, Any]:
    secrets = ctx.open_secrets(stored)
    user: dict[str, Any] = {"id": stored.user_id}
    if stored.user_name is not None:
        user["name"] = stored.user_name
    if stored.user_display_name is not None:
        user["displayName"] = stored.user_display_name
    described: dict[int, Any] = {
        Out.USER: user,
        Out.CREDENTIAL_ID: {"id": stored.credential_id, "type": PUBLIC_KEY},
        Out.PUBLIC_KEY: secrets.key.cose_public_key(),
        Out.CRED_PROTECT: stored.cred_protect,
    }
    large_blob_key = secrets.extra.get(LARGE_BLOB_KEY_SECRET)
    if isinstance(large_blob_key, bytes):
        described[Out.LARGE_BLOB_KEY] = large_blob_key
    if stored.extra.get(THIRD_PARTY_PAYMENT) is True:
        described[Out.THIRD_PARTY_PAYMENT] = True
    return described


def _begin(
    ctx: Context, entries: list[dict[int, Any]], total_key: Out, continues: Sub
) -> dict[int, Any]:
    if not entries:
        raise CtapError(CtapStatus.NO_CREDENTIALS, "nothing to enumerate")
    first, rest = entries[0], entries[1:]
    if rest:
        ctx.pending = PendingEnumeration(rest, continues)
    return {**first, total_key: len(entries)}


def _next(ctx: Context, sub: Sub) -> dict[int, Any]:
    pending = ctx.pending
    if not isinstance(pending, PendingEnumeration) or pending.continues is not sub:
        ctx.pending = None
        raise CtapError(CtapStatus.NOT_ALLOWED, "no enumeration to continue")
    entry = pending.remaining.pop(0)
    if not pending.remaining:
        ctx.pending = None
    return entry


def _find(ctx: Context, params: Mapping[Any, Any], bound: str | None) -> StoredCredential:
    descriptor = required(params, CredentialManagementParamKey.CREDENTIAL_ID, dict, "credentialId")
    credential_id = required(descriptor, "id", bytes, "credentialId.id")
    stored = ctx.store.get(credential_id)
    if stored is None or not stored.discoverable:
        raise CtapError(CtapStatus.NO_CREDENTIALS, "no such discoverable credential")
    if bound is not None and bound != stored.rp_id:
        raise CtapError(CtapStatus.PIN_AUTH_INVALID, "token is bound to another RP ID")
    return stored
