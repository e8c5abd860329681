"""The plaintext of a synced record: what ``crypto.seal_record`` encrypts for the cloud.

A record carries everything another member device needs to rebuild the credential (the private
key in clear CBOR, since it is re-sealed under the receiving device's own master key), plus
``SyncMeta`` without the revision (which the cloud assigns). BS is not synced: each device
derives it. A tombstone carries only the credential ID.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from authenticator import cbor
from authenticator.credential import StoredCredential
from transports.sync.store import META_KEY, SyncMeta


class RecordError(Exception):
    """A decrypted record is not one this version understands."""


@dataclass(frozen=True, slots=True)
class Record:
    """A decrypted record: the credential (``sealed_secrets`` empty) and its secret CBOR."""

    credential: StoredCredential
    secrets: bytes = field(repr=False)  # CredentialSecrets CBOR: {"alg", "sk", ...}
    meta: SyncMeta

    @property
    def credential_id(self) -> bytes:
        return self.credential.credential_id


@dataclass(frozen=True, slots=True)
class Tombstone:
    credential_id: bytes


def encode_record(credential: StoredCredential, secrets: bytes) -> bytes:
    meta = SyncMeta.of(credential).to_dict()
    meta.pop("rev")
    extra = {k: v for k, v in credential.extra.items() if k != META_KEY}
    return cbor.encode(
        {
            "v": 1,
            "id": credential.credential_id,
            "rp": credential.rp_id,
            "user": credential.user_id,
            "alg": credential.algorithm,
            "secrets": secrets,
            "rk": credential.discoverable,
            "rp_name": credential.rp_name,
            "user_name": credential.user_name,
            "display": credential.user_display_name,
            "cp": credential.cred_protect,
            "be": credential.backup_eligible,
            "extra": extra,
            "meta": meta,
        }
    )


def encode_tombstone(credential_id: bytes) -> bytes:
    return cbor.encode({"v": 1, "id": credential_id, "deleted": True})


def decode(plaintext: bytes, revision: int) -> Record | Tombstone:
    try:
        fields: dict[str, Any] = cbor.loads_lenient(plaintext)
        if fields.get("deleted"):
            return Tombstone(bytes(fields["id"]))
        raw_meta = dict(fields["meta"])
        raw_meta["rev"] = revision
        credential = StoredCredential(
            credential_id=bytes(fields["id"]),
            rp_id=str(fields["rp"]),
            user_id=bytes(fields["user"]),
            algorithm=int(fields["alg"]),
            sealed_secrets=b"",
            discoverable=bool(fields["rk"]),
            rp_name=fields.get("rp_name"),
            user_name=fields.get("user_name"),
            user_display_name=fields.get("display"),
            cred_protect=int(fields.get("cp", 1)),
            backup_eligible=bool(fields["be"]),
            extra={**dict(fields.get("extra") or {}), META_KEY: raw_meta},
        )
        return Record(credential, bytes(fields["secrets"]), SyncMeta.of(credential))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RecordError(f"unreadable record: {exc}") from None
    except Exception as exc:  # cbor decoding errors of several types
        raise RecordError(f"undecodable record: {type(exc).__name__}") from None


def with_meta(credential: StoredCredential, meta: SyncMeta) -> StoredCredential:
    return replace(credential, extra={**credential.extra, META_KEY: meta.to_dict()})
