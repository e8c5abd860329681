"""In the guest: OpenSSH (Debian openssh-client, libfido2 built in) makes ``-sk`` keys on the
virtual key and signs with them: ``ssh-keygen -t ecdsa-sk`` and ``-t ed25519-sk``, then
``ssh-keygen -Y sign`` verified by ``ssh-keygen -Y verify``. Resident keys and ``ssh-keygen -K``
need a PIN and are in test_pin.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.vm.guest.guestlib import CALL_TIMEOUT, Key


def ssh_keygen(
    *args: str,
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
    check: bool = True,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(  # noqa: S603 - fixed tool, arguments are data
        ["ssh-keygen", *args],  # noqa: S607
        input=stdin,
        capture_output=True,
        timeout=CALL_TIMEOUT,
        check=False,
        env=env,
        cwd=cwd,
    )
    if check:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def sign_and_verify(key_file: Path, public: str, workdir: Path) -> None:
    data = workdir / "message.txt"
    data.write_text("signed by a virtual security key\n")
    ssh_keygen("-Y", "sign", "-f", str(key_file), "-n", "file", str(data))
    signature = workdir / "message.txt.sig"
    assert signature.read_text().startswith("-----BEGIN SSH SIGNATURE-----")
    allowed = workdir / "allowed_signers"
    allowed.write_text("tester@fidoemu " + " ".join(public.split()[:2]) + "\n")
    verify = ("-Y", "verify", "-f", str(allowed), "-I", "tester@fidoemu", "-n", "file")
    good = ssh_keygen(*verify, "-s", str(signature), stdin=data.read_bytes())
    assert b'Good "file" signature for tester@fidoemu' in good.stdout + good.stderr
    forged = ssh_keygen(*verify, "-s", str(signature), stdin=b"something else\n", check=False)
    assert forged.returncode != 0


@pytest.mark.parametrize(
    ("key_type", "prefix"),
    [
        ("ecdsa-sk", "sk-ecdsa-sha2-nistp256@openssh.com "),
        ("ed25519-sk", "sk-ssh-ed25519@openssh.com "),
    ],
)
def test_sk_key_signs_and_verifies(
    auto_key: Key, tmp_path: Path, key_type: str, prefix: str
) -> None:
    key_file = tmp_path / f"id_{key_type}"
    ssh_keygen(
        "-t",
        key_type,
        "-f",
        str(key_file),
        "-N",
        "",
        "-C",
        "tester@fidoemu",
        "-O",
        f"device={auto_key.hidraw}",
    )
    public = key_file.with_suffix(".pub").read_text()
    assert public.startswith(prefix)
    assert "-----BEGIN OPENSSH PRIVATE KEY-----" in key_file.read_text()
    sign_and_verify(key_file, public, tmp_path)
