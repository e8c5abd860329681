"""``CtapHidSession(offload=True)``: however long the driver takes to run a core step, and
whatever the client does meanwhile, the client sees KEEPALIVE(PROCESSING) on its channel once
per started 100 ms of waiting (as the tick cadence allows), then the same answer the inline
session gives; a departed client gets nothing and the next request is served.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from authenticator import Authenticator, ManualClock
from tests.unit.test_ctaphid_framer import Reply, allocate, replies
from transports.ctaphid.constants import HidCommand, KeepaliveStatus
from transports.ctaphid.packets import fragment
from transports.ctaphid.session import Compute, CtapHidSession, SessionAction

PROCESSING = bytes([KeepaliveStatus.PROCESSING])
GET_INFO = b"\x04"
delays = st.lists(st.floats(min_value=0.0, max_value=0.35), max_size=12)


def _send(session: CtapHidSession, cid: int, message: bytes) -> list[SessionAction]:
    actions: list[SessionAction] = []
    for report in fragment(cid, HidCommand.CBOR, message):
        actions += session.receive_packet(report)
    return actions


def _inline_answer() -> Reply:
    clock = ManualClock()
    session = CtapHidSession(Authenticator(clock=clock, strict=True), clock=clock)
    cid = allocate(session.framer)
    assert _send(session, cid, GET_INFO) == []
    [(_, command, payload)] = replies(session.framer)
    return (cid, command, payload)


def _wait(session: CtapHidSession, clock: ManualClock, steps: list[float]) -> int:
    """Advance the clock in ``steps``, ticking after each; the keepalives the model expects
    (the step started at the clock's current time)."""
    expected, due = 0, clock.now() + session.keepalive_interval
    for step in steps:
        clock.advance(step)
        assert session.tick() == []
        if clock.now() >= due:
            expected += 1
            due = clock.now() + session.keepalive_interval
    return expected


@given(steps=delays)
def test_processing_keepalives_then_the_inline_answer(steps: list[float]) -> None:
    clock = ManualClock()
    session = CtapHidSession(Authenticator(clock=clock, strict=True), clock=clock, offload=True)
    cid = allocate(session.framer)
    [compute] = _send(session, cid, GET_INFO)
    assert isinstance(compute, Compute)
    expected = _wait(session, clock, steps)
    assert session.computed(compute.job, compute.work()) == []
    messages = replies(session.framer)
    assert messages[:-1] == [(cid, HidCommand.KEEPALIVE, PROCESSING)] * expected
    _, command, payload = _inline_answer()
    assert messages[-1] == (cid, command, payload)
    assert not session.computing and session.next_deadline() is None


@given(before=delays, after=delays)
def test_a_client_gone_mid_step_gets_nothing_and_the_next_is_served(
    before: list[float], after: list[float]
) -> None:
    clock = ManualClock()
    session = CtapHidSession(Authenticator(clock=clock, strict=True), clock=clock, offload=True)
    gone = allocate(session.framer)
    [compute] = _send(session, gone, GET_INFO)
    assert isinstance(compute, Compute)
    _wait(session, clock, before)
    replies(session.framer)
    assert session.disconnect() == []
    _wait(session, clock, after)
    assert replies(session.framer) == []  # no keepalive for a departed client
    assert session.computed(compute.job, compute.work()) == []
    assert replies(session.framer) == []
    cid = allocate(session.framer)
    [next_step] = _send(session, cid, GET_INFO)
    assert isinstance(next_step, Compute)
    assert session.computed(next_step.job, next_step.work()) == []
    [(reply_cid, command, payload)] = replies(session.framer)
    assert (reply_cid, command, payload) == (cid, *_inline_answer()[1:])
