"""Property: over ``InProcessDevice(hid=True)``, any sequence of timed presence decisions gives
the status the outcome maps to, one UPNEEDED keepalive per started 100 ms of waiting (plus the
one a cancel rides on), a clock that moved exactly as long as the person took, and a device
that keeps answering."""

from __future__ import annotations

import math
from collections.abc import Callable

from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2
from hypothesis import given
from hypothesis import strategies as st

from authenticator import Authenticator, ManualClock, NeedPresence, Presence
from tests.unit.test_hid_cadence import keepalive_times, make_credential
from transports.inprocess import Decision, InProcessDevice

STATUS = {
    Presence.APPROVED: None,
    Presence.DENIED: CtapError.ERR.OPERATION_DENIED,
    Presence.TIMED_OUT: CtapError.ERR.USER_ACTION_TIMEOUT,
    Presence.UV_FAILED: CtapError.ERR.UV_INVALID,
    Presence.CANCELLED: CtapError.ERR.KEEPALIVE_CANCEL,
}

decisions = st.lists(
    st.tuples(st.sampled_from(list(Presence)), st.integers(min_value=0, max_value=300)),
    min_size=1,
    max_size=4,
)


def _always(decision: Decision) -> Callable[[NeedPresence], Decision]:
    return lambda _need: decision


@given(decisions)
def test_timed_decisions_over_hid(script: list[tuple[Presence, int]]) -> None:
    clock = ManualClock()
    device = InProcessDevice(Authenticator(clock=clock, strict=True), hid=True)
    ctap2 = Ctap2(device)
    for outcome, centiseconds in script:
        after = centiseconds / 100
        device.presence = _always(Decision(outcome, after))
        start, mark = clock.now(), len(device.reports)
        try:
            make_credential(ctap2)
            status = None
        except CtapError as error:
            status = error.code
        assert status == STATUS[outcome]
        waited = max(1, math.ceil(centiseconds / 10))  # keepalives strictly before the decision
        keepalives = keepalive_times(device.reports[mark:], start)
        if outcome is Presence.CANCELLED:
            assert len(keepalives) == waited + 1  # the host cancels on the next one
            assert abs(clock.now() - start - max(keepalives)) < 1e-6
        else:
            assert len(keepalives) == waited
            assert abs(clock.now() - start - after) < 1e-6
    assert ctap2.get_info().aaguid  # still answering
