"""In the guest: a key with a PIN (``fidoemu serve --pin``) next to the one without (two keys
at once), used through libfido2's tools (PIN set/change, credentials with PIN, resident
credential listing and deletion), OpenSSH resident keys and ``ssh-keygen -K``, and python-fido2's
``ClientPin`` and ``CredentialManagement``."""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin, CredentialManagement, Ctap2
from fido2.hid import CtapHidDevice

from tests.vm.guest.guestlib import CALL_TIMEOUT, Key, within
from tests.vm.guest.test_libfido2 import get_and_verify, make_and_verify, tool
from tests.vm.guest.test_ssh import sign_and_verify, ssh_keygen

PIN = "314159"


@pytest.fixture(scope="module")
def pin_key(workdir: Path) -> Iterator[Key]:
    key = Key(workdir, "fidoemu-pin", "--pin", PIN)
    yield key
    key.stop()


def test_serve_pin_presets_the_pin(pin_key: Key) -> None:
    info = tool("fido2-token", "-I", pin_key.hidraw)
    options = info.split("options: ", 1)[1].splitlines()[0].split(", ")
    assert "clientPin" in options
    assert "pin retries: 8" in info


def test_two_keys_at_once(auto_key: Key, pin_key: Key) -> None:
    devices = within(CALL_TIMEOUT, lambda: list(CtapHidDevice.list_devices()))
    try:
        found = {d.descriptor.path: d for d in devices}
        assert {auto_key.hidraw, pin_key.hidraw} <= set(found)
        assert auto_key.hidraw != pin_key.hidraw
        auto, pinned = found[auto_key.hidraw], found[pin_key.hidraw]
        assert (auto.product_name, pinned.product_name) == (auto_key.name, pin_key.name)
        assert auto.serial_number != pinned.serial_number
        # A credential of one key means nothing to the other.
        made = within(
            CALL_TIMEOUT,
            lambda: Ctap2(auto).make_credential(
                os.urandom(32),
                {"id": "example.com", "name": "Example"},
                {"id": b"u", "name": "u"},
                [{"type": "public-key", "alg": -7}],
            ),
        )
        assert made.auth_data.credential_data is not None
        credential_id = made.auth_data.credential_data.credential_id
        with pytest.raises(CtapError) as unknown:
            within(
                CALL_TIMEOUT,
                lambda: Ctap2(pinned).get_assertion(
                    "example.com",
                    os.urandom(32),
                    [{"type": "public-key", "id": credential_id}],
                    options={"up": False},
                ),
            )
        assert unknown.value.code == CtapError.ERR.NO_CREDENTIALS
    finally:
        for device in devices:
            device.close()


@pytest.mark.parametrize("resident", [False, True], ids=["server-side", "resident"])
def test_fido2_cred_and_assert_with_pin(pin_key: Key, tmp_path: Path, resident: bool) -> None:
    flags = ["-r", "-v"] if resident else ["-v"]
    public, credential_id = make_and_verify(pin_key, tmp_path, *flags, pin=PIN)
    get_and_verify(pin_key, tmp_path, public, None if resident else credential_id, pin=PIN)


def test_fido2_token_lists_and_deletes_resident_credentials(pin_key: Key, tmp_path: Path) -> None:
    _, credential_id = make_and_verify(pin_key, tmp_path, "-r", "-v", pin=PIN)
    relying_parties = tool("fido2-token", "-L", "-r", pin_key.hidraw, stdin=PIN + "\n")
    assert "example.com" in relying_parties
    listed = tool("fido2-token", "-L", "-k", "example.com", pin_key.hidraw, stdin=PIN + "\n")
    assert credential_id in listed
    tool("fido2-token", "-D", "-i", credential_id, pin_key.hidraw, stdin=PIN + "\n")
    listed = tool("fido2-token", "-L", "-k", "example.com", pin_key.hidraw, stdin=PIN + "\n")
    assert credential_id not in listed


def test_python_fido2_pin_and_credential_management(pin_key: Key) -> None:
    device = pin_key.open()
    try:
        ctap2 = Ctap2(device)
        client_pin = ClientPin(ctap2)
        assert within(CALL_TIMEOUT, client_pin.get_pin_retries)[0] == 8
        token = within(
            CALL_TIMEOUT,
            lambda: client_pin.get_pin_token(PIN, ClientPin.PERMISSION.CREDENTIAL_MGMT),
        )
        management = CredentialManagement(ctap2, client_pin.protocol, token)
        metadata = within(CALL_TIMEOUT, management.get_metadata)
        assert CredentialManagement.RESULT.EXISTING_CRED_COUNT in metadata
        with pytest.raises(CtapError) as wrong:
            within(CALL_TIMEOUT, lambda: client_pin.get_pin_token("000000"))
        assert wrong.value.code == CtapError.ERR.PIN_INVALID
        assert within(CALL_TIMEOUT, client_pin.get_pin_retries)[0] == 7
        within(CALL_TIMEOUT, lambda: client_pin.get_pin_token(PIN))  # restores the retries
        assert within(CALL_TIMEOUT, client_pin.get_pin_retries)[0] == 8
    finally:
        device.close()


@pytest.mark.parametrize(
    ("key_type", "prefix"),
    [
        ("ed25519-sk", "sk-ssh-ed25519@openssh.com "),
        ("ecdsa-sk", "sk-ecdsa-sha2-nistp256@openssh.com "),
    ],
)
def test_ssh_resident_key_and_download(
    pin_key: Key, tmp_path: Path, key_type: str, prefix: str
) -> None:
    askpass = tmp_path / "askpass"
    askpass.write_text(f"#!/bin/sh\necho {PIN}\n")
    askpass.chmod(stat.S_IRWXU)
    env = {
        **os.environ,
        "SSH_ASKPASS": str(askpass),
        "SSH_ASKPASS_REQUIRE": "force",
    }
    key_file = tmp_path / f"id_{key_type.replace('-', '_')}"
    application = f"ssh:fidoemu-{key_type}"
    ssh_keygen(
        "-t", key_type, "-O", "resident", "-O", f"application={application}",
        "-O", f"device={pin_key.hidraw}", "-f", str(key_file), "-N", "", "-C", "tester@fidoemu",
        env=env,
    )  # fmt: skip
    public = key_file.with_suffix(".pub").read_text()
    assert public.startswith(prefix)
    sign_and_verify(key_file, public, tmp_path)
    downloads = tmp_path / "downloaded"
    downloads.mkdir()
    result = within(
        CALL_TIMEOUT,
        lambda: ssh_keygen(
            "-K", "-N", "", "-O", f"device={pin_key.hidraw}", env=env, cwd=downloads
        ),
    )
    assert result.returncode == 0
    # -K writes every resident key on the key (earlier parameters left theirs): ours is there,
    # under its application, and signs like the original.
    downloaded = {path.read_text().split()[1]: path for path in downloads.glob("*.pub")}
    assert public.split()[1] in downloaded, downloaded
    mine = downloaded[public.split()[1]]
    assert mine.read_text().startswith(prefix)
    assert application.removeprefix("ssh:") in mine.name
    sign_and_verify(mine.with_suffix(""), public, downloads)


def test_fido2_token_sets_and_changes_a_pin(workdir: Path) -> None:
    fresh = Key(workdir, "fidoemu-fresh")
    try:
        info = tool("fido2-token", "-I", fresh.hidraw)
        assert "noclientPin" in info
        tool("fido2-token", "-S", fresh.hidraw, stdin="2468\n2468\n")
        info = tool("fido2-token", "-I", fresh.hidraw)
        assert "noclientPin" not in info and "clientPin" in info
        tool("fido2-token", "-C", fresh.hidraw, stdin="2468\n13579\n13579\n")
        device = fresh.open()
        try:
            client_pin = ClientPin(Ctap2(device))
            within(CALL_TIMEOUT, lambda: client_pin.get_pin_token("13579"))
        finally:
            device.close()
    finally:
        node = Path("/sys/class/hidraw") / Path(fresh.hidraw).name
        assert fresh.stop(signal.SIGINT) == 0
    assert not node.exists()


def test_python_fido2_sets_and_changes_a_pin_and_lists_resident_credentials(
    workdir: Path,
) -> None:
    """ClientPin over hidraw on a key without a PIN: set_pin, change_pin, get_pin_token; then a
    resident credential made with the PIN is found by CredentialManagement."""
    fresh = Key(workdir, "fidoemu-fresh-py")
    device = fresh.open()
    try:
        ctap2 = Ctap2(device)
        assert ctap2.info.options["clientPin"] is False
        client_pin = ClientPin(ctap2)
        within(CALL_TIMEOUT, lambda: client_pin.set_pin("8642"))
        assert within(CALL_TIMEOUT, lambda: Ctap2(device).get_info()).options["clientPin"] is True
        within(CALL_TIMEOUT, lambda: client_pin.change_pin("8642", "97531"))
        with pytest.raises(CtapError) as old:
            within(CALL_TIMEOUT, lambda: client_pin.get_pin_token("8642"))
        assert old.value.code == CtapError.ERR.PIN_INVALID

        token = within(
            CALL_TIMEOUT,
            lambda: client_pin.get_pin_token(
                "97531", ClientPin.PERMISSION.MAKE_CREDENTIAL, "example.com"
            ),
        )
        client_data_hash = os.urandom(32)
        user_id = os.urandom(16)
        made = within(
            CALL_TIMEOUT,
            lambda: ctap2.make_credential(
                client_data_hash,
                {"id": "example.com", "name": "Example"},
                {"id": user_id, "name": "carol", "displayName": "Carol"},
                [{"type": "public-key", "alg": -7}],
                options={"rk": True},
                pin_uv_param=client_pin.protocol.authenticate(token, client_data_hash),
                pin_uv_protocol=client_pin.protocol.VERSION,
            ),
        )
        assert made.auth_data.is_user_verified()
        assert made.auth_data.credential_data is not None
        credential_id = made.auth_data.credential_data.credential_id

        token = within(
            CALL_TIMEOUT,
            lambda: client_pin.get_pin_token("97531", ClientPin.PERMISSION.CREDENTIAL_MGMT),
        )
        management = CredentialManagement(ctap2, client_pin.protocol, token)
        relying_parties = within(CALL_TIMEOUT, management.enumerate_rps)
        assert [rp[CredentialManagement.RESULT.RP]["id"] for rp in relying_parties] == [
            "example.com"
        ]
        rp_id_hash = relying_parties[0][CredentialManagement.RESULT.RP_ID_HASH]
        [credential] = within(CALL_TIMEOUT, lambda: management.enumerate_creds(rp_id_hash))
        assert credential[CredentialManagement.RESULT.CREDENTIAL_ID]["id"] == credential_id
        assert credential[CredentialManagement.RESULT.USER]["id"] == user_id
        assert credential[CredentialManagement.RESULT.USER]["name"] == "carol"
    finally:
        device.close()
        fresh.stop()
