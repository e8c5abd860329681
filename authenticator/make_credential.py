"""authenticatorMakeCredential (CTAP 2.1 §6.1.2), step by step."""

from __future__ import annotations

from typing import Any, Final

from authenticator import extensions
from authenticator.auth_data import BE, BS, UP, UV, AttestedCredentialData, build_auth_data
from authenticator.commands import MakeCredentialResponseKey
from authenticator.config import AttestationFormat, AuthenticatorConfig, NonResident
from authenticator.config_command import enterprise_attestation
from authenticator.context import Context, Handler, rp_id_hash
from authenticator.credential import (
    STORED_ID_SIZE,
    CredentialSecrets,
    StoredCredential,
    wrap_credential_id,
)
from authenticator.keys import CoseAlgorithm, CredentialKey
from authenticator.pin_token import Permission
from authenticator.presence import NeedPresence
from authenticator.requests import MakeCredentialRequest
from authenticator.status import CtapError, CtapStatus
from authenticator.user_verification import check_pin_uv_auth_param, verify_user

_COSE_ALGORITHMS: Final = {int(a): a for a in CoseAlgorithm}  # a dict read: no enum call
_MC_PERMISSION: Final = Permission.MC  # bound once: enum class attribute reads are slow
_WRAPPABLE = frozenset(
    {CoseAlgorithm.ES256, CoseAlgorithm.ES384, CoseAlgorithm.EDDSA, CoseAlgorithm.ED25519}
)


def make_credential(ctx: Context, req: MakeCredentialRequest) -> Handler[dict[int, Any]]:
    config = ctx.config
    # Steps 1-2: pinUvAuthParam / pinUvAuthProtocol (zero-length probe, protocol support).
    if req.pin_uv_auth_param is not None:
        yield from check_pin_uv_auth_param(
            ctx, req.rp.id, req.pin_uv_auth_param, req.pin_uv_auth_protocol
        )

    # Step 3: the first entry of pubKeyCredParams we support, in the RP's order.
    algorithm = _first_supported(req.algorithms, config)
    if algorithm is None:
        raise CtapError(CtapStatus.UNSUPPORTED_ALGORITHM, "no supported pubKeyCredParams entry")

    # Step 5: options. Unknown options are ignored.
    rk = req.options.get("rk", False) or config.discoverable_only
    if rk and not config.resident_keys:
        raise CtapError(CtapStatus.UNSUPPORTED_OPTION, "rk: no resident key storage")
    if req.options.get("up") is False:
        # CTAP 2.1 §6.1.2 step 5.3: makeCredential always tests user presence.
        raise CtapError(CtapStatus.INVALID_OPTION, "up=false is not allowed in makeCredential")
    uv = req.options.get("uv", False)
    if uv and not config.built_in_uv:
        # CTAP 2.1 §6.1.2 step 5.2: "uv" is about a built-in method (not the PIN).
        raise CtapError(CtapStatus.INVALID_OPTION, "uv: no built-in user verification")
    # Extension inputs are checked before any touch is asked for (extensions/base.py).
    extension_inputs = extensions.parse_registration(ctx, req.extensions, rk=rk)

    # Step 9: enterprise attestation (checked before user verification, in the spec's order).
    enterprise = enterprise_attestation(ctx, req.enterprise_attestation, req.rp.id)
    # Steps 6-11: alwaysUv, makeCredUvNotRqd, then the pinUvAuthToken or built-in UV.
    verification = yield from verify_user(
        ctx,
        rp_id=req.rp.id,
        client_data_hash=req.client_data_hash,
        param=req.pin_uv_auth_param,
        protocol=req.pin_uv_auth_protocol,
        uv=uv,
        permission=_MC_PERMISSION,
        rk=req.options.get("rk", False),
        reason="register",
    )
    verified = verification.user_verified

    rp_hash = rp_id_hash(req.rp.id)
    # Step 12: excludeList. Wait for a touch whatever its outcome, then answer EXCLUDED, so
    # that the platform learns nothing without the user's consent.
    if req.exclude_list and any(
        _excludes(ctx, rp_hash, req.rp.id, d.id, verified) for d in req.exclude_list
    ):
        yield NeedPresence(req.rp.id, reason="excluded credential")
        raise CtapError(CtapStatus.CREDENTIAL_EXCLUDED)

    # Step 14: user presence, unless the UV gesture or the token's userPresent proved it.
    yield from verification.collect_presence(ctx, "register")

    # Step 15: extensions decide what the credential carries (credProtect, secrets, ...).
    reg = extensions.Registration(ctx, req.rp.id, rk=rk, user_verified=verified)
    extensions.prepare_registration(reg, extension_inputs)

    # Step 15: the credential.
    key = CredentialKey.generate(algorithm, ctx.entropy)
    flags = UP | (UV if verified else 0)
    if config.backup_eligible:
        flags |= BE
    if config.backup_state:
        flags |= BS
    wrapped = not (
        rk
        or reg.needs_record
        or config.non_resident is NonResident.STORED
        or key.algorithm not in _WRAPPABLE
    )
    if wrapped:
        credential_id = wrap_credential_id(ctx.sealer, rp_hash, key, reg.cred_protect, reg.extra)
    else:
        credential_id = _store(ctx, req, rp_hash, key, rk, reg)
    if extension_inputs:
        view = extensions.CredentialView(
            credential_id,
            req.rp.id,
            wrapped,
            reg.cred_protect,
            reg.extra,
            {} if wrapped else reg.secrets,
        )
        extensions.registration_outputs(reg, extension_inputs, view)

    # Step 16-19: authenticator data and attestation.
    fmt = AttestationFormat.PACKED if enterprise else config.attestation
    # WebAuthn §8.6 / CTAP 2.1 §11.1: a fido-u2f attested credential carries a zero AAGUID.
    aaguid = bytes(16) if fmt is AttestationFormat.FIDO_U2F else config.aaguid
    auth_data = build_auth_data(
        rp_hash,
        flags,
        ctx.registration_sign_count(),
        AttestedCredentialData(aaguid, credential_id, key.encoded_cose_public_key()),
        reg.outputs,
    )
    attestation = ctx.attestation.attest(fmt, config.aaguid, auth_data, req.client_data_hash, key)
    response: dict[int, Any] = {
        MakeCredentialResponseKey.FMT: attestation.fmt,
        MakeCredentialResponseKey.AUTH_DATA: auth_data,
        MakeCredentialResponseKey.ATT_STMT: attestation.statement,
    }
    if enterprise:
        # The per-store batch certificate identifies this device (its root is per store).
        response[MakeCredentialResponseKey.EP_ATT] = True
    if reg.large_blob_key is not None:
        response[MakeCredentialResponseKey.LARGE_BLOB_KEY] = reg.large_blob_key
    if reg.unsigned_outputs:
        response[MakeCredentialResponseKey.UNSIGNED_EXTENSION_OUTPUTS] = reg.unsigned_outputs
    return response


def _first_supported(
    algorithms: tuple[int, ...], config: AuthenticatorConfig
) -> CoseAlgorithm | None:
    for algorithm in algorithms:
        if config.supports(algorithm):
            return _COSE_ALGORITHMS[algorithm]
    return None


def _store(
    ctx: Context,
    req: MakeCredentialRequest,
    rp_hash: bytes,
    key: CredentialKey,
    rk: bool,
    reg: extensions.Registration,
) -> bytes:
    replaces: list[bytes] = []
    if rk:
        # CTAP 2.1 §6.1.2 step 15: a credential for the same RP and user handle is overwritten.
        replaces = [
            c.credential_id for c in ctx.store.discoverable_for_user(req.rp.id, req.user.id)
        ]
        if ctx.store.discoverable_count() - len(replaces) >= ctx.config.max_resident_credentials:
            raise CtapError(CtapStatus.KEY_STORE_FULL, "no room for another resident key")
    credential_id = ctx.entropy.random_bytes(STORED_ID_SIZE)
    credential = StoredCredential(
        credential_id=credential_id,
        rp_id=req.rp.id,
        user_id=req.user.id,
        algorithm=int(key.algorithm),
        sealed_secrets=CredentialSecrets(key, reg.secrets).seal(ctx.sealer, credential_id),
        discoverable=rk,
        created=ctx.store.next_sequence(),
        rp_name=req.rp.name,
        user_name=req.user.name,
        user_display_name=req.user.display_name,
        backup_eligible=ctx.config.backup_eligible,
        backup_state=ctx.config.backup_state,
        cred_protect=reg.cred_protect,
        extra=reg.extra,
    )
    ctx.store.put(credential, replaces=replaces)
    return credential_id


def _excludes(
    ctx: Context, rp_hash: bytes, rp_id: str, credential_id: bytes, user_verified: bool
) -> bool:
    """Whether an excludeList entry names a credential here that the platform may learn of:
    CTAP 2.1 §6.1.2 step 12 skips a userVerificationRequired one unless the user was verified
    in steps 6-11 (by a pinUvAuthToken or the built-in UV gesture)."""
    unwrapped = ctx.unwrap(rp_hash, credential_id)
    if unwrapped is not None:
        level = unwrapped.cred_protect
    else:
        stored = ctx.store.get(credential_id)
        if stored is None or stored.rp_id != rp_id:
            return False
        level = stored.cred_protect
    return level < extensions.CredProtect.UV_REQUIRED or user_verified
