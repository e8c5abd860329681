"""Unit tests of the sync pieces: provider profiles -> core config, record encryption and key
shares, CXF input validation (bad input is reported, never raised), and the benchmark."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authenticator import AttestationFormat, CounterMode, SeededEntropy
from transports.sync import (
    BITWARDEN,
    GOOGLE_PASSWORD_MANAGER,
    ICLOUD_KEYCHAIN,
    ONEPASSWORD,
    PROVIDERS,
    BackupState,
    Cloud,
    CryptoError,
)
from transports.sync.bench import run
from transports.sync.crypto import (
    DeviceIdentity,
    DomainSecrets,
    open_record,
    seal_record,
    wrap_share,
)
from transports.sync.cxf import CxfError, b64url, import_cxf

ENTROPY = SeededEntropy(5)


@pytest.mark.parametrize("provider", list(PROVIDERS.values()), ids=list(PROVIDERS))
def test_profiles_become_passkey_configs(provider: object) -> None:
    from transports.sync import ProviderProfile

    assert isinstance(provider, ProviderProfile)
    config = provider.authenticator_config()
    assert config.aaguid == provider.aaguid.bytes
    assert config.attestation is AttestationFormat.NONE
    assert config.counter is CounterMode.ZERO
    assert config.backup_eligible and config.backup_state
    assert config.algorithms == provider.algorithms
    assert not config.u2f


def test_profile_overrides() -> None:
    synced_only = ONEPASSWORD.with_(backup_state=BackupState.SYNCED)
    assert not synced_only.authenticator_config().backup_state
    assert not GOOGLE_PASSWORD_MANAGER.authenticator_config(has_biometrics=False).built_in_uv
    assert ICLOUD_KEYCHAIN.authenticator_config(has_biometrics=False).built_in_uv
    assert BITWARDEN.authenticator_config().discoverable_only is False
    assert ICLOUD_KEYCHAIN.with_(propagation_delay=9.0).propagation_delay == 9.0
    assert ICLOUD_KEYCHAIN.propagation_delay == 2.0


def test_records_open_only_with_their_epoch_and_header() -> None:
    secrets = DomainSecrets.create(ENTROPY)
    envelope = seal_record(
        secrets, "alice", b"cred", b"plaintext", tombstone=False, author="phone", entropy=ENTROPY
    )
    assert open_record(secrets, "alice", envelope) == b"plaintext"
    with pytest.raises(CryptoError):
        open_record(secrets, "mallory", envelope)  # moved to another account
    with pytest.raises(CryptoError):
        open_record(secrets, "alice", replace(envelope, tombstone=True))
    with pytest.raises(CryptoError):
        open_record(secrets, "alice", replace(envelope, ciphertext=envelope.ciphertext[:-1]))
    rotated = secrets.rotated(ENTROPY)
    newer = seal_record(
        rotated, "alice", b"cred", b"v2", tombstone=False, author="phone", entropy=ENTROPY
    )
    assert newer.epoch == envelope.epoch + 1
    with pytest.raises(CryptoError):
        open_record(secrets, "alice", newer)  # a removed member holds only the old epoch
    assert open_record(rotated, "alice", envelope) == b"plaintext"  # members keep old epochs
    assert secrets.routing_id(b"cred") == rotated.routing_id(b"cred") != b"cred"


def test_shares_open_only_for_their_member() -> None:
    alice, bob = DeviceIdentity.generate(ENTROPY), DeviceIdentity.generate(ENTROPY)
    share = wrap_share(alice.public_key, b"domain secrets", b"aad", ENTROPY)
    assert alice.open_share(share, b"aad") == b"domain secrets"
    with pytest.raises(CryptoError):
        bob.open_share(share, b"aad")
    with pytest.raises(CryptoError):
        alice.open_share(share, b"other aad")
    assert (
        "hidden" in repr(alice)
        and repr(secrets := DomainSecrets.create(ENTROPY)).count(secrets.routing_key.hex()) == 0
    )


@pytest.fixture
def device() -> object:
    return Cloud(strict=True).account("a", provider=GOOGLE_PASSWORD_MANAGER).device("pixel")


def _document(passkey: Mapping[str, object]) -> dict[str, Any]:
    return {
        "version": {"major": 1, "minor": 0},
        "exporterRpId": "x.example",
        "accounts": [{"id": "AA", "items": [{"id": "BB", "credentials": [passkey]}]}],
    }


def test_cxf_import_reports_bad_passkeys_and_skips_unknown_types(device: object) -> None:
    from transports.sync import Device

    assert isinstance(device, Device)
    bad = {"type": "passkey", "credentialId": "!!", "rpId": "x", "userHandle": "AA", "key": "AA"}
    document = _document(bad)
    accounts = document["accounts"]
    assert isinstance(accounts, list)
    accounts[0]["items"][0]["credentials"].append({"type": "note", "content": "hello"})
    report = import_cxf(device, document)
    assert report.imported == () and len(report.skipped) == 1
    short_id = dict(bad, credentialId=b64url(b"short"), key=b64url(b"not a key"))
    assert import_cxf(device, _document(short_id)).skipped[0][1].startswith("credentialId")
    with pytest.raises(CxfError):
        import_cxf(device, {"version": {"major": 2}})
    with pytest.raises(CxfError):
        import_cxf(device, "not json")
    with pytest.raises(CxfError):
        import_cxf(device, json.dumps([1, 2]))


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
        max_leaves=12,
    )
)
def test_cxf_import_never_crashes_on_arbitrary_json(value: object) -> None:
    device = Cloud(strict=True).account("a", provider=ICLOUD_KEYCHAIN).device("phone")
    for document in (value, {"version": {"major": 1}, "accounts": value}):
        try:
            report = import_cxf(device, json.dumps(document))
        except CxfError:
            continue
        assert report.imported == ()
    assert device.passkeys() == []


def test_benchmark_runs_small(tmp_path: Path) -> None:
    lines: list[str] = []
    ratio = run(200, "memory", tmp_path, out=lines.append)
    assert ratio > 0 and any("ratio" in line for line in lines)
