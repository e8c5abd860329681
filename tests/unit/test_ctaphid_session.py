"""``CtapHidSession``: the framer driving the real (strict) core, on a ManualClock — presence
questions, keepalives, CANCEL, resynchronisation, disconnects, U2F polling, log lines."""

from __future__ import annotations

import hashlib
import os
import struct

import pytest
from fido2 import cbor

from authenticator import Authenticator, ManualClock, NeedPresence, Presence
from authenticator.presence import approve
from authenticator.status import CtapStatus
from authenticator.u2f import StatusWord
from tests.unit.test_ctaphid_framer import NONCE, Reply, allocate, replies
from transports.ctaphid.constants import (
    BROADCAST_CID,
    Capability,
    HidCommand,
    HidError,
    KeepaliveStatus,
)
from transports.ctaphid.session import (
    AskPresence,
    Compute,
    CtapHidSession,
    StopAsking,
    Winked,
    describe_apdu,
    describe_cbor_request,
    describe_cbor_response,
    framer_settings,
)

UP_NEEDED: Reply = (0, HidCommand.KEEPALIVE, bytes([KeepaliveStatus.UP_NEEDED]))


def make_credential() -> bytes:
    return b"\x01" + cbor.encode(
        {
            1: os.urandom(32),
            2: {"id": "example.com", "name": "Example"},
            3: {"id": b"user", "name": "user"},
            4: [{"type": "public-key", "alg": -7}],
        }
    )


def keepalive(cid: int) -> Reply:
    return (cid, HidCommand.KEEPALIVE, bytes([KeepaliveStatus.UP_NEEDED]))


def u2f_register() -> bytes:
    app = hashlib.sha256(b"https://example.com").digest()
    return bytes([0x00, 0x01, 0x03, 0x00, 0x00, 0x00, 64]) + os.urandom(32) + app + b"\x00\x00"


def status_word(reply: Reply) -> int:
    return int(struct.unpack(">H", reply[2][-2:])[0])


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def session(clock: ManualClock) -> CtapHidSession:
    return CtapHidSession(Authenticator(clock=clock, strict=True), clock=clock)


def channel(session: CtapHidSession) -> int:
    return allocate(session.framer)


def cbor_request(session: CtapHidSession, cid: int, message: bytes) -> list[object]:
    actions: list[object] = []
    for report in _fragment(cid, HidCommand.CBOR, message):
        actions += session.receive_packet(report)
    return actions


def _fragment(cid: int, command: int, payload: bytes) -> list[bytes]:
    from transports.ctaphid.packets import fragment

    return fragment(cid, command, payload)


def test_settings_follow_the_profile() -> None:
    authenticator = Authenticator(strict=True)
    settings = framer_settings(authenticator.config)
    assert settings.capabilities == Capability.WINK | Capability.CBOR
    assert settings.device_version == (0, 1, 0)
    from dataclasses import replace

    no_u2f = framer_settings(replace(authenticator.config, u2f=False))
    assert Capability.NMSG in no_u2f.capabilities


def test_get_info_over_ctaphid(session: CtapHidSession) -> None:
    cid = channel(session)
    assert cbor_request(session, cid, b"\x04") == []
    [(reply_cid, command, payload)] = replies(session.framer)
    assert (reply_cid, command, payload[0]) == (cid, HidCommand.CBOR, CtapStatus.OK)
    info = cbor.decode(payload[1:])
    assert isinstance(info, dict)
    assert info[5] == 7609  # maxMsgSize of the default profile


def test_presence_wait_sends_keepalives_until_approved(
    session: CtapHidSession, clock: ManualClock
) -> None:
    cid = channel(session)
    [ask] = cbor_request(session, cid, make_credential())
    assert isinstance(ask, AskPresence)
    assert isinstance(ask.request, NeedPresence) and ask.request.rp_id == "example.com"
    assert session.waiting_for_presence
    assert replies(session.framer) == [keepalive(cid)]  # at once
    clock.advance(0.05)
    assert session.tick() == []
    assert replies(session.framer) == []
    assert session.next_deadline() == pytest.approx(clock.now() + 0.05)
    clock.advance(0.051)
    session.tick()
    assert replies(session.framer) == [keepalive(cid)]
    for _ in range(3):  # then one every 100 ms
        clock.advance(0.1)
        session.tick()
        assert replies(session.framer) == [keepalive(cid)]
    assert session.presence_decided(ask.ticket, Presence.APPROVED) == []
    [(reply_cid, command, payload)] = replies(session.framer)
    assert (reply_cid, command, payload[0]) == (cid, HidCommand.CBOR, CtapStatus.OK)
    assert not session.waiting_for_presence and not session.framer.busy


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (Presence.DENIED, CtapStatus.OPERATION_DENIED),
        (Presence.TIMED_OUT, CtapStatus.USER_ACTION_TIMEOUT),
    ],
)
def test_presence_refused(session: CtapHidSession, outcome: Presence, status: CtapStatus) -> None:
    cid = channel(session)
    [ask] = cbor_request(session, cid, make_credential())
    assert isinstance(ask, AskPresence)
    replies(session.framer)
    session.presence_decided(ask.ticket, outcome)
    assert replies(session.framer) == [(cid, HidCommand.CBOR, bytes([status]))]


def test_cancel_stops_asking_and_answers_keepalive_cancel(session: CtapHidSession) -> None:
    cid = channel(session)
    [ask] = cbor_request(session, cid, make_credential())
    assert isinstance(ask, AskPresence)
    replies(session.framer)
    actions = session.receive_packet(_fragment(cid, HidCommand.CANCEL, b"")[0])
    assert actions == [StopAsking(ask.ticket)]
    assert replies(session.framer) == [(cid, HidCommand.CBOR, bytes([CtapStatus.KEEPALIVE_CANCEL]))]
    assert session.presence_decided(ask.ticket, Presence.APPROVED) == []  # too late: ignored
    assert replies(session.framer) == []


def test_init_on_the_channel_abandons_the_wait(session: CtapHidSession) -> None:
    cid = channel(session)
    [ask] = cbor_request(session, cid, make_credential())
    assert isinstance(ask, AskPresence)
    replies(session.framer)
    actions: list[object] = []
    for report in _fragment(cid, HidCommand.INIT, NONCE):
        actions += session.receive_packet(report)
    assert actions == [StopAsking(ask.ticket)]
    assert [r[1] for r in replies(session.framer)] == [HidCommand.INIT]
    session.presence_decided(ask.ticket, Presence.APPROVED)
    assert replies(session.framer) == []
    cbor_request(session, cid, b"\x04")
    assert replies(session.framer)[0][2][0] == CtapStatus.OK


def test_disconnect_frees_the_key_for_the_next_client(session: CtapHidSession) -> None:
    first = channel(session)
    [ask] = cbor_request(session, first, make_credential())
    assert isinstance(ask, AskPresence)
    replies(session.framer)
    second = channel(session)
    cbor_request(session, second, b"\x04")
    assert replies(session.framer) == [(second, HidCommand.ERROR, bytes([HidError.CHANNEL_BUSY]))]
    assert session.disconnect() == [StopAsking(ask.ticket)]
    cbor_request(session, second, b"\x04")
    [(reply_cid, _, payload)] = replies(session.framer)
    assert (reply_cid, payload[0]) == (second, CtapStatus.OK)


def test_instant_presence_answers_without_asking(clock: ManualClock) -> None:
    session = CtapHidSession(
        Authenticator(clock=clock, strict=True), clock=clock, instant_presence=approve
    )
    cid = channel(session)
    assert cbor_request(session, cid, make_credential()) == []
    [(_, command, payload)] = replies(session.framer)
    assert (command, payload[0]) == (HidCommand.CBOR, CtapStatus.OK)


def test_u2f_polls_then_uses_the_latched_touch(session: CtapHidSession, clock: ManualClock) -> None:
    cid = channel(session)

    def register() -> tuple[list[object], Reply]:
        acts: list[object] = []
        for report in _fragment(cid, HidCommand.MSG, u2f_register()):
            acts += session.receive_packet(report)
        [reply] = replies(session.framer)
        return acts, reply

    acts, reply = register()
    assert status_word(reply) == StatusWord.CONDITIONS_NOT_SATISFIED
    [ask] = acts
    assert isinstance(ask, AskPresence)
    acts, reply = register()  # still asking: poll again
    assert acts == [] and status_word(reply) == StatusWord.CONDITIONS_NOT_SATISFIED
    session.presence_decided(ask.ticket, Presence.APPROVED)
    acts, reply = register()
    assert acts == [] and status_word(reply) == StatusWord.NO_ERROR
    acts, reply = register()  # the touch was used up
    assert status_word(reply) == StatusWord.CONDITIONS_NOT_SATISFIED
    assert len(acts) == 1


def test_wink_is_reported(session: CtapHidSession) -> None:
    cid = channel(session)
    actions: list[object] = []
    for report in _fragment(cid, HidCommand.WINK, b""):
        actions += session.receive_packet(report)
    assert actions == [Winked(cid)]


def test_broadcast_init_is_served_while_waiting(session: CtapHidSession) -> None:
    cid = channel(session)
    cbor_request(session, cid, make_credential())
    replies(session.framer)
    for report in _fragment(BROADCAST_CID, HidCommand.INIT, NONCE):
        session.receive_packet(report)
    [(reply_cid, command, _)] = replies(session.framer)
    assert (reply_cid, command) == (BROADCAST_CID, HidCommand.INIT)
    assert session.waiting_for_presence


def test_log_lines_name_parameters_but_never_show_secrets() -> None:
    secret = b"\x13" * 32
    client_pin = b"\x06" + cbor.encode({1: 2, 2: 5, 4: secret, 6: secret})
    line = describe_cbor_request(client_pin)
    assert line.startswith("CLIENT_PIN(")
    assert "<32 B>" in line and secret.hex() not in line and "\\x13" not in line
    assert describe_cbor_request(b"\x02" + cbor.encode({1: "example.com", 2: secret})).startswith(
        "GET_ASSERTION(rp_id='example.com', client_data_hash=<32 B>"
    )
    assert describe_cbor_request(b"\x01\xff") == "MAKE_CREDENTIAL (undecodable parameters, 1 B)"
    assert describe_cbor_request(b"") == "(empty)"
    assert describe_cbor_response(b"\x00\xa0") == "OK (1 B)"
    assert describe_cbor_response(b"\x2d") == "KEEPALIVE_CANCEL"
    assert describe_apdu(u2f_register()).startswith("REGISTER")


# -- offload mode: core steps run by the driver, KEEPALIVE(PROCESSING) meanwhile ---------------

PROCESSING = bytes([KeepaliveStatus.PROCESSING])


@pytest.fixture
def offloaded(clock: ManualClock) -> CtapHidSession:
    return CtapHidSession(Authenticator(clock=clock, strict=True), clock=clock, offload=True)


def run(session: CtapHidSession, actions: list[object]) -> list[object]:
    """Be the driver: run every Compute (and the ones its result starts), return the rest."""
    others: list[object] = []
    pending = list(actions)
    while pending:
        action = pending.pop(0)
        if isinstance(action, Compute):
            pending += session.computed(action.job, action.work())
        else:
            others.append(action)
    return others


def test_offload_sends_processing_keepalives_until_the_step_ends(
    offloaded: CtapHidSession, clock: ManualClock
) -> None:
    cid = channel(offloaded)
    [compute] = cbor_request(offloaded, cid, b"\x04")
    assert isinstance(compute, Compute)
    assert offloaded.computing and offloaded.framer.busy
    assert replies(offloaded.framer) == []  # nothing yet: a fast step needs no keepalive
    assert offloaded.next_deadline() == pytest.approx(clock.now() + 0.1)
    for _ in range(3):  # a slow step: one KEEPALIVE(PROCESSING) per 100 ms
        clock.advance(0.1)
        assert offloaded.tick() == []
        assert replies(offloaded.framer) == [(cid, HidCommand.KEEPALIVE, PROCESSING)]
    other = channel(offloaded)  # INIT is served meanwhile; other channels are busy
    cbor_request(offloaded, other, b"\x04")
    assert replies(offloaded.framer) == [(other, HidCommand.ERROR, bytes([HidError.CHANNEL_BUSY]))]
    assert offloaded.computed(compute.job, compute.work()) == []
    [(reply_cid, command, payload)] = replies(offloaded.framer)
    assert (reply_cid, command, payload[0]) == (cid, HidCommand.CBOR, CtapStatus.OK)
    assert not offloaded.computing and not offloaded.framer.busy
    assert offloaded.next_deadline() is None
    clock.advance(0.2)
    offloaded.tick()
    assert replies(offloaded.framer) == []


def test_offload_presence_then_resume_is_another_step(
    offloaded: CtapHidSession, clock: ManualClock
) -> None:
    cid = channel(offloaded)
    [ask] = run(offloaded, cbor_request(offloaded, cid, make_credential()))
    assert isinstance(ask, AskPresence) and offloaded.waiting_for_presence
    assert replies(offloaded.framer) == [keepalive(cid)]  # UPNEEDED while asking
    [compute] = offloaded.presence_decided(ask.ticket, Presence.APPROVED)
    assert isinstance(compute, Compute) and not offloaded.waiting_for_presence
    clock.advance(0.1)
    offloaded.tick()  # generating the key: PROCESSING now, not UPNEEDED
    assert replies(offloaded.framer) == [(cid, HidCommand.KEEPALIVE, PROCESSING)]
    assert run(offloaded, [compute]) == []
    [(_, command, payload)] = replies(offloaded.framer)
    assert (command, payload[0]) == (HidCommand.CBOR, CtapStatus.OK)


def test_offload_with_instant_presence(clock: ManualClock) -> None:
    session = CtapHidSession(
        Authenticator(clock=clock, strict=True),
        clock=clock,
        instant_presence=approve,
        offload=True,
    )
    cid = channel(session)
    [first] = cbor_request(session, cid, make_credential())
    assert isinstance(first, Compute)
    [second] = session.computed(first.job, first.work())  # NeedPresence -> resume approved
    assert isinstance(second, Compute) and second.job != first.job
    assert replies(session.framer) == []
    assert session.computed(second.job, second.work()) == []
    [(_, command, payload)] = replies(session.framer)
    assert (command, payload[0]) == (HidCommand.CBOR, CtapStatus.OK)


def test_offload_cancel_while_computing_a_step_that_wants_a_touch(
    offloaded: CtapHidSession,
) -> None:
    cid = channel(offloaded)
    [compute] = cbor_request(offloaded, cid, make_credential())
    assert isinstance(compute, Compute)
    assert offloaded.receive_packet(_fragment(cid, HidCommand.CANCEL, b"")[0]) == []
    # The step ends wanting a touch: resumed with CANCELLED instead of asking anyone.
    assert run(offloaded, [compute]) == []
    assert replies(offloaded.framer) == [
        (cid, HidCommand.CBOR, bytes([CtapStatus.KEEPALIVE_CANCEL]))
    ]
    assert not offloaded.computing and not offloaded.waiting_for_presence


def test_offload_abort_drops_the_result_and_the_next_request_waits_its_turn(
    offloaded: CtapHidSession, clock: ManualClock
) -> None:
    first = channel(offloaded)
    [slow] = cbor_request(offloaded, first, make_credential())
    assert isinstance(slow, Compute)
    assert offloaded.disconnect() == []  # the client left while the core computed
    second = channel(offloaded)
    assert cbor_request(offloaded, second, b"\x04") == []  # queued: one step at a time
    clock.advance(0.1)
    offloaded.tick()
    assert replies(offloaded.framer) == [(second, HidCommand.KEEPALIVE, PROCESSING)]
    [queued] = offloaded.computed(slow.job, slow.work())  # wanted a touch: core cancelled
    assert isinstance(queued, Compute)
    assert replies(offloaded.framer) == []  # nothing for the departed client
    assert run(offloaded, [queued]) == []
    [(reply_cid, _, payload)] = replies(offloaded.framer)
    assert (reply_cid, payload[0]) == (second, CtapStatus.OK)


def test_offload_ignores_results_of_unknown_jobs(offloaded: CtapHidSession) -> None:
    cid = channel(offloaded)
    [compute] = cbor_request(offloaded, cid, b"\x04")
    assert isinstance(compute, Compute)
    assert offloaded.computed(compute.job + 1, compute.work()) == []
    assert replies(offloaded.framer) == [] and offloaded.computing


def test_offload_internal_error_answers_other(clock: ManualClock) -> None:
    session = CtapHidSession(Authenticator(clock=clock), clock=clock, offload=True)
    cid = channel(session)
    [compute] = cbor_request(session, cid, b"\x04")
    assert isinstance(compute, Compute)
    assert session.computed(compute.job, RuntimeError("bug")) == []
    assert replies(session.framer) == [(cid, HidCommand.ERROR, bytes([HidError.OTHER]))]
    strict = CtapHidSession(Authenticator(clock=clock, strict=True), clock=clock, offload=True)
    cid = channel(strict)
    [compute] = cbor_request(strict, cid, b"\x04")
    assert isinstance(compute, Compute)
    with pytest.raises(RuntimeError, match="bug"):
        strict.computed(compute.job, RuntimeError("bug"))


def test_offload_u2f_polls_like_inline(offloaded: CtapHidSession) -> None:
    cid = channel(offloaded)
    acts: list[object] = []
    for report in _fragment(cid, HidCommand.MSG, u2f_register()):
        acts += offloaded.receive_packet(report)
    [ask] = run(offloaded, acts)
    assert isinstance(ask, AskPresence)
    [reply] = replies(offloaded.framer)
    assert status_word(reply) == StatusWord.CONDITIONS_NOT_SATISFIED


def test_offload_cancel_reaches_the_live_request_not_an_identical_abandoned_one(
    offloaded: CtapHidSession,
) -> None:
    cid = channel(offloaded)
    message = make_credential()
    [slow] = cbor_request(offloaded, cid, message)
    assert isinstance(slow, Compute)
    offloaded.disconnect()  # abandoned while it runs...
    assert cbor_request(offloaded, cid, message) == []  # ...and the very same request again
    offloaded.receive_packet(_fragment(cid, HidCommand.CANCEL, b"")[0])
    [queued] = offloaded.computed(slow.job, slow.work())
    assert isinstance(queued, Compute)
    assert run(offloaded, [queued]) == []  # cancelled: no presence question
    assert replies(offloaded.framer) == [
        (cid, HidCommand.CBOR, bytes([CtapStatus.KEEPALIVE_CANCEL]))
    ]
