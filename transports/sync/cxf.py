"""FIDO Credential Exchange Format (CXF 1.0, Proposed Standard 2025-08-14) for passkeys:
export a device's keychain as a CXF JSON document and import one into another provider.

Field names follow reference §4.1 (the CXF errata example and Bitwarden's
``credential-exchange`` crate [S9, S10]): camelCase, base64url without padding, UNIX seconds.
Rules applied (CXF §3.3.3 as quoted in reference §4.1):

* ``credentialId``, ``rpId`` and ``userHandle`` are the registration values; ``key`` is the
  PKCS#8 DER private key; ``username``/``userDisplayName`` are the current (edited) names.
* ``fido2Extensions.hmacCredentials`` carries the hmac-secret secrets behind PRF
  (``credWithUV``/``credWithoutUV`` are CredRandomWithUV/WithoutUV), so the same PRF
  evaluation gives the same output after an import.
* Passkeys with a non-zero signature counter MUST NOT be exported (``CxfExport.excluded``).
* Importers MUST set the counter to zero and never increment it: only a provider whose profile
  counts nothing (``CounterMode.ZERO``) may import.
* Importers tolerate what they don't understand: unknown credential types are skipped, and a
  malformed passkey is reported in ``CxfImport.skipped``, never raised.

The importer applies its own rules: its AAGUID (not in CXF; an RP sees it on the next
registration only), BE/BS, and its rule for an (rpId, user.id) that already has a passkey.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from authenticator.config import CounterMode
from authenticator.credential import CredentialSecrets, StoredCredential
from authenticator.extensions.hmac_secret import CRED_RANDOM_SIZE, SECRET_WITH_UV, SECRET_WITHOUT_UV
from authenticator.extensions.hmac_secret import EXTRA_KEY as HMAC_SECRET_MARK
from authenticator.keys import CoseAlgorithm, CredentialKey
from authenticator.store.base import GLOBAL_COUNTER
from transports.sync.store import SyncMeta

if TYPE_CHECKING:
    from transports.sync.keychain import Device

CXF_VERSION: Final = {"major": 1, "minor": 0}
PASSKEY: Final = "passkey"
HMAC_ALGORITHM: Final = "hmac-sha256"  # CXF hmacCredentials.algorithm (reference §4.1)
MAX_ID_BYTES: Final = 64  # CXF: item and account IDs are at most 64 bytes
MAX_CREDENTIAL_ID: Final = 1023  # WebAuthn §4: credential IDs are at most 1023 bytes


class CxfError(Exception):
    """The document as a whole can't be imported (wrong version, not a CXF document)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected a base64url string")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


@dataclass(frozen=True, slots=True)
class CxfExport:
    document: dict[str, Any]
    excluded: tuple[bytes, ...] = ()  # credential IDs left out: non-zero counters

    def to_json(self) -> str:
        return json.dumps(self.document, indent=2, sort_keys=True)


@dataclass(frozen=True, slots=True)
class CxfImport:
    imported: tuple[bytes, ...] = ()
    skipped: tuple[tuple[str, str], ...] = field(default=())  # (credentialId or item, why)


def _signature_count(device: Device, credential_id: bytes) -> int:
    match device.authenticator.config.counter:
        case CounterMode.ZERO:
            return 0
        case CounterMode.GLOBAL:
            return device.local.peek_sign_count(GLOBAL_COUNTER)
        case _:
            return device.local.peek_sign_count(credential_id)


def _pkcs8(key: CredentialKey) -> bytes:
    return key.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def export_cxf(
    device: Device, *, exporter_rp_id: str | None = None, exporter_name: str | None = None
) -> CxfExport:
    """The device's visible passkeys as one CXF account (one item per passkey)."""
    provider = device.account.provider
    items: list[dict[str, Any]] = []
    excluded: list[bytes] = []
    sealer = device.store.sealer()
    for credential in device.passkeys():
        if _signature_count(device, credential.credential_id) != 0:
            excluded.append(credential.credential_id)  # CXF: non-zero counters MUST NOT go
            continue
        secrets = CredentialSecrets.open(
            sealer, credential.sealed_secrets, credential.credential_id
        )
        if secrets is None:
            excluded.append(credential.credential_id)
            continue
        meta = SyncMeta.of(credential)
        passkey: dict[str, Any] = {
            "type": PASSKEY,
            "credentialId": b64url(credential.credential_id),
            "rpId": credential.rp_id,
            "username": credential.user_name or "",
            "userDisplayName": credential.user_display_name or "",
            "userHandle": b64url(credential.user_id),
            "key": b64url(_pkcs8(secrets.key)),
        }
        hmac_credentials = _hmac_credentials(credential, secrets)
        if hmac_credentials is not None:
            passkey["fido2Extensions"] = {"hmacCredentials": hmac_credentials}
        items.append(
            {
                "id": b64url(hashlib.sha256(b"item" + credential.credential_id).digest()[:16]),
                "creationAt": int(meta.created_at),
                "modifiedAt": int(meta.modified_at),
                "title": credential.rp_name or credential.rp_id,
                "scope": {"urls": [f"https://{credential.rp_id}"], "androidApps": []},
                "credentials": [passkey],
            }
        )
    account_id = device.account.id
    document = {
        "version": dict(CXF_VERSION),
        "exporterRpId": exporter_rp_id or f"{provider.name}.fidoemu.invalid",
        "exporterDisplayName": exporter_name or provider.display_name,
        "timestamp": int(device.now()),
        "accounts": [
            {
                "id": b64url(hashlib.sha256(account_id.encode()).digest()[:16]),
                "username": account_id,
                "email": account_id if "@" in account_id else "",
                "collections": [],
                "items": items,
                "extensions": [],
            }
        ],
    }
    return CxfExport(document, tuple(excluded))


def _hmac_credentials(
    credential: StoredCredential, secrets: CredentialSecrets
) -> dict[str, str] | None:
    """CXF ``fido2Extensions.hmacCredentials`` (reference §4.1, §4.3): the credential's
    hmac-secret CredRandomWithUV and CredRandomWithoutUV, which PRF outputs are computed
    from (WebAuthn L3 §10.1.4). fidoemu keeps two secrets, as CXF does, so they map one to
    one; a credential made without hmac-secret has none."""
    if credential.extra.get(HMAC_SECRET_MARK) is not True:
        return None
    with_uv = secrets.extra.get(SECRET_WITH_UV)
    without_uv = secrets.extra.get(SECRET_WITHOUT_UV)
    if with_uv is None or without_uv is None:
        return None
    return {
        "algorithm": HMAC_ALGORITHM,
        "credWithUV": b64url(with_uv),
        "credWithoutUV": b64url(without_uv),
    }


def _import_hmac_credentials(entry: Mapping[str, Any]) -> dict[str, bytes]:
    """The hmac-secret secrets of an imported passkey (none when the exporter had none)."""
    extensions = entry.get("fido2Extensions")
    if extensions is None:
        return {}
    if not isinstance(extensions, Mapping):
        raise ValueError("fido2Extensions must be an object")
    hmac_credentials = extensions.get("hmacCredentials")
    if hmac_credentials is None:
        return {}
    if not isinstance(hmac_credentials, Mapping):
        raise ValueError("hmacCredentials must be an object")
    algorithm = hmac_credentials.get("algorithm")
    if algorithm != HMAC_ALGORITHM:
        raise ValueError(f"unsupported hmacCredentials algorithm {algorithm!r}")
    found = {
        SECRET_WITH_UV: unb64url(hmac_credentials.get("credWithUV")),
        SECRET_WITHOUT_UV: unb64url(hmac_credentials.get("credWithoutUV")),
    }
    if any(len(value) != CRED_RANDOM_SIZE for value in found.values()):
        raise ValueError(f"hmacCredentials secrets must be {CRED_RANDOM_SIZE} bytes")
    return found


_ALGORITHMS: Final = {"secp256r1": CoseAlgorithm.ES256, "secp384r1": CoseAlgorithm.ES384}


def _load_key(der: bytes) -> CredentialKey:
    key = serialization.load_der_private_key(der, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _ALGORITHMS:
        return CredentialKey(_ALGORITHMS[key.curve.name], key)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return CredentialKey(CoseAlgorithm.EDDSA, key)
    if isinstance(key, rsa.RSAPrivateKey):
        return CredentialKey(CoseAlgorithm.RS256, key)
    raise ValueError("unsupported key type")


def import_cxf(device: Device, document: Mapping[str, Any] | str) -> CxfImport:
    """Import every passkey of a CXF document into ``device``'s keychain (then synced)."""
    if device.authenticator.config.counter is not CounterMode.ZERO:
        raise CxfError("CXF importers must keep imported counters at zero: this profile counts")
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as exc:
            raise CxfError(f"not JSON: {exc}") from None
    if not isinstance(document, Mapping):
        raise CxfError("a CXF document is a JSON object")
    version = document.get("version")
    if not isinstance(version, Mapping) or version.get("major") != CXF_VERSION["major"]:
        raise CxfError(f"unsupported CXF version {version!r}")
    origin = str(document.get("exporterRpId", ""))
    imported: list[bytes] = []
    skipped: list[tuple[str, str]] = []
    accounts = document.get("accounts")
    for account in accounts if isinstance(accounts, list) else []:
        items = account.get("items") if isinstance(account, Mapping) else None
        for item in items if isinstance(items, list) else []:
            credentials = item.get("credentials") if isinstance(item, Mapping) else None
            for entry in credentials if isinstance(credentials, list) else []:
                if not isinstance(entry, Mapping) or entry.get("type") != PASSKEY:
                    continue  # CXF: unknown credential types are tolerated
                label = str(entry.get("credentialId", "?"))
                try:
                    credential_id = _import_passkey(device, entry, origin, item.get("title"))
                except (ValueError, TypeError, KeyError) as exc:
                    skipped.append((label, str(exc)))
                    continue
                imported.append(credential_id)
    return CxfImport(tuple(imported), tuple(skipped))


def _import_passkey(device: Device, entry: Mapping[str, Any], origin: str, title: object) -> bytes:
    credential_id = unb64url(entry["credentialId"])
    if not 16 <= len(credential_id) <= MAX_CREDENTIAL_ID:
        raise ValueError("credentialId length out of range")
    rp_id = entry["rpId"]
    if not isinstance(rp_id, str) or not rp_id:
        raise ValueError("rpId missing")
    user_id = unb64url(entry["userHandle"])
    if not 1 <= len(user_id) <= MAX_ID_BYTES:
        raise ValueError("userHandle must be 1 to 64 bytes")
    key = _load_key(unb64url(entry["key"]))
    provider = device.account.provider
    if key.algorithm not in provider.algorithms:
        raise ValueError(f"{provider.display_name} does not support {key.algorithm.name}")
    if device.store.record(credential_id) is not None:
        raise ValueError("already in this keychain")
    name, display = entry.get("username"), entry.get("userDisplayName")
    hmac_secrets = _import_hmac_credentials(entry)
    extra: dict[str, Any] = {HMAC_SECRET_MARK: True} if hmac_secrets else {}
    sealed = CredentialSecrets(key, hmac_secrets).seal(device.store.sealer(), credential_id)
    credential = StoredCredential(
        credential_id=credential_id,
        rp_id=rp_id,
        user_id=user_id,
        algorithm=int(key.algorithm),
        sealed_secrets=sealed,
        discoverable=True,
        created=device.store.next_sequence(),
        user_name=name if isinstance(name, str) else None,
        user_display_name=display if isinstance(display, str) else None,
        # The item's title is what the exporter showed: our export writes the RP's name.
        rp_name=title if isinstance(title, str) and title and title != rp_id else None,
        backup_eligible=provider.backup_eligible,  # the importer syncs it now (reference §4.3)
        extra=extra,
    )
    credential = SyncMeta(origin=origin).attach(credential)
    replaces = [c.credential_id for c in device.store.discoverable_for_user(rp_id, user_id)]
    device.store.put(credential, replaces=replaces)
    return credential_id


__all__ = ["CxfError", "CxfExport", "CxfImport", "b64url", "export_cxf", "import_cxf"]
