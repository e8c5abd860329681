"""The fidoemu pytest plugin as a user's test suite sees it: pytest runs in a subprocess on a
small test file (the plugin is loaded by its pytest11 entry point), and we read the outcome:
marker and command-line configuration, fixtures, the CTAP trace in a failure report, and
deterministic mode (same seed, byte-identical registrations and assertions across runs)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

SUITE = """
import json

import pytest

from transports.webauthn import NotAllowedError, b64url, deny
from transports.webauthn.checks import assert_flags

OPTIONS = {
    "rp": {"id": "example.com", "name": "Example"},
    "user": {"id": b64url(b"user-1"), "name": "alice", "displayName": "Alice"},
    "challenge": b64url(bytes(32)),
    "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
    "authenticatorSelection": {"residentKey": "required"},
    "attestation": "direct",
}
LOGIN = {"challenge": b64url(b"login"), "rpId": "example.com"}


@pytest.mark.fidoemu(origin="https://login.example.com")
def test_origin_from_marker(webauthn_client):
    assert webauthn_client.origin == "https://login.example.com"
    assert webauthn_client.create(OPTIONS)["type"] == "public-key"


def test_origin_from_command_line(webauthn_client):
    assert webauthn_client.origin == "https://cli.example.com"


@pytest.mark.fidoemu(profile="platform", attestation="none")
def test_profile_from_marker(authenticator, webauthn_client, authenticator_factory):
    assert authenticator.config.platform
    response = webauthn_client.create(OPTIONS)
    assert response["authenticatorAttachment"] == "platform"
    another = authenticator_factory("security-key", backup_eligible=True)
    assert another is not authenticator and another.config.backup_eligible


def test_denied_shows_the_trace(webauthn_client, fidoemu_user):
    webauthn_client.create(OPTIONS)
    fidoemu_user.then(deny())
    webauthn_client.get(LOGIN)


def test_faults_fixture(authenticator, webauthn_client):
    webauthn_client.create(OPTIONS)
    authenticator.faults.user_present_off = True
    assert_flags(webauthn_client.get(LOGIN), up=False)


def test_deterministic(webauthn_client):
    created = webauthn_client.create(OPTIONS)
    asserted = webauthn_client.get(LOGIN)
    print("\\nRESULT " + json.dumps([created, asserted], sort_keys=True))


@pytest.mark.fidoemu(seed="from-the-marker")
def test_seed_from_marker(webauthn_client):
    print("\\nMARKER " + json.dumps(webauthn_client.create(OPTIONS), sort_keys=True))


@pytest.mark.fidoemu(origin="https://widget.example.com", top_origin="https://shop.example")
def test_top_origin_from_marker(webauthn_client):
    assert webauthn_client.top_origin == "https://shop.example"
    response = webauthn_client.create(OPTIONS)
    client_data = json.loads(client_data_of(response))
    assert client_data["crossOrigin"] is True
    assert client_data["topOrigin"] == "https://shop.example"
    assert client_data["origin"] == "https://widget.example.com"


def client_data_of(response):
    from transports.webauthn import b64url_decode

    return b64url_decode(response["response"]["clientDataJSON"], "clientDataJSON")
"""

INI_SUITE = """
import json

from transports.webauthn import b64url

OPTIONS = {
    "rp": {"id": "example.com", "name": "Example"},
    "user": {"id": b64url(b"user-1"), "name": "alice", "displayName": "Alice"},
    "challenge": b64url(bytes(32)),
    "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
}


def test_from_ini(webauthn_client):
    print("\\nORIGIN " + webauthn_client.origin)
    print("\\nINI " + json.dumps(webauthn_client.create(OPTIONS), sort_keys=True))
"""


def run_suite(
    tmp_path: Path, *args: str, suite: str = SUITE, origin: bool = True
) -> subprocess.CompletedProcess[str]:
    test_file = tmp_path / "test_suite.py"
    test_file.write_text(suite)
    options = ["--fidoemu-origin", "https://cli.example.com"] if origin else []
    return subprocess.run(  # noqa: S603 - our own interpreter on our own test file
        [
            sys.executable,
            "-m",
            "pytest",
            str(test_file),
            "-p",
            "no:cacheprovider",
            "-s",
            "-q",
            "--rootdir",
            str(tmp_path),
            *options,
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )


def results(output: str, tag: str = "RESULT") -> list[Any]:
    found = re.findall(rf"^{tag} (.*)$", output, re.MULTILINE)
    return [json.loads(line) for line in found]


def test_plugin_fixtures_markers_traces_and_determinism(tmp_path: Path) -> None:
    first = run_suite(tmp_path, "--fidoemu-seed", "1234")
    output = first.stdout
    assert "1 failed, 7 passed" in output, output
    assert "FAILED test_suite.py::test_denied_shows_the_trace - transports.webauthn" in output
    # The failure report carries the decoded CTAP trace.
    assert "fidoemu CTAP trace" in output
    assert "MAKE_CREDENTIAL -> OK" in output
    assert "GET_ASSERTION -> OPERATION_DENIED" in output
    assert "user: deny" in output

    again = run_suite(tmp_path, "--fidoemu-seed", "1234")
    other_seed = run_suite(tmp_path, "--fidoemu-seed", "99")
    unseeded = run_suite(tmp_path)
    [seeded] = results(output)
    assert results(again.stdout) == [seeded]  # byte-identical: IDs, keys, signatures, certs
    assert results(other_seed.stdout) != [seeded]
    assert results(unseeded.stdout) != [seeded]
    created, asserted = seeded
    assert created["response"]["attestationObject"]  # packed with x5c: the cert is seeded too
    assert asserted["response"]["signature"]
    # The marker's seed wins over the command line's, and makes runs identical on its own.
    [marked] = results(output, "MARKER")
    assert results(other_seed.stdout, "MARKER") == [marked]
    assert results(unseeded.stdout, "MARKER") == [marked]


def test_ini_keys_configure_origin_and_seed(tmp_path: Path) -> None:
    ini = tmp_path / "pytest.ini"
    ini.write_text("[pytest]\nfidoemu_origin = https://ini.example.com\nfidoemu_seed = 77\n")
    runs = [run_suite(tmp_path, suite=INI_SUITE, origin=False) for _ in range(2)]
    for run in runs:
        assert "1 passed" in run.stdout, run.stdout
        assert "ORIGIN https://ini.example.com" in run.stdout
    first, second = (results(run.stdout, "INI") for run in runs)
    assert first == second and len(first) == 1  # the ini seed: byte-identical runs
    # The command line wins over the ini file.
    overridden = run_suite(tmp_path, "--fidoemu-seed", "78", suite=INI_SUITE)
    assert "ORIGIN https://cli.example.com" in overridden.stdout
    ini.write_text("[pytest]\nfidoemu_origin = https://ini.example.com\nfidoemu_seed = 78\n")
    seed_78 = results(run_suite(tmp_path, suite=INI_SUITE, origin=False).stdout, "INI")
    assert seed_78 != first
    [by_option] = results(overridden.stdout, "INI")  # --fidoemu-seed 78 beat the ini's 77
    assert by_option["id"] == seed_78[0]["id"]  # (its clientDataJSON has the other origin)
    assert by_option["response"]["publicKey"] == seed_78[0]["response"]["publicKey"]
