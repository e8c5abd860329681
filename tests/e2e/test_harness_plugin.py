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
"""


def run_suite(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    test_file = tmp_path / "test_suite.py"
    test_file.write_text(SUITE)
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
            "--fidoemu-origin",
            "https://cli.example.com",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )


def results(output: str) -> list[Any]:
    found = re.findall(r"^RESULT (.*)$", output, re.MULTILINE)
    return [json.loads(line) for line in found]


def test_plugin_fixtures_markers_traces_and_determinism(tmp_path: Path) -> None:
    first = run_suite(tmp_path, "--fidoemu-seed", "1234")
    output = first.stdout
    assert "1 failed, 5 passed" in output, output
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
