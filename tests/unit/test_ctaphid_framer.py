"""``CtapHidFramer`` (CTAP 2.1 §11.2): every CTAPHID command and error code, channels, busy,
timeouts on a ManualClock, and resynchronisation."""

from __future__ import annotations

import struct

import pytest

from authenticator import ManualClock
from transports.ctaphid.constants import (
    BROADCAST_CID,
    INIT_DATA_SIZE,
    MAX_MESSAGE_SIZE,
    Capability,
    HidCommand,
    HidError,
    KeepaliveStatus,
)
from transports.ctaphid.framer import (
    Abort,
    Cancel,
    ChannelAllocated,
    CtapHidFramer,
    ErrorSent,
    FramerSettings,
    HidEvent,
    Request,
    Wink,
)
from transports.ctaphid.packets import (
    ContinuationPacket,
    InitPacket,
    encode_continuation,
    encode_init,
    fragment,
    parse_packet,
)

NONCE = bytes.fromhex("0102030405060708")
Reply = tuple[int, int, bytes]


def replies(framer: CtapHidFramer) -> list[Reply]:
    """Reassemble everything the framer queued, as (cid, command, payload) messages."""
    messages: list[Reply] = []
    partial: tuple[int, int, int, bytearray, int] | None = None
    for report in framer.packets_to_send():
        assert len(report) == 64
        packet = parse_packet(report)
        if isinstance(packet, InitPacket):
            assert partial is None, "a message started before the previous one ended"
            partial = (packet.cid, packet.command, packet.length, bytearray(packet.data), 0)
        else:
            assert isinstance(packet, ContinuationPacket)
            assert partial is not None and packet.cid == partial[0]
            assert packet.seq == partial[4]
            cid, command, length, buffer, seq = partial
            buffer += packet.data[: length - len(buffer)]
            partial = (cid, command, length, buffer, seq + 1)
        cid, command, length, buffer, _ = partial
        if len(buffer) == length:
            messages.append((cid, command, bytes(buffer)))
            partial = None
    assert partial is None, "a message was left incomplete"
    return messages


def send(framer: CtapHidFramer, cid: int, command: int, payload: bytes) -> list[HidEvent]:
    events: list[HidEvent] = []
    for report in fragment(cid, command, payload):
        events += framer.receive_packet(report)
    return events


def allocate(framer: CtapHidFramer) -> int:
    events = send(framer, BROADCAST_CID, HidCommand.INIT, NONCE)
    [(cid, command, payload)] = replies(framer)
    assert (cid, command, payload[:8]) == (BROADCAST_CID, HidCommand.INIT, NONCE)
    new_cid: int = struct.unpack_from(">I", payload, 8)[0]
    assert events == [ChannelAllocated(new_cid)]
    return new_cid


def error(cid: int, code: HidError) -> Reply:
    return (cid, HidCommand.ERROR, bytes([code]))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def framer(clock: ManualClock) -> CtapHidFramer:
    return CtapHidFramer(FramerSettings(device_version=(1, 2, 3)), clock)


# -- CTAPHID_INIT -----------------------------------------------------------------------------


def test_init_on_broadcast_allocates_a_channel(framer: CtapHidFramer) -> None:
    send(framer, BROADCAST_CID, HidCommand.INIT, NONCE)
    [(cid, command, payload)] = replies(framer)
    assert (cid, command) == (BROADCAST_CID, HidCommand.INIT)
    nonce, new_cid, protocol, major, minor, build, caps = struct.unpack(">8sIBBBBB", payload)
    assert nonce == NONCE
    assert new_cid not in (0, BROADCAST_CID)
    assert (protocol, major, minor, build) == (2, 1, 2, 3)
    assert caps == Capability.WINK | Capability.CBOR


def test_each_init_allocates_a_new_channel(framer: CtapHidFramer) -> None:
    assert len({allocate(framer) for _ in range(5)}) == 5


def test_nmsg_is_advertised_when_configured(clock: ManualClock) -> None:
    caps = Capability.WINK | Capability.CBOR | Capability.NMSG
    framer = CtapHidFramer(FramerSettings(capabilities=caps), clock)
    send(framer, BROADCAST_CID, HidCommand.INIT, NONCE)
    [(_, _, payload)] = replies(framer)
    assert payload[-1] == caps


@pytest.mark.parametrize("length", [0, 7, 9, 17])
def test_init_with_a_nonce_of_the_wrong_size_is_invalid_len(
    framer: CtapHidFramer, length: int
) -> None:
    events = send(framer, BROADCAST_CID, HidCommand.INIT, bytes(length))
    assert events == [ErrorSent(BROADCAST_CID, HidError.INVALID_LEN)]
    assert replies(framer) == [error(BROADCAST_CID, HidError.INVALID_LEN)]


def test_init_on_the_reserved_channel_is_invalid_channel(framer: CtapHidFramer) -> None:
    send(framer, 0, HidCommand.INIT, NONCE)
    assert replies(framer) == [error(0, HidError.INVALID_CHANNEL)]


def test_init_on_an_unallocated_channel_is_invalid_channel(framer: CtapHidFramer) -> None:
    send(framer, 0x12345678, HidCommand.INIT, NONCE)
    assert replies(framer) == [error(0x12345678, HidError.INVALID_CHANNEL)]


def test_init_on_an_allocated_channel_resynchronises_it(framer: CtapHidFramer) -> None:
    cid = allocate(framer)
    assert send(framer, cid, HidCommand.INIT, NONCE) == []
    [(reply_cid, command, payload)] = replies(framer)
    assert (reply_cid, command) == (cid, HidCommand.INIT)
    assert struct.unpack_from(">I", payload, 8)[0] == cid


def test_init_aborts_the_channels_half_received_message(
    framer: CtapHidFramer,
) -> None:
    cid = allocate(framer)
    reports = fragment(cid, HidCommand.PING, bytes(200))
    framer.receive_packet(reports[0])
    send(framer, cid, HidCommand.INIT, NONCE)
    assert [r[1] for r in replies(framer)] == [HidCommand.INIT]
    for report in reports[1:]:
        assert framer.receive_packet(report) == []  # now spurious: ignored
    assert replies(framer) == []
    assert not framer.busy


def test_init_aborts_the_channels_request_in_processing(framer: CtapHidFramer) -> None:
    cid = allocate(framer)
    [request] = send(framer, cid, HidCommand.CBOR, b"\x04")
    assert isinstance(request, Request)
    assert send(framer, cid, HidCommand.INIT, NONCE) == [Abort(request)]
    assert [r[1] for r in replies(framer)] == [HidCommand.INIT]
    assert framer.respond(request, b"\x00late") is False
    assert framer.keepalive(request, KeepaliveStatus.UP_NEEDED) is False
    assert replies(framer) == []


def test_broadcast_init_is_served_while_another_channel_is_busy(framer: CtapHidFramer) -> None:
    busy = allocate(framer)
    [request] = send(framer, busy, HidCommand.CBOR, b"\x01\xa0")
    newcomer = allocate(framer)
    assert newcomer != busy
    assert send(framer, newcomer, HidCommand.PING, b"hi") == [
        ErrorSent(newcomer, HidError.CHANNEL_BUSY)
    ]
    assert replies(framer) == [error(newcomer, HidError.CHANNEL_BUSY)]
    assert isinstance(request, Request)
    assert framer.respond(request, b"\x00")
    assert replies(framer) == [(busy, HidCommand.CBOR, b"\x00")]


def test_channel_memory_is_bounded(clock: ManualClock) -> None:
    framer = CtapHidFramer(FramerSettings(max_channels=2), clock)
    first, second, third = allocate(framer), allocate(framer), allocate(framer)
    send(framer, first, HidCommand.PING, b"x")
    assert replies(framer) == [error(first, HidError.INVALID_CHANNEL)]
    for cid in (second, third):
        send(framer, cid, HidCommand.PING, b"x")
        assert replies(framer) == [(cid, HidCommand.PING, b"x")]


# -- PING, WINK, MSG, CBOR --------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 57, 58, 116, 117, 1827, 1828, MAX_MESSAGE_SIZE])
def test_ping_echoes(framer: CtapHidFramer, length: int) -> None:
    cid = allocate(framer)
    payload = bytes(i * 7 & 0xFF for i in range(length))
    assert send(framer, cid, HidCommand.PING, payload) == []
    assert replies(framer) == [(cid, HidCommand.PING, payload)]
    assert not framer.busy


def test_message_longer_than_7609_is_invalid_len(framer: CtapHidFramer) -> None:
    cid = allocate(framer)
    framer.receive_packet(encode_init(cid, HidCommand.PING, MAX_MESSAGE_SIZE + 1, bytes(57)))
    assert replies(framer) == [error(cid, HidError.INVALID_LEN)]
    assert not framer.busy


def test_7609_byte_cbor_request_and_response_round_trip(framer: CtapHidFramer) -> None:
    cid = allocate(framer)
    request_bytes = bytes([0x0C]) + bytes(i & 0xFF for i in range(MAX_MESSAGE_SIZE - 1))
    [request] = send(framer, cid, HidCommand.CBOR, request_bytes)
    assert isinstance(request, Request)
    assert (request.cid, request.command, request.payload) == (
        cid,
        HidCommand.CBOR,
        request_bytes,
    )
    response = bytes((i * 13) & 0xFF for i in range(MAX_MESSAGE_SIZE))
    assert framer.respond(request, response)
    assert replies(framer) == [(cid, HidCommand.CBOR, response)]


def test_wink_answers_and_reports(framer: CtapHidFramer) -> None:
    cid = allocate(framer)
    assert send(framer, cid, HidCommand.WINK, b"") == [Wink(cid)]
    assert replies(framer) == [(cid, HidCommand.WINK, b"")]


def test_msg_is_a_request(framer: CtapHidFramer) -> None:
    cid = allocate(framer)
    apdu = bytes.fromhex("0003000000")
    [request] = send(framer, cid, HidCommand.MSG, apdu)
    assert isinstance(request, Request)
    assert (request.command, request.payload) == (HidCommand.MSG, apdu)


def test_empty_cbor_request_is_invalid_len(framer: CtapHidFramer) -> None:
    cid = allocate(framer)
    assert send(framer, cid, HidCommand.CBOR, b"") == [ErrorSent(cid, HidError.INVALID_LEN)]
    assert replies(framer) == [error(cid, HidError.INVALID_LEN)]


@pytest.mark.parametrize(
    "command", [0x00, 0x02, 0x05, 0x12, 0x3A, HidCommand.KEEPALIVE, HidCommand.ERROR, 0x40, 0x7F]
)
def test_unknown_commands_are_invalid_cmd(framer: CtapHidFramer, command: int) -> None:
    cid = allocate(framer)
    send(framer, cid, command, b"abc")
    assert replies(framer) == [error(cid, HidError.INVALID_CMD)]
    assert not framer.busy


@pytest.mark.parametrize(
    ("capabilities", "command"),
    [
        (Capability.CBOR, HidCommand.WINK),
        (Capability.WINK, HidCommand.CBOR),
        (Capability.WINK | Capability.CBOR | Capability.NMSG, HidCommand.MSG),
    ],
)
def test_commands_the_device_does_not_offer_are_invalid_cmd(
    clock: ManualClock, capabilities: Capability, command: HidCommand
) -> None:
    framer = CtapHidFramer(FramerSettings(capabilities=capabilities), clock)
    cid = allocate(framer)
    send(framer, cid, command, b"\x04")
    assert replies(framer) == [error(cid, HidError.INVALID_CMD)]


def test_invalid_cmd_is_answered_before_invalid_len(framer: CtapHidFramer) -> None:
    cid = allocate(framer)
    framer.receive_packet(encode_init(cid, 0x22, MAX_MESSAGE_SIZE + 1, b""))
    assert replies(framer) == [error(cid, HidError.INVALID_CMD)]


# -- channels ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cid", [BROADCAST_CID, 0])
@pytest.mark.parametrize("command", [HidCommand.PING, HidCommand.CBOR, HidCommand.WINK])
def test_requests_on_broadcast_or_reserved_channel_are_invalid_channel(
    framer: CtapHidFramer, cid: int, command: HidCommand
) -> None:
    send(framer, cid, command, b"\x04")
    assert replies(framer) == [error(cid, HidError.INVALID_CHANNEL)]


def test_request_on_an_unallocated_channel_is_invalid_channel(framer: CtapHidFramer) -> None:
    allocate(framer)
    send(framer, 0x0BADCAFE, HidCommand.PING, b"x")
    assert replies(framer) == [error(0x0BADCAFE, HidError.INVALID_CHANNEL)]


# -- sequencing -------------------------------------------------------------------------------


def test_wrong_sequence_number_is_invalid_seq_and_ends_the_transaction(
    framer: CtapHidFramer,
) -> None:
    cid = allocate(framer)
    reports = fragment(cid, HidCommand.PING, bytes(300))
    framer.receive_packet(reports[0])
    framer.receive_packet(reports[2])  # SEQ 1 where 0 was due
    assert replies(framer) == [error(cid, HidError.INVALID_SEQ)]
    assert not framer.busy
    send(framer, cid, HidCommand.PING, b"again")
    assert replies(framer) == [(cid, HidCommand.PING, b"again")]


def test_new_request_mid_message_on_the_same_channel_is_invalid_seq(
    framer: CtapHidFramer,
) -> None:
    cid = allocate(framer)
    framer.receive_packet(fragment(cid, HidCommand.PING, bytes(300))[0])
    send(framer, cid, HidCommand.PING, b"x")
    assert replies(framer) == [error(cid, HidError.INVALID_SEQ)]
    assert not framer.busy


def test_spurious_continuation_packets_are_ignored(framer: CtapHidFramer) -> None:
    cid = allocate(framer)
    assert framer.receive_packet(encode_continuation(cid, 0, b"junk")) == []
    assert framer.receive_packet(encode_continuation(BROADCAST_CID, 3, b"")) == []
    assert replies(framer) == []
    assert framer.ignored_reports == 2


def test_continuations_from_another_channel_do_not_disturb_a_message(
    framer: CtapHidFramer,
) -> None:
    first, second = allocate(framer), allocate(framer)
    payload = bytes(range(150))
    reports = fragment(first, HidCommand.PING, payload)
    framer.receive_packet(reports[0])
    framer.receive_packet(encode_continuation(second, 0, b"noise"))
    for report in reports[1:]:
        framer.receive_packet(report)
    assert replies(framer) == [(first, HidCommand.PING, payload)]


def test_reports_too_short_to_name_a_channel_are_ignored(framer: CtapHidFramer) -> None:
    assert framer.receive_packet(b"\x00\x00") == []
    assert replies(framer) == []


def test_short_reports_are_read_as_zero_padded(framer: CtapHidFramer) -> None:
    cid = allocate(framer)
    framer.receive_packet(encode_init(cid, HidCommand.PING, 2, b"ok")[:9])
    assert replies(framer) == [(cid, HidCommand.PING, b"ok")]


# -- busy and timeouts ------------------------------------------------------------------------


def test_other_channels_are_busy_while_a_message_is_assembled(framer: CtapHidFramer) -> None:
    first, second = allocate(framer), allocate(framer)
    reports = fragment(first, HidCommand.PING, bytes(100))
    framer.receive_packet(reports[0])
    assert send(framer, second, HidCommand.PING, b"x") == [ErrorSent(second, HidError.CHANNEL_BUSY)]
    framer.receive_packet(reports[1])
    assert replies(framer) == [
        error(second, HidError.CHANNEL_BUSY),
        (first, HidCommand.PING, bytes(100)),
    ]


def test_other_channels_are_busy_while_a_request_is_processed(framer: CtapHidFramer) -> None:
    first, second = allocate(framer), allocate(framer)
    [request] = send(framer, first, HidCommand.CBOR, b"\x04")
    send(framer, second, HidCommand.CBOR, b"\x04")
    send(framer, first, HidCommand.CBOR, b"\x04")  # the same channel, before its answer
    assert replies(framer) == [
        error(second, HidError.CHANNEL_BUSY),
        error(first, HidError.CHANNEL_BUSY),
    ]
    assert isinstance(request, Request)
    framer.respond(request, b"\x00")
    send(framer, second, HidCommand.PING, b"now")
    assert replies(framer) == [(first, HidCommand.CBOR, b"\x00"), (second, HidCommand.PING, b"now")]


def test_incomplete_message_times_out(framer: CtapHidFramer, clock: ManualClock) -> None:
    cid = allocate(framer)
    reports = fragment(cid, HidCommand.PING, bytes(200))
    framer.receive_packet(reports[0])
    clock.advance(0.3)
    assert framer.tick() == []
    framer.receive_packet(reports[1])  # each packet restarts the timer
    clock.advance(0.3)
    assert framer.tick() == []
    assert framer.next_deadline() == pytest.approx(clock.now() + 0.2)
    clock.advance(0.2)
    assert framer.tick() == [ErrorSent(cid, HidError.MSG_TIMEOUT)]
    assert replies(framer) == [error(cid, HidError.MSG_TIMEOUT)]
    assert not framer.busy
    assert framer.receive_packet(reports[2]) == []  # the rest is now spurious
    assert replies(framer) == []


def test_timeout_is_applied_before_the_next_packet(
    framer: CtapHidFramer, clock: ManualClock
) -> None:
    first, second = allocate(framer), allocate(framer)
    framer.receive_packet(fragment(first, HidCommand.PING, bytes(100))[0])
    clock.advance(5)
    send(framer, second, HidCommand.PING, b"x")  # no tick in between: still not busy
    assert replies(framer) == [
        error(first, HidError.MSG_TIMEOUT),
        (second, HidCommand.PING, b"x"),
    ]


def test_processing_has_no_transaction_timeout(framer: CtapHidFramer, clock: ManualClock) -> None:
    cid = allocate(framer)
    [request] = send(framer, cid, HidCommand.CBOR, b"\x01")
    clock.advance(60)
    assert framer.tick() == []
    assert framer.busy and framer.current_request == request


# -- CANCEL, KEEPALIVE, fail, disconnect ------------------------------------------------------


def test_cancel_during_processing_is_an_event_and_never_answered(framer: CtapHidFramer) -> None:
    cid = allocate(framer)
    [request] = send(framer, cid, HidCommand.CBOR, b"\x01\xa0")
    assert isinstance(request, Request)
    assert send(framer, cid, HidCommand.CANCEL, b"") == [Cancel(request)]
    assert replies(framer) == []
    assert framer.respond(request, b"\x2d")
    assert replies(framer) == [(cid, HidCommand.CBOR, b"\x2d")]


def test_cancel_without_a_request_is_ignored(framer: CtapHidFramer) -> None:
    cid = allocate(framer)
    assert send(framer, cid, HidCommand.CANCEL, b"") == []
    assert replies(framer) == []


def test_cancel_from_another_channel_is_ignored(framer: CtapHidFramer) -> None:
    first, second = allocate(framer), allocate(framer)
    send(framer, first, HidCommand.CBOR, b"\x01")
    assert send(framer, second, HidCommand.CANCEL, b"") == []
    assert replies(framer) == []


def test_cancel_applies_only_to_cbor(framer: CtapHidFramer) -> None:
    cid = allocate(framer)
    send(framer, cid, HidCommand.MSG, b"\x00\x01\x00\x00")
    assert send(framer, cid, HidCommand.CANCEL, b"") == []


def test_cancel_mid_message_drops_it_silently(framer: CtapHidFramer) -> None:
    cid = allocate(framer)
    framer.receive_packet(fragment(cid, HidCommand.CBOR, bytes(100))[0])
    assert send(framer, cid, HidCommand.CANCEL, b"") == []
    assert replies(framer) == []
    assert not framer.busy


def test_keepalive_packets(framer: CtapHidFramer) -> None:
    cid = allocate(framer)
    [request] = send(framer, cid, HidCommand.CBOR, b"\x01")
    assert isinstance(request, Request)
    assert framer.keepalive(request, KeepaliveStatus.PROCESSING)
    assert framer.keepalive(request, KeepaliveStatus.UP_NEEDED)
    assert replies(framer) == [
        (cid, HidCommand.KEEPALIVE, b"\x01"),
        (cid, HidCommand.KEEPALIVE, b"\x02"),
    ]
    framer.respond(request, b"\x00")
    assert framer.keepalive(request, KeepaliveStatus.UP_NEEDED) is False


def test_fail_answers_err_other(framer: CtapHidFramer) -> None:
    cid = allocate(framer)
    [request] = send(framer, cid, HidCommand.CBOR, b"\x01")
    assert isinstance(request, Request)
    assert framer.fail(request)
    assert replies(framer) == [error(cid, HidError.OTHER)]
    assert not framer.busy
    assert framer.fail(request) is False


def test_disconnect_abandons_the_request_and_the_lock(
    framer: CtapHidFramer,
) -> None:
    first, second = allocate(framer), allocate(framer)
    send(framer, first, HidCommand.LOCK, b"\x0a")
    [request] = send(framer, first, HidCommand.CBOR, b"\x01")
    assert isinstance(request, Request)
    assert framer.disconnect() == [Abort(request)]
    replies(framer)
    send(framer, second, HidCommand.PING, b"free")
    assert replies(framer) == [(second, HidCommand.PING, b"free")]


def test_response_too_long_for_ctaphid_is_err_other(framer: CtapHidFramer) -> None:
    cid = allocate(framer)
    [request] = send(framer, cid, HidCommand.CBOR, b"\x01")
    assert isinstance(request, Request)
    framer.respond(request, bytes(MAX_MESSAGE_SIZE + 1))
    assert replies(framer) == [error(cid, HidError.OTHER)]


# -- LOCK -------------------------------------------------------------------------------------


def test_lock_reserves_the_device_until_it_expires(
    framer: CtapHidFramer, clock: ManualClock
) -> None:
    owner, other = allocate(framer), allocate(framer)
    send(framer, owner, HidCommand.LOCK, b"\x05")
    assert replies(framer) == [(owner, HidCommand.LOCK, b"")]
    send(framer, other, HidCommand.PING, b"x")
    send(framer, owner, HidCommand.PING, b"y")
    assert replies(framer) == [error(other, HidError.CHANNEL_BUSY), (owner, HidCommand.PING, b"y")]
    assert framer.next_deadline() == pytest.approx(clock.now() + 5)
    clock.advance(5)
    send(framer, other, HidCommand.PING, b"x")
    assert replies(framer) == [(other, HidCommand.PING, b"x")]


def test_lock_zero_releases(framer: CtapHidFramer) -> None:
    owner, other = allocate(framer), allocate(framer)
    send(framer, owner, HidCommand.LOCK, b"\x0a")
    send(framer, owner, HidCommand.LOCK, b"\x00")
    send(framer, other, HidCommand.PING, b"x")
    assert replies(framer)[-1] == (other, HidCommand.PING, b"x")


def test_lock_longer_than_ten_seconds_is_invalid_par(framer: CtapHidFramer) -> None:
    cid = allocate(framer)
    send(framer, cid, HidCommand.LOCK, b"\x0b")
    assert replies(framer) == [error(cid, HidError.INVALID_PAR)]


@pytest.mark.parametrize("payload", [b"", b"\x01\x02"])
def test_lock_needs_exactly_one_byte(framer: CtapHidFramer, payload: bytes) -> None:
    cid = allocate(framer)
    send(framer, cid, HidCommand.LOCK, payload)
    assert replies(framer) == [error(cid, HidError.INVALID_LEN)]


def test_lock_required_for_configured_commands(clock: ManualClock) -> None:
    framer = CtapHidFramer(FramerSettings(lock_required=frozenset({HidCommand.CBOR})), clock)
    cid = allocate(framer)
    send(framer, cid, HidCommand.CBOR, b"\x04")
    assert replies(framer) == [error(cid, HidError.LOCK_REQUIRED)]
    send(framer, cid, HidCommand.LOCK, b"\x02")
    [request] = send(framer, cid, HidCommand.CBOR, b"\x04")
    assert isinstance(request, Request)


def test_init_packet_data_beyond_bcnt_is_ignored(framer: CtapHidFramer) -> None:
    cid = allocate(framer)
    framer.receive_packet(encode_init(cid, HidCommand.PING, 3, b"abc" + b"\xff" * 20))
    assert replies(framer) == [(cid, HidCommand.PING, b"abc")]
    assert INIT_DATA_SIZE == 57
