"""``InProcessDevice(hid=True)``: every call crosses python-fido2's ``CtapHidDevice`` (host) and
our ``CtapHidSession`` (device) as 64-byte reports on a ManualClock. Presence decisions that
take virtual time fill the wait with KEEPALIVE(UPNEEDED) every 100 ms (CTAP 2.1
§11.2.9.2.1); a cancel is CTAPHID_CANCEL through the framer. Nothing sleeps."""

from __future__ import annotations

import itertools
import math
import os
import threading

import pytest
from fido2.ctap import STATUS, CtapError
from fido2.ctap1 import ApduError, Ctap1
from fido2.ctap2 import Ctap2

from authenticator import Authenticator, ManualClock, NeedPresence, Presence
from authenticator.u2f import StatusWord
from transports.ctaphid.constants import KEEPALIVE_INTERVAL, HidCommand, KeepaliveStatus
from transports.ctaphid.packets import InitPacket, parse_packet
from transports.inprocess import Decision, InProcessDevice, Report


def keepalive_times(reports: list[Report], since: float) -> list[float]:
    """When the host received KEEPALIVE(UPNEEDED), relative to ``since``."""
    times = []
    for report in reports:
        packet = parse_packet(report.data)
        if (
            not report.to_device
            and isinstance(packet, InitPacket)
            and packet.command == HidCommand.KEEPALIVE
        ):
            assert packet.data == bytes([KeepaliveStatus.UP_NEEDED])
            times.append(report.time - since)
    return times


def commands_to_device(reports: list[Report]) -> list[int]:
    packets = [parse_packet(r.data) for r in reports if r.to_device]
    return [p.command for p in packets if isinstance(p, InitPacket)]


def make_credential(ctap2: Ctap2, **kwargs: object) -> object:
    return ctap2.make_credential(
        os.urandom(32),
        {"id": "example.com", "name": "Example"},
        {"id": b"user", "name": "user"},
        [{"type": "public-key", "alg": -7}],
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def device(clock: ManualClock) -> InProcessDevice:
    return InProcessDevice(Authenticator(clock=clock, strict=True), hid=True)


def test_every_report_is_64_bytes_and_the_clock_is_the_authenticators(
    device: InProcessDevice, clock: ManualClock
) -> None:
    assert device.clock is clock
    ctap2 = Ctap2(device)
    assert "FIDO_2_1" in ctap2.info.versions
    make_credential(ctap2)
    assert device.reports
    assert {len(r.data) for r in device.reports} == {64}
    assert HidCommand.INIT in commands_to_device(device.reports)
    assert InProcessDevice(Authenticator(), hid=True).clock is not None  # its own ManualClock
    assert InProcessDevice(Authenticator()).clock is None  # the direct path takes no time


@pytest.mark.parametrize("after", [0.0, 0.05, 0.42, 1.5])
def test_keepalives_every_100_ms_until_the_decision(
    device: InProcessDevice, clock: ManualClock, after: float
) -> None:
    seen: list[STATUS] = []
    device.presence = lambda _need: Decision(Presence.APPROVED, after)
    start = clock.now()
    make_credential(Ctap2(device), on_keepalive=seen.append)
    assert clock.now() - start == pytest.approx(after)
    times = keepalive_times(device.reports, start)
    assert times[0] == 0.0  # at once when the question opens
    # one per started 100 ms before the decision; a decision due with a keepalive comes first
    assert len(times) == max(1, math.ceil(after / KEEPALIVE_INTERVAL - 1e-9))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap == pytest.approx(KEEPALIVE_INTERVAL) for gap in gaps)
    assert times[-1] < after or after == 0.0
    assert seen == [STATUS.UPNEEDED]  # python-fido2 reports a status once, however often sent


def test_time_out_after_1_5_s(device: InProcessDevice, clock: ManualClock) -> None:
    device.presence = lambda _need: Decision(Presence.TIMED_OUT, 1.5)
    start = clock.now()
    with pytest.raises(CtapError) as error:
        make_credential(Ctap2(device))
    assert error.value.code == CtapError.ERR.USER_ACTION_TIMEOUT
    times = keepalive_times(device.reports, start)
    assert len(times) == 15
    assert times == pytest.approx([i * KEEPALIVE_INTERVAL for i in range(15)])
    assert clock.now() - start == pytest.approx(1.5)
    device.presence = lambda _need: Presence.APPROVED
    make_credential(Ctap2(device))  # and it keeps working


def test_platform_cancel_is_ctaphid_cancel_after_the_next_keepalive(
    device: InProcessDevice, clock: ManualClock
) -> None:
    device.presence = lambda _need: Decision(Presence.CANCELLED, 0.35)
    start = clock.now()
    with pytest.raises(CtapError) as error:
        make_credential(Ctap2(device))
    assert error.value.code == CtapError.ERR.KEEPALIVE_CANCEL
    assert commands_to_device(device.reports)[-1] == HidCommand.CANCEL
    cancel = [r for r in device.reports if r.to_device][-1]
    assert cancel.time - start == pytest.approx(0.4)  # noticed on the keepalive after 0.35 s
    assert len(keepalive_times(device.reports, start)) == 5


def test_event_set_by_the_caller_cancels_through_the_framer(device: InProcessDevice) -> None:
    event = threading.Event()
    device.presence = lambda _need: Decision(Presence.APPROVED, 10.0)

    def on_keepalive(status: STATUS) -> None:
        event.set()  # the user closes the dialog as soon as the key blinks

    with pytest.raises(CtapError) as error:
        make_credential(Ctap2(device), event=event, on_keepalive=on_keepalive)
    assert error.value.code == CtapError.ERR.KEEPALIVE_CANCEL
    assert commands_to_device(device.reports).count(HidCommand.CANCEL) == 1


def test_denied_and_uv_failed_statuses(device: InProcessDevice) -> None:
    device.presence = lambda _need: Decision(Presence.DENIED, 0.2)
    with pytest.raises(CtapError) as error:
        make_credential(Ctap2(device))
    assert error.value.code == CtapError.ERR.OPERATION_DENIED


def test_direct_path_takes_a_decisions_outcome_without_time(clock: ManualClock) -> None:
    direct = InProcessDevice(Authenticator(clock=clock, strict=True))
    asked: list[NeedPresence] = []

    def policy(need: NeedPresence) -> Decision:
        asked.append(need)
        return Decision(Presence.TIMED_OUT, 1.5)

    direct.presence = policy
    start = clock.now()
    with pytest.raises(CtapError) as error:
        make_credential(Ctap2(direct))
    assert error.value.code == CtapError.ERR.USER_ACTION_TIMEOUT
    assert clock.now() == start and len(asked) == 1 and direct.reports == []


def test_u2f_over_hid_polls_like_a_real_key(device: InProcessDevice) -> None:
    ctap1 = Ctap1(device)
    app = os.urandom(32)
    with pytest.raises(ApduError) as first:
        ctap1.register(os.urandom(32), app)
    assert first.value.code == StatusWord.CONDITIONS_NOT_SATISFIED  # asked; touch latched
    challenge = os.urandom(32)
    ctap1.register(challenge, app).verify(app, challenge)  # the client's retry succeeds


def test_ping_and_wink_cross_the_framer(device: InProcessDevice) -> None:
    from fido2.hid import CTAPHID

    assert device.call(CTAPHID.PING, b"hello" * 30) == b"hello" * 30  # three packets
    assert device.call(CTAPHID.WINK) == b""
    assert HidCommand.PING in commands_to_device(device.reports)
