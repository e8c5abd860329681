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


def test_ssh_resident_key_and_download(pin_key: Key, tmp_path: Path) -> None:
    askpass = tmp_path / "askpass"
    askpass.write_text(f"#!/bin/sh\necho {PIN}\n")
    askpass.chmod(stat.S_IRWXU)
    env = {
        **os.environ,
        "SSH_ASKPASS": str(askpass),
        "SSH_ASKPASS_REQUIRE": "force",
    }
    key_file = tmp_path / "id_ed25519_sk"
    ssh_keygen(
        "-t", "ed25519-sk", "-O", "resident", "-O", "application=ssh:fidoemu",
        "-O", f"device={pin_key.hidraw}", "-f", str(key_file), "-N", "", "-C", "tester@fidoemu",
        env=env,
    )  # fmt: skip
    public = key_file.with_suffix(".pub").read_text()
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
    [downloaded] = downloads.glob("*.pub")
    assert downloaded.read_text().split()[:2] == public.split()[:2]


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
