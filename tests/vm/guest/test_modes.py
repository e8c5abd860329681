"""In the guest: ``fidoemu serve --presence deny`` (every touch refused, the key keeps serving)
started without ``-v``, next to ``auto_key`` started with it: the decoded command log appears
on stderr only with ``-v``."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2

from tests.vm.guest.guestlib import CALL_TIMEOUT, Key, within

RP: dict[str, Any] = {"id": "example.com", "name": "Example"}
ES256: list[Mapping[str, Any]] = [{"type": "public-key", "alg": -7}]


@pytest.fixture(scope="module")
def deny_key(workdir: Path) -> Iterator[Key]:
    key = Key(workdir, "fidoemu-deny", presence="deny", verbose=False)
    yield key
    key.stop()


def _make_credential(key: Key) -> Any:
    device = key.open()
    try:
        return within(
            CALL_TIMEOUT,
            lambda: Ctap2(device).make_credential(
                os.urandom(32), RP, {"id": os.urandom(8), "name": "bob"}, ES256
            ),
        )
    finally:
        device.close()


def test_presence_deny_is_operation_denied_and_the_key_keeps_working(deny_key: Key) -> None:
    for _ in range(2):  # denied every time, not just once
        with pytest.raises(CtapError) as denied:
            _make_credential(deny_key)
        assert denied.value.code == CtapError.ERR.OPERATION_DENIED
    device = deny_key.open()
    try:
        assert within(CALL_TIMEOUT, partial(device.ping, b"still here")) == b"still here"
        info = within(CALL_TIMEOUT, lambda: Ctap2(device).get_info())
        assert "FIDO_2_1" in info.versions
    finally:
        device.close()
    assert deny_key.process.poll() is None


def test_verbose_logs_decoded_commands_and_quiet_does_not(auto_key: Key, deny_key: Key) -> None:
    made = _make_credential(auto_key)
    assert made.auth_data.is_user_present()
    with pytest.raises(CtapError):
        _make_credential(deny_key)
    verbose = auto_key.logs()
    assert "CBOR MAKE_CREDENTIAL(" in verbose
    assert "rp={id='example.com'" in verbose
    assert "CBOR GET_INFO" in verbose
    quiet = deny_key.logs()
    assert "MAKE_CREDENTIAL" not in quiet
    assert "GET_INFO" not in quiet
    assert "cid " not in quiet
