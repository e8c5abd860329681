"""In the guest: the key as the kernel and python-fido2 see it, and CTAPHID over real hidraw
(discovery, INIT, PING to 1827 bytes and paced responses to 7609 bytes, WINK, errors, timeouts,
a client that goes away, feature reports refused with EIO)."""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from functools import partial
from pathlib import Path
from typing import Final

import pytest
from fido2.ctap import STATUS
from fido2.ctap2 import Ctap2
from fido2.hid import CAPABILITY, CtapHidDevice, list_descriptors
from fido2.hid.base import parse_report_descriptor

from tests.vm.guest.guestlib import CALL_TIMEOUT, Key, RawHid, within
from transports.ctaphid.constants import HidCommand, HidError
from transports.uhid.events import FIDO_REPORT_DESCRIPTOR


def test_list_devices_finds_the_key(auto_key: Key) -> None:
    devices = within(CALL_TIMEOUT, lambda: list(CtapHidDevice.list_devices()))
    try:
        mine = [d for d in devices if d.descriptor.path == auto_key.hidraw]
        assert len(mine) == 1
        descriptor = mine[0].descriptor
        assert (descriptor.vid, descriptor.pid) == (0x1209, 0x0001)
        assert (descriptor.report_size_in, descriptor.report_size_out) == (64, 64)
        assert descriptor.product_name == auto_key.name
        assert descriptor.serial_number == auto_key.serial
    finally:
        for device in devices:
            device.close()


def test_sysfs_shows_our_report_descriptor(auto_key: Key) -> None:
    node = Path("/sys/class/hidraw") / Path(auto_key.hidraw).name
    assert (node / "device" / "report_descriptor").read_bytes() == FIDO_REPORT_DESCRIPTOR
    assert parse_report_descriptor(FIDO_REPORT_DESCRIPTOR) == (64, 64)
    assert auto_key.hidraw in [d.path for d in list_descriptors()]  # type: ignore[no-untyped-call]


def test_init_reports_protocol_and_capabilities(auto_key: Key) -> None:
    device = auto_key.open()
    try:
        assert device.version == 2
        assert device.capabilities & CAPABILITY.CBOR
        assert device.capabilities & CAPABILITY.WINK
        assert not device.capabilities & CAPABILITY.NMSG  # the security key speaks U2F too
    finally:
        device.close()


def test_ping_up_to_1827_bytes_and_wink(auto_key: Key) -> None:
    device = auto_key.open()
    try:
        for size in (0, 1, 57, 58, 500, 1827):
            payload = bytes((i * 31) & 0xFF for i in range(size))
            assert within(CALL_TIMEOUT, partial(device.ping, payload)) == payload
        within(CALL_TIMEOUT, device.wink)
    finally:
        device.close()
    assert "wink" in auto_key.logs()


def test_get_info_advertises_max_msg_size_1200(auto_key: Key) -> None:
    device = auto_key.open()
    try:
        info = within(CALL_TIMEOUT, lambda: Ctap2(device).get_info())
    finally:
        device.close()
    assert info.max_msg_size == 1200
    assert "FIDO_2_1" in info.versions


def test_protocol_errors_over_hidraw(auto_key: Key) -> None:
    raw = RawHid(auto_key.hidraw)
    try:
        cid = raw.init()
        raw.send(0x0BADCAFE, HidCommand.PING, b"x")
        assert raw.receive(0x0BADCAFE) == (
            0x0BADCAFE,
            HidCommand.ERROR,
            bytes([HidError.INVALID_CHANNEL]),
        )
        raw.send(cid, 0x22, b"")
        assert raw.receive(cid) == (cid, HidCommand.ERROR, bytes([HidError.INVALID_CMD]))
        raw.send(cid, HidCommand.LOCK, b"\x0b")
        assert raw.receive(cid) == (cid, HidCommand.ERROR, bytes([HidError.INVALID_PAR]))
    finally:
        raw.close()


def test_lost_continuation_answers_msg_timeout(auto_key: Key) -> None:
    raw = RawHid(auto_key.hidraw)
    try:
        cid = raw.init()
        packets = _ping_packets(cid, 300)
        raw.write(packets[0])  # and never the rest
        assert raw.receive(cid, timeout=30) == (
            cid,
            HidCommand.ERROR,
            bytes([HidError.MSG_TIMEOUT]),
        )
        raw.send(cid, HidCommand.PING, b"after")
        assert raw.receive(cid) == (cid, HidCommand.PING, b"after")
    finally:
        raw.close()


def test_second_channel_is_busy_mid_message(auto_key: Key) -> None:
    first, second = RawHid(auto_key.hidraw), RawHid(auto_key.hidraw)
    try:
        cid_a, cid_b = first.init(), second.init()
        packets = _ping_packets(cid_a, 200)
        first.write(packets[0])
        second.send(cid_b, HidCommand.PING, b"me too")
        assert second.receive(cid_b) == (cid_b, HidCommand.ERROR, bytes([HidError.CHANNEL_BUSY]))
        for packet in packets[1:]:
            first.write(packet)
        assert first.receive(cid_a) == (cid_a, HidCommand.PING, bytes(range(200)))
    finally:
        first.close()
        second.close()


def test_client_that_disconnects_mid_message_does_not_block_the_next(auto_key: Key) -> None:
    raw = RawHid(auto_key.hidraw)
    cid = raw.init()
    raw.write(_ping_packets(cid, 1000)[0])
    raw.close()  # gone mid-transaction: the last reader closed, the device drops the message
    follower = RawHid(auto_key.hidraw)
    try:
        new_cid = follower.init()
        follower.send(new_cid, HidCommand.PING, b"next client")
        assert follower.receive(new_cid) == (new_cid, HidCommand.PING, b"next client")
    finally:
        follower.close()
    device = auto_key.open()
    try:
        assert within(CALL_TIMEOUT, lambda: Ctap2(device).get_info()).max_msg_size == 1200
    finally:
        device.close()


def test_doctor_is_happy_in_the_guest(auto_key: Key) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "transports.cli", "doctor"],
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT,
        check=False,
    )
    assert "/dev/uhid is usable by" in result.stdout, result.stdout
    assert f"{auto_key.hidraw} ({auto_key.name}" in result.stdout, result.stdout
    assert os.path.exists("/dev/uhid")


def _ping_packets(cid: int, size: int) -> list[bytes]:
    from transports.ctaphid.packets import fragment

    packets = fragment(cid, HidCommand.PING, bytes(i & 0xFF for i in range(size)))
    assert struct.unpack_from(">I", packets[0])[0] == cid
    return packets


@pytest.mark.parametrize("size", [4000, 7609])
def test_long_ping_response_is_paced_and_arrives_whole(auto_key: Key, size: int) -> None:
    """More than 31 response packets (69 and 130): the key paces them (PACE_ABOVE), since
    hidraw drops input reports beyond 64 unread ones; every packet arrives, in sequence."""
    payload = bytes((i * 7 + size) & 0xFF for i in range(size))
    raw = RawHid(auto_key.hidraw)
    try:
        cid = raw.init()
        # The request is paced by us, so only the response direction is under test.
        raw.send(cid, HidCommand.PING, payload, pace=0.002)
        assert raw.receive(cid, timeout=30) == (cid, HidCommand.PING, payload)
        raw.send(cid, HidCommand.PING, b"still there")
        assert raw.receive(cid) == (cid, HidCommand.PING, b"still there")
    finally:
        raw.close()


def _hidioc(number: int, length: int) -> int:
    """_IOC(_IOC_READ | _IOC_WRITE, 'H', number, length) from linux/hidraw.h."""
    return (3 << 30) | (length << 16) | (ord("H") << 8) | number


HIDIOCSFEATURE: Final = 0x06
HIDIOCGFEATURE: Final = 0x07


def test_feature_reports_fail_with_eio_and_the_key_keeps_working(auto_key: Key) -> None:
    """FIDO keys have no feature reports: the kernel forwards HIDIOCGFEATURE/HIDIOCSFEATURE as
    UHID_GET_REPORT/UHID_SET_REPORT and the key answers EIO at once (the kernel would also give
    EIO after a 5 s timeout, so the key's log is checked too)."""
    fd = os.open(auto_key.hidraw, os.O_RDWR)
    try:
        get = bytearray(65)  # report number 0, then room for 64 bytes
        with pytest.raises(OSError, match="Input/output error") as got:
            fcntl.ioctl(fd, _hidioc(HIDIOCGFEATURE, len(get)), get)
        assert got.value.errno == errno.EIO
        put = bytearray(b"\0" + bytes(range(64)))
        with pytest.raises(OSError, match="Input/output error") as set_:
            fcntl.ioctl(fd, _hidioc(HIDIOCSFEATURE, len(put)), put)
        assert set_.value.errno == errno.EIO
    finally:
        os.close(fd)
    logs = auto_key.logs()
    assert "UHID_GET_REPORT (FEATURE 0) answered EIO" in logs
    assert "UHID_SET_REPORT (FEATURE 0) answered EIO" in logs
    device = auto_key.open()
    try:
        assert within(CALL_TIMEOUT, partial(device.ping, b"after feature reports")) == (
            b"after feature reports"
        )
        assert within(CALL_TIMEOUT, lambda: Ctap2(device).get_info()).max_msg_size == 1200
    finally:
        device.close()


def test_processing_keepalives_while_the_core_computes(auto_key: Key) -> None:
    """An RS256 credential makes the core generate an RSA-2048 key (far beyond 100 ms under
    TCG): meanwhile the key sends KEEPALIVE(PROCESSING) (CTAP 2.1 §11.2.9.2.1) and python-fido2
    reports them; the key generation happens after the (automatic) touch, so no UPNEEDED."""
    device = auto_key.open()
    statuses: list[int] = []
    try:
        for _ in range(10):  # RSA prime search time varies; one slow enough run suffices
            made = within(
                CALL_TIMEOUT,
                lambda: Ctap2(device).make_credential(
                    os.urandom(32),
                    {"id": "example.com", "name": "Example"},
                    {"id": os.urandom(8), "name": "rsa"},
                    [{"type": "public-key", "alg": -257}],
                    on_keepalive=statuses.append,
                ),
            )
            assert made.auth_data.credential_data is not None
            assert made.auth_data.credential_data.public_key[3] == -257
            if statuses:
                break
        assert statuses and set(statuses) == {STATUS.PROCESSING}, statuses
        assert within(CALL_TIMEOUT, partial(device.ping, b"done")) == b"done"
    finally:
        device.close()
