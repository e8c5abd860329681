"""Stateful property test of ``CtapHidFramer`` against a model of its clients (CTAP 2.1 §11.2).

Well-behaved clients allocate channels and send PING/CBOR messages packet by packet, sometimes
out of order, sometimes unknown commands, sometimes CANCEL; while one transaction runs, others
try to start theirs. Noise arrives on channels nobody owns (arbitrary 64-byte reports), and a
hostile report may hit a client's own channel. The clock jumps. Throughout: the framer never
raises; every complete message is delivered exactly once and unchanged (PING echoed, CBOR as a
``Request``); every error is a CTAPHID_ERROR with the code the model predicts; afterwards a
fresh INIT + PING works.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from hypothesis import assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from authenticator import ManualClock
from transports.ctaphid.constants import (
    BROADCAST_CID,
    DEFAULT_TRANSACTION_TIMEOUT,
    INIT_FLAG,
    MAX_MESSAGE_SIZE,
    RESERVED_CID,
    HidCommand,
    HidError,
)
from transports.ctaphid.framer import (
    Abort,
    Cancel,
    ChannelAllocated,
    CtapHidFramer,
    ErrorSent,
    HidEvent,
    Request,
)
from transports.ctaphid.packets import ContinuationPacket, InitPacket, fragment, parse_packet

Message = tuple[int, int, bytes]
NONCE = b"\x5a" * 8


@dataclass
class Transaction:
    cid: int
    command: HidCommand
    payload: bytes
    packets: list[bytes]
    sent: int = 0
    deadline: float = 0.0


@dataclass
class Model:
    channels: set[int] = field(default_factory=set)  # every channel the framer allocated
    active: Transaction | None = None  # a message being sent
    processing: Request | None = None  # a CBOR request waiting for its response


def drain(framer: CtapHidFramer) -> list[Message]:
    messages: list[Message] = []
    current: list[object] | None = None
    for report in framer.packets_to_send():
        assert len(report) == 64
        packet = parse_packet(report)
        if isinstance(packet, InitPacket):
            assert current is None, "interleaved output messages"
            current = [packet.cid, packet.command, packet.length, bytearray(packet.data), 0]
        else:
            assert isinstance(packet, ContinuationPacket) and current is not None
            assert packet.cid == current[0] and packet.seq == current[4]
            buffer = current[3]
            assert isinstance(buffer, bytearray) and isinstance(current[2], int)
            buffer += packet.data[: current[2] - len(buffer)]
            current[4] = packet.seq + 1
        assert current is not None
        buffer = current[3]
        assert isinstance(buffer, bytearray)
        if len(buffer) == current[2]:
            cid, command = current[0], current[1]
            assert isinstance(cid, int) and isinstance(command, int)
            messages.append((cid, command, bytes(buffer)))
            current = None
    assert current is None, "an output message was cut short"
    return messages


def error(cid: int, code: HidError) -> Message:
    return (cid, HidCommand.ERROR, bytes([code]))


class FramerMachine(RuleBasedStateMachine):
    clients = Bundle("clients")

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.framer = CtapHidFramer(clock=self.clock)
        self.model = Model()
        self.delivered: list[bytes] = []

    # -- plumbing -----------------------------------------------------------------------------

    def feed(self, report: bytes) -> tuple[list[HidEvent], list[Message]]:
        """Send one report; return events and output, minus a timeout the model expected."""
        expected_timeout = self._due_timeout()
        events = self.framer.receive_packet(report)
        output = drain(self.framer)
        if expected_timeout is not None:
            assert output[:1] == [error(expected_timeout, HidError.MSG_TIMEOUT)]
            assert events[:1] == [ErrorSent(expected_timeout, HidError.MSG_TIMEOUT)]
            output, events = output[1:], events[1:]
        errors = [ErrorSent(cid, HidError(payload[0])) for cid, c, payload in output if c == 0x3F]
        assert [e for e in events if isinstance(e, ErrorSent)] == errors
        for _cid, command, payload in output:
            if command == HidCommand.INIT and len(payload) == 17:
                self.model.channels.add(struct.unpack_from(">I", payload, 8)[0])
        return events, output

    def _due_timeout(self) -> int | None:
        active = self.model.active
        if active is not None and active.sent and self.clock.now() >= active.deadline:
            self.model.active = None
            return active.cid
        return None

    def busy(self) -> bool:
        return self.model.active is not None or self.model.processing is not None

    def _send_next(self) -> tuple[list[HidEvent], list[Message]]:
        active = self.model.active
        assert active is not None
        events, output = self.feed(active.packets[active.sent])
        if self.model.active is None:  # it timed out before this packet
            assert output == [] and events == []  # the late packet is spurious
            return events, output
        active.sent += 1
        active.deadline = self.clock.now() + DEFAULT_TRANSACTION_TIMEOUT
        if active.sent == len(active.packets):
            self.model.active = None
            self._check_delivery(active, events, output)
        else:
            assert (events, output) == ([], [])
        return events, output

    def _check_delivery(
        self, sent: Transaction, events: list[HidEvent], output: list[Message]
    ) -> None:
        if sent.command == HidCommand.PING:
            assert output == [(sent.cid, HidCommand.PING, sent.payload)]
            assert events == []
        elif not sent.payload:
            assert output == [error(sent.cid, HidError.INVALID_LEN)]
        else:
            [request] = events
            assert isinstance(request, Request)
            assert (request.cid, request.command, request.payload) == (
                sent.cid,
                HidCommand.CBOR,
                sent.payload,
            )
            assert output == []
            self.model.processing = request
        self.delivered.append(sent.payload)

    # -- rules --------------------------------------------------------------------------------

    @initialize(target=clients)
    def first_client(self) -> int:
        return self.allocate()

    @rule(target=clients)
    def new_client(self) -> int:
        return self.allocate()

    def allocate(self) -> int:
        events, output = self.feed(fragment(BROADCAST_CID, HidCommand.INIT, NONCE)[0])
        [(cid, command, payload)] = output
        assert (cid, command, payload[:8]) == (BROADCAST_CID, HidCommand.INIT, NONCE)
        new_cid: int = struct.unpack_from(">I", payload, 8)[0]
        assert events == [ChannelAllocated(new_cid)]
        return new_cid

    @rule(
        client=clients,
        command=st.sampled_from([HidCommand.PING, HidCommand.CBOR]),
        payload=st.one_of(
            st.binary(max_size=120),
            st.tuples(st.integers(58, MAX_MESSAGE_SIZE), st.integers(0, 255)).map(
                lambda size_seed: bytes((size_seed[1] + 7 * i) & 0xFF for i in range(size_seed[0]))
            ),
        ),
    )
    def start_message(self, client: int, command: HidCommand, payload: bytes) -> None:
        packets = fragment(client, command, payload)
        active, processing = self.model.active, self.model.processing
        if self._due_timeout_peek():
            active = None
        if active is not None or processing is not None:
            owner = active.cid if active is not None else processing.cid  # type: ignore[union-attr]
            _events, output = self.feed(packets[0])
            if owner == client and active is not None:
                assert output == [error(client, HidError.INVALID_SEQ)]
                self.model.active = None
            else:
                assert output == [error(client, HidError.CHANNEL_BUSY)]
            return
        self.model.active = Transaction(client, command, payload, packets)
        self._send_next()

    def _due_timeout_peek(self) -> bool:
        active = self.model.active
        return active is not None and active.sent > 0 and self.clock.now() >= active.deadline

    @precondition(lambda self: self.model.active is not None)
    @rule()
    def next_packet(self) -> None:
        self._send_next()

    @precondition(lambda self: self.model.active is not None)
    @rule(pause=st.sampled_from([0.2, 0.3, 0.49, 0.5, 0.7]), count=st.integers(1, 4))
    def packets_after_pauses(self, pause: float, count: int) -> None:
        """The timeout runs from the latest packet: a slow client is fine, a stalled one not."""
        for _ in range(count):
            if self.model.active is None:
                return
            self.clock.advance(pause)
            self._send_next()

    @precondition(lambda self: self.model.active is not None)
    @rule()
    def finish_message(self) -> None:
        while self.model.active is not None:
            self._send_next()

    @precondition(lambda self: self.model.active is not None)
    @rule(data=st.data())
    def out_of_order_packet(self, data: st.DataObject) -> None:
        active = self.model.active
        assert active is not None
        assume(len(active.packets) - active.sent >= 2 and active.sent >= 1)
        index = data.draw(st.integers(active.sent + 1, len(active.packets) - 1))
        timed_out = self._due_timeout_peek()
        _events, output = self.feed(active.packets[index])
        if timed_out:
            assert output == []
        else:
            assert output == [error(active.cid, HidError.INVALID_SEQ)]
            self.model.active = None

    @precondition(lambda self: self.model.processing is not None)
    @rule(response=st.binary(max_size=2000), cancel_first=st.booleans())
    def respond(self, response: bytes, cancel_first: bool) -> None:
        request = self.model.processing
        assert request is not None
        if cancel_first and self.model.active is None:
            events, output = self.feed(fragment(request.cid, HidCommand.CANCEL, b"")[0])
            assert events == [Cancel(request)] and output == []
        assert self.framer.respond(request, response)
        assert drain(self.framer) == [(request.cid, HidCommand.CBOR, response)]
        self.model.processing = None

    @precondition(lambda self: self.model.processing is not None)
    @rule()
    def resync_processing_channel(self) -> None:
        request = self.model.processing
        assert request is not None
        events, output = self.feed(fragment(request.cid, HidCommand.INIT, NONCE)[0])
        assert events == [Abort(request)]
        assert [m[1] for m in output] == [HidCommand.INIT]
        assert not self.framer.respond(request, b"late")
        self.model.processing = None

    @rule(client=clients, command=st.integers(0, 0x7F))
    def unknown_command(self, client: int, command: int) -> None:
        known = {int(c) for c in HidCommand}
        assume(command not in known or command in (HidCommand.KEEPALIVE, HidCommand.ERROR))
        if self.busy() and not self._due_timeout_peek():
            return  # covered by start_message's busy path
        if self.model.processing is not None:
            return
        _events, output = self.feed(fragment(client, command, b"")[0])
        assert output == [error(client, HidError.INVALID_CMD)]

    @rule(seconds=st.sampled_from([0.0, 0.1, 0.3, 0.49, 0.5, 0.6, 3.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)
        expected = self._due_timeout()
        events = self.framer.tick()
        output = drain(self.framer)
        if expected is None:
            assert (events, output) == ([], [])
        else:
            assert output == [error(expected, HidError.MSG_TIMEOUT)]
            assert events == [ErrorSent(expected, HidError.MSG_TIMEOUT)]

    @rule(report=st.binary(min_size=64, max_size=64), cid=st.integers(0, 0xFFFFFFFF))
    def noise(self, report: bytes, cid: int) -> None:
        """An arbitrary report on a channel no client owns."""
        assume(cid not in self.model.channels)
        report = struct.pack(">I", cid) + report[4:]
        is_init = bool(report[4] & INIT_FLAG)
        command = report[4] & 0x7F
        length = struct.unpack_from(">H", report, 5)[0]
        events, output = self.feed(report)
        if not is_init:
            assert output == []
        elif cid == BROADCAST_CID and command == HidCommand.INIT:
            if length == 8:
                [(reply_cid, reply_command, _)] = output
                assert (reply_cid, reply_command) == (BROADCAST_CID, HidCommand.INIT)
            else:
                assert output == [error(cid, HidError.INVALID_LEN)]
        else:
            assert output == [error(cid, HidError.INVALID_CHANNEL)]
        assert not [e for e in events if isinstance(e, Request | Cancel | Abort)]

    @precondition(lambda self: not self.busy())
    @rule(client=clients, report=st.binary(min_size=60, max_size=60), first=st.integers(0, 255))
    def hostile_report_on_a_client_channel(self, client: int, report: bytes, first: int) -> None:
        """Anything may happen on that channel; INIT then LOCK 0 put it back in order."""
        _events, output = self.feed(struct.pack(">IB", client, first) + report[1:] + b"\0")
        assert all(cid == client for cid, _, _ in output)
        _events, output = self.feed(fragment(client, HidCommand.INIT, NONCE)[0])
        self.feed(fragment(client, HidCommand.LOCK, b"\x00")[0])
        assert not self.framer.busy

    # -- invariants and the end ---------------------------------------------------------------

    @invariant()
    def busy_matches_the_model(self) -> None:
        if not self._due_timeout_peek():
            assert self.framer.busy == self.busy()
        assert RESERVED_CID not in self.model.channels

    def teardown(self) -> None:
        request = self.model.processing
        if request is not None:
            self.framer.respond(request, b"\x00")
        self.clock.advance(DEFAULT_TRANSACTION_TIMEOUT + 11)  # past any timeout and lock
        self.framer.tick()
        drain(self.framer)
        self.model.active = self.model.processing = None
        assert not self.framer.busy
        cid = self.allocate()
        _events, output = self.feed(fragment(cid, HidCommand.PING, b"still alive")[0])
        assert output == [(cid, HidCommand.PING, b"still alive")]


FramerMachine.TestCase.settings = settings(FramerMachine.TestCase.settings, deadline=None)
TestFramerMachine = FramerMachine.TestCase
