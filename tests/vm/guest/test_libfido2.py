"""In the guest: libfido2's command-line tools (Debian fido2-tools) against the key without a
PIN: list, info, make and verify credentials (server-side and resident), get and verify
assertions."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest

from tests.vm.guest.guestlib import CALL_TIMEOUT, Key


def tool(*args: str, stdin: str = "") -> str:
    result = subprocess.run(  # noqa: S603 - fixed tools, arguments are data
        list(args), input=stdin, capture_output=True, text=True, timeout=CALL_TIMEOUT, check=False
    )
    assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
    return result.stdout


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def make_and_verify(key: Key, workdir: Path, *flags: str, pin: str = "") -> tuple[Path, str]:
    """fido2-cred -M then -V; returns the PEM public key file and the credential ID (base64)."""
    request = workdir / "cred.in"
    made = workdir / "cred.out"
    verified = workdir / "cred.verified"
    public = workdir / "cred.pem"
    user_id = b64(os.urandom(16))
    request.write_text(f"{b64(os.urandom(32))}\nexample.com\nalice\n{user_id}\n")
    answer = pin + "\n" if pin else ""
    tool("fido2-cred", "-M", *flags, "-i", str(request), "-o", str(made), key.hidraw, stdin=answer)
    lines = made.read_text().splitlines()
    assert lines[1] == "example.com"
    assert lines[2] == "packed"  # fmt, with an attestation certificate in line 7
    assert len(lines) >= 7
    verify_flags = [flag for flag in flags if flag == "-v"]
    tool("fido2-cred", "-V", *verify_flags, "-i", str(made), "-o", str(verified))
    credential_id, *pem = verified.read_text().splitlines()
    assert credential_id == lines[4]
    assert pem[0] == "-----BEGIN PUBLIC KEY-----"
    public.write_text("\n".join(pem) + "\n")
    return public, credential_id


def get_and_verify(
    key: Key, workdir: Path, public: Path, credential_id: str | None, pin: str = ""
) -> None:
    """fido2-assert -G (with the credential ID, or -r for a resident one) then -V."""
    request = workdir / "assert.in"
    got = workdir / "assert.out"
    lines = [b64(os.urandom(32)), "example.com"]
    flags = ["-p"]
    if credential_id is None:
        flags.append("-r")
    else:
        lines.append(credential_id)
    if pin:
        flags.append("-v")
    request.write_text("\n".join(lines) + "\n")
    answer = pin + "\n" if pin else ""
    tool("fido2-assert", "-G", *flags, "-i", str(request), "-o", str(got), key.hidraw, stdin=answer)
    verify_flags = ["-p", "-v"] if pin else ["-p"]
    tool("fido2-assert", "-V", *verify_flags, "-i", str(got), str(public), "es256")


def test_fido2_token_lists_the_key(auto_key: Key) -> None:
    listing = tool("fido2-token", "-L")
    assert f"{auto_key.hidraw}: vendor=0x1209, product=0x0001" in listing


def test_fido2_token_info(auto_key: Key) -> None:
    info = tool("fido2-token", "-I", auto_key.hidraw)
    assert "proto: 0x02" in info
    assert "maxmsgsiz: 1200" in info
    assert "aaguid: f1d0e3a07e574a5e9c1d0000000000a1" in info
    assert "FIDO_2_1" in info


@pytest.mark.parametrize("resident", [False, True], ids=["server-side", "resident"])
def test_fido2_cred_and_assert(auto_key: Key, tmp_path: Path, resident: bool) -> None:
    public, credential_id = make_and_verify(auto_key, tmp_path, *(["-r"] if resident else []))
    get_and_verify(auto_key, tmp_path, public, None if resident else credential_id)
