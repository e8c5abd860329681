"""In the guest: touch requests on a key started with ``--presence prompt`` (answers come on
its stdin, as a person would type them): keepalives while waiting, approve, deny, CTAPHID_CANCEL
and a client that goes away mid-wait; then SIGTERM destroys the device."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from fido2 import cbor
from fido2.ctap import STATUS, CtapError
from fido2.ctap2 import Ctap2

from tests.vm.guest.guestlib import CALL_TIMEOUT, Key, RawHid, within
from transports.ctaphid.constants import HidCommand, HidError, KeepaliveStatus

RP: dict[str, Any] = {"id": "example.com", "name": "Example"}
ES256: list[Mapping[str, Any]] = [{"type": "public-key", "alg": -7}]


def _user() -> dict[str, Any]:
    return {"id": os.urandom(8), "name": "bob"}


@pytest.fixture(scope="module")
def prompt_key(workdir: Path) -> Iterator[Key]:
    key = Key(workdir, "fidoemu-prompt", presence="prompt")
    yield key
    key.stop()


def test_keepalives_then_approval(prompt_key: Key) -> None:
    device = prompt_key.open()
    statuses: list[int] = []
    try:
        with prompt_key.answering("y"):
            response = within(
                CALL_TIMEOUT,
                lambda: Ctap2(device).make_credential(
                    os.urandom(32), RP, _user(), ES256, on_keepalive=statuses.append
                ),
            )
    finally:
        device.close()
    # UPNEEDED while asking; PROCESSING may follow if making the credential takes > 100 ms
    assert statuses[:1] == [STATUS.UPNEEDED]
    assert set(statuses) <= {STATUS.UPNEEDED, STATUS.PROCESSING}
    assert response.auth_data.is_user_present()


def test_keepalives_keep_coming_while_nobody_answers(prompt_key: Key) -> None:
    raw = RawHid(prompt_key.hidraw)
    try:
        cid = raw.init()
        message = b"\x01" + cbor.encode({1: os.urandom(32), 2: RP, 3: _user(), 4: ES256})
        raw.send(cid, HidCommand.CBOR, message)
        for _ in range(3):  # KEEPALIVE(UPNEEDED) at once and then every ~100 ms
            assert raw.receive(cid) == (
                cid,
                HidCommand.KEEPALIVE,
                bytes([KeepaliveStatus.UP_NEEDED]),
            )
        prompt_key_answer_now(prompt_key, "y")
        while True:
            reply = raw.receive(cid)
            if reply[1] != HidCommand.KEEPALIVE:
                break
        assert reply[:2] == (cid, HidCommand.CBOR)
        assert reply[2][0] == 0x00  # CTAP2_OK
    finally:
        raw.close()


def prompt_key_answer_now(key: Key, answer: str) -> None:
    assert key.process.stdin is not None
    key.process.stdin.write(answer.encode() + b"\n")
    key.process.stdin.flush()


def test_denial_is_operation_denied(prompt_key: Key) -> None:
    device = prompt_key.open()
    try:
        with prompt_key.answering("n"), pytest.raises(CtapError) as denied:
            within(
                CALL_TIMEOUT,
                lambda: Ctap2(device).make_credential(os.urandom(32), RP, _user(), ES256),
            )
    finally:
        device.close()
    assert denied.value.code == CtapError.ERR.OPERATION_DENIED


def test_cancel_during_the_wait(prompt_key: Key) -> None:
    device = prompt_key.open()
    cancel = threading.Event()

    def on_keepalive(status: int) -> None:
        if status == STATUS.UPNEEDED:
            cancel.set()  # python-fido2 then sends CTAPHID_CANCEL

    try:
        with pytest.raises(CtapError) as cancelled:
            within(
                CALL_TIMEOUT,
                lambda: Ctap2(device).make_credential(
                    os.urandom(32), RP, _user(), ES256, event=cancel, on_keepalive=on_keepalive
                ),
            )
        assert cancelled.value.code == CtapError.ERR.KEEPALIVE_CANCEL
        # The key is free again at once: the next request is asked and approved.
        with prompt_key.answering("y"):
            response = within(
                CALL_TIMEOUT,
                lambda: Ctap2(device).make_credential(os.urandom(32), RP, _user(), ES256),
            )
        assert response.auth_data.is_user_present()
    finally:
        device.close()
    assert "cancelled by the client" in prompt_key.logs()


def test_client_gone_mid_wait_frees_the_key(prompt_key: Key) -> None:
    raw = RawHid(prompt_key.hidraw)
    cid = raw.init()
    raw.send(
        cid,
        HidCommand.CBOR,
        b"\x01" + cbor.encode({1: os.urandom(32), 2: RP, 3: _user(), 4: ES256}),
    )
    assert raw.receive(cid) == (cid, HidCommand.KEEPALIVE, bytes([KeepaliveStatus.UP_NEEDED]))
    raw.close()  # the only reader leaves while the key waits for a touch
    follower = RawHid(prompt_key.hidraw)
    try:
        new_cid = follower.init()
        follower.send(new_cid, HidCommand.PING, b"anyone?")
        reply = follower.receive(new_cid)
        assert reply != (new_cid, HidCommand.ERROR, bytes([HidError.CHANNEL_BUSY]))
        assert reply == (new_cid, HidCommand.PING, b"anyone?")
    finally:
        follower.close()


def test_sigterm_destroys_the_device(prompt_key: Key) -> None:
    node = Path("/sys/class/hidraw") / Path(prompt_key.hidraw).name
    assert node.exists()
    assert prompt_key.stop() == 0
    assert not node.exists()
    assert "destroyed HID device" in prompt_key.logs()
