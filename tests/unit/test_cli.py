"""The ``fidoemu`` command, run as users run it (the console script in a subprocess) and through
``main([...])``: the demo's reuse of its passkey across runs, usage errors, unusable store files,
``info`` and ``bench``. python-fido2 and py_webauthn check what the demo left behind."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from fido2 import cbor as fido2_cbor
from fido2.attestation import PackedAttestation
from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.cose import CoseKey
from fido2.webauthn import (
    AttestationObject,
    AuthenticatorData,
    PublicKeyCredentialRequestOptions,
    UserVerificationRequirement,
)
from webauthn import verify_authentication_response

from authenticator import FIDOEMU_AAGUID, Authenticator, SqliteStore
from transports import bench
from transports.cli import (
    DEMO_ORIGIN,
    DEMO_RP,
    DEMO_USER,
    DemoRecord,
    default_store_path,
    demo_record_path,
    main,
)
from transports.inprocess import InProcessDevice

COUNTER_LINE = re.compile(r"signature counter: (\d+) → (\d+)")


def _fidoemu() -> list[str]:
    """The installed console script (pyproject's ``fidoemu = transports.cli:main``)."""
    script = Path(sys.executable).parent / "fidoemu"
    found = str(script) if script.exists() else shutil.which("fidoemu")
    assert found is not None, "the fidoemu console script is not installed"
    return [found]


def _run(args: list[str], data_home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_DATA_HOME": str(data_home)}
    return subprocess.run(  # noqa: S603 - our own console script
        [*_fidoemu(), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def _decode_map(data: bytes) -> dict[int, Any]:
    decoded = fido2_cbor.decode(data)
    assert isinstance(decoded, dict)
    return decoded


def _counters(output: str) -> tuple[int, int]:
    match = COUNTER_LINE.search(output)
    assert match is not None, output
    return int(match.group(1)), int(match.group(2))


def test_default_store_path_follows_xdg(tmp_path: Path) -> None:
    assert default_store_path({"XDG_DATA_HOME": str(tmp_path)}) == (
        tmp_path / "fidoemu" / "store.sqlite"
    )
    fallback = Path.home() / ".local" / "share" / "fidoemu" / "store.sqlite"
    assert default_store_path({}) == fallback
    assert default_store_path({"XDG_DATA_HOME": "relative/dir"}) == fallback


def test_demo_twice_reuses_the_discoverable_credential(tmp_path: Path) -> None:
    first = _run(["demo"], tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    store_path = tmp_path / "fidoemu" / "store.sqlite"
    assert store_path.exists()
    assert "→ authenticatorMakeCredential (0x01)" in first.stdout
    assert "x5c chain verified up to the store's root" in first.stdout
    before_first, after_first = _counters(first.stdout)
    assert after_first > before_first

    second = _run(["demo"], tmp_path)
    assert second.returncode == 0, second.stderr
    assert "Registration: skipped" in second.stdout
    assert "authenticatorMakeCredential" not in second.stdout
    assert "→ authenticatorGetAssertion (0x02)" in second.stdout
    before_second, after_second = _counters(second.stdout)
    assert before_second == after_first
    assert after_second > after_first

    # The store holds exactly one passkey for the demo account, its counter where the demo
    # said it is.
    store = SqliteStore(store_path)
    try:
        (credential,) = store.discoverable(str(DEMO_RP.id))
        assert credential.user_id == DEMO_USER.id
        assert store.peek_sign_count(credential.credential_id) == after_second
    finally:
        store.close()


def test_demo_credential_verifies_with_py_webauthn(tmp_path: Path) -> None:
    """What the demo registered is a working passkey: log in with it outside the CLI and let
    py_webauthn check the signature against the public key the demo's RP recorded."""
    store_path = tmp_path / "store.sqlite"
    assert main(["demo", "--store", str(store_path)]) == 0
    record = DemoRecord.load(demo_record_path(store_path))
    assert record is not None

    store = SqliteStore(store_path)
    try:
        client = Fido2Client(
            InProcessDevice(Authenticator(store, strict=True)),
            DefaultClientDataCollector(DEMO_ORIGIN),
        )
        challenge = os.urandom(32)
        assertion = client.get_assertion(
            PublicKeyCredentialRequestOptions(
                challenge=challenge,
                rp_id=DEMO_RP.id,
                user_verification=UserVerificationRequirement.DISCOURAGED,  # no PIN is set
            )
        ).get_response(0)
    finally:
        store.close()
    verified = verify_authentication_response(
        credential=dict(assertion),
        expected_challenge=challenge,
        expected_rp_id=str(DEMO_RP.id),
        expected_origin=DEMO_ORIGIN,
        credential_public_key=fido2_cbor.encode(dict(record.credential.public_key)),
        credential_current_sign_count=record.sign_count,
    )
    assert verified.credential_id == record.credential.credential_id
    assert verified.new_sign_count > record.sign_count


def test_demo_reregisters_when_the_store_lost_the_credential(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_path = tmp_path / "store.sqlite"
    assert main(["demo", "--store", str(store_path)]) == 0
    first = DemoRecord.load(demo_record_path(store_path))
    store_path.unlink()
    for sidecar in tmp_path.glob("store.sqlite-*"):  # SQLite's WAL files
        sidecar.unlink()
    capsys.readouterr()
    assert main(["demo", "--store", str(store_path)]) == 0
    out = capsys.readouterr().out
    assert "does not hold" in out
    assert "authenticatorMakeCredential" in out
    second = DemoRecord.load(demo_record_path(store_path))
    assert first is not None and second is not None
    assert second.credential.credential_id != first.credential.credential_id


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bogus"], "invalid choice"),
        (["demo", "--unknown"], "unrecognized arguments"),
        (["demo", "--profile", "toaster"], "invalid choice"),
        (["bench", "--rounds", "0"], "not positive"),
        (["bench", "--batch", "many"], "not a whole number"),
        ([], "usage:"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_bad_arguments_from_the_console_script(tmp_path: Path) -> None:
    result = _run(["demo", "--store"], tmp_path)
    assert result.returncode == 2
    assert "expected one argument" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "demo" in capsys.readouterr().out


def test_corrupt_store_is_a_clear_error(tmp_path: Path) -> None:
    store_path = tmp_path / "store.sqlite"
    store_path.write_bytes(b"this is not a database, just some bytes" * 100)
    result = _run(["demo", "--store", str(store_path)], tmp_path)
    assert result.returncode == 1
    assert "not a usable fidoemu store" in result.stderr
    assert "Traceback" not in result.stderr
    assert store_path.read_bytes().startswith(b"this is not a database")  # left untouched


def test_newer_schema_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store_path = tmp_path / "store.sqlite"
    SqliteStore(store_path).close()
    with sqlite3.connect(store_path) as db:
        db.execute("UPDATE schema_version SET version = version + 1")
    db.close()
    assert main(["info", "--store", str(store_path)]) == 1
    err = capsys.readouterr().err
    assert "upgrade fidoemu" in err


def test_unreadable_demo_record_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_path = tmp_path / "store.sqlite"
    demo_record_path(store_path).write_text("{not json")
    assert main(["demo", "--store", str(store_path)]) == 1
    assert "delete it" in capsys.readouterr().err


def test_info_prints_get_info_and_the_store_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_path = tmp_path / "store.sqlite"
    assert main(["info", "--store", str(store_path)]) == 0
    out = capsys.readouterr().out
    assert f"aaguid (3): h'{FIDOEMU_AAGUID.hex()}'" in out
    assert "versions (1): ['U2F_V2', 'FIDO_2_0'" in out
    pem = out[out.index("-----BEGIN CERTIFICATE-----") :]
    printed_root = x509.load_pem_x509_certificate(pem.encode())
    store = SqliteStore(store_path)
    try:
        expected = Authenticator(store).attestation_root_pem()
    finally:
        store.close()
    assert printed_root == x509.load_pem_x509_certificate(expected.encode())


def test_bench_prints_every_row_with_a_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--rounds", "3", "--batch", "2", "--sqlite-batch", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("makeCredential", "getAssert"))]
    assert len(rows) == 6
    for line in rows:
        ours, baseline, ratio = (float(x.replace(",", "")) for x in line.split()[-3:])
        assert ours > 0 and baseline > 0
        assert ratio == pytest.approx(ours / baseline, rel=0.02)  # printed rounded
    assert any("sqlite" in line for line in rows)
    webauthn = [line for line in out.splitlines() if line.startswith("WebAuthn ")]
    assert len(webauthn) == 2
    assert any("registration" in line for line in webauthn)
    assert any("authentication" in line for line in webauthn)
    for line in webauthn:
        ours, baseline, ratio = (float(x.replace(",", "")) for x in line.split()[-3:])
        assert ours > 0 and baseline > 0
        assert ratio == pytest.approx(ours / baseline, rel=0.02, abs=0.006)  # 2 decimals
    framer = {}
    for line in out.splitlines():
        match = re.fullmatch(r"(CTAPHID .+?)\s+([\d,]+\.\d) (packets/s|round trips/s)", line)
        if match:
            framer[match[1]] = (float(match[2].replace(",", "")), match[3])
    assert set(framer) == {
        "CTAPHID PING 57 B through the framer",
        "CTAPHID PING 1200 B through the framer",
        "CTAPHID PING 7609 B through the framer",
        "CTAPHID getInfo through CtapHidSession",
    }, out
    assert all(rate > 0 for rate, _ in framer.values())
    assert framer["CTAPHID getInfo through CtapHidSession"][1] == "round trips/s"


def test_compare_alternates_and_measures_both_sides() -> None:
    calls: list[str] = []
    ours, baseline = bench.compare(
        lambda: calls.append("ours"), lambda: calls.append("lean"), rounds=4, batch=3
    )
    assert calls.count("ours") == calls.count("lean") == 1 + 4 * 3  # one warm-up call each
    measured = calls[2:]
    assert measured[:3] == ["ours"] * 3 and measured[3:6] == ["lean"] * 3
    assert measured[6:9] == ["lean"] * 3 and measured[9:12] == ["ours"] * 3
    assert ours > 0 and baseline > 0


def test_run_accepts_contributed_providers() -> None:
    settings = bench.BenchSettings(rounds=1, batch=1)
    rows = bench.run(
        settings,
        [lambda: [("framer", 2.0, 1.0)], lambda s: [bench.Row("custom", s.batch, None, "MB/s")]],
    )
    assert [row.name for row in rows] == ["framer", "custom"]
    assert rows[0].ratio == 2.0
    assert rows[1].ratio is None
    assert "MB/s" in bench.format_row(rows[1])


def test_lean_pipeline_does_the_real_work() -> None:
    """The baseline is honest: its responses verify like the emulator's."""
    auth = Authenticator(strict=True)
    lean = bench.lean_for(auth)
    client_data_hash = os.urandom(32)
    response = lean.make_credential(
        bench.make_credential_request(resident=True, client_data_hash=client_data_hash)
    )
    assert response[0] == 0
    decoded = _decode_map(response[1:])
    attestation = AttestationObject.create(decoded[1], AuthenticatorData(decoded[2]), decoded[3])
    result = PackedAttestation().verify(
        attestation.att_stmt, attestation.auth_data, client_data_hash
    )
    assert result.trust_path  # x5c: the batch certificate of auth's store

    response = lean.get_assertion(bench.get_assertion_request(client_data_hash=client_data_hash))
    decoded = _decode_map(response[1:])
    public_key = CoseKey.for_alg(-7).from_cryptography_key(lean.assertion_key.public_key())
    public_key.verify(decoded[2] + client_data_hash, decoded[3])  # raises if invalid
    assert (
        AuthenticatorData(decoded[2]).rp_id_hash
        == hashlib.sha256(b"bench.fidoemu.example").digest()
    )
