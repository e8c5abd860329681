"""The CTAPHID packet codec (CTAP 2.1 §11.2.4): geometry, round trips and malformed reports."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transports.ctaphid.constants import (
    CONT_DATA_SIZE,
    INIT_DATA_SIZE,
    MAX_MESSAGE_SIZE,
    REPORT_SIZE,
    HidCommand,
)
from transports.ctaphid.packets import (
    ContinuationPacket,
    InitPacket,
    PacketError,
    encode_continuation,
    encode_init,
    fragment,
    normalize_report,
    packet_count,
    parse_packet,
    reassemble,
)


def test_geometry_matches_the_spec() -> None:
    assert (INIT_DATA_SIZE, CONT_DATA_SIZE, MAX_MESSAGE_SIZE) == (57, 59, 7609)


def test_init_packet_layout() -> None:
    report = encode_init(0x01020304, HidCommand.CBOR, 300, b"\xaa" * 57)
    assert len(report) == REPORT_SIZE
    assert report[:7] == bytes([1, 2, 3, 4, 0x90, 0x01, 0x2C])
    packet = parse_packet(report)
    assert packet == InitPacket(0x01020304, HidCommand.CBOR, 300, b"\xaa" * 57)


def test_init_packet_data_is_cut_to_bcnt() -> None:
    report = encode_init(7, HidCommand.PING, 3, b"abc")
    assert parse_packet(report) == InitPacket(7, HidCommand.PING, 3, b"abc")


def test_continuation_packet_layout() -> None:
    report = encode_continuation(0xCAFEBABE, 5, b"xyz")
    assert report[:5] == bytes.fromhex("cafebabe05")
    packet = parse_packet(report)
    assert isinstance(packet, ContinuationPacket)
    assert (packet.cid, packet.seq, packet.data[:3]) == (0xCAFEBABE, 5, b"xyz")
    assert len(packet.data) == CONT_DATA_SIZE


@pytest.mark.parametrize(
    ("length", "packets"),
    [(0, 1), (1, 1), (57, 1), (58, 2), (116, 2), (117, 3), (1827, 31), (1828, 32), (7609, 129)],
)
def test_packet_count(length: int, packets: int) -> None:
    assert packet_count(length) == packets
    assert len(fragment(1, HidCommand.PING, bytes(length))) == packets


def test_1827_bytes_fit_in_31_uhid_slots_plus_the_first() -> None:
    # NOTES: uhid holds 31 output reports; 57 + 30 * 59 = 1827 is the largest request that fits.
    assert packet_count(57 + 30 * 59) == 31


def test_oversized_message_is_refused() -> None:
    with pytest.raises(PacketError):
        fragment(1, HidCommand.PING, bytes(MAX_MESSAGE_SIZE + 1))


@pytest.mark.parametrize("bad_command", [-1, 0x80, 0x100])
def test_command_must_fit_in_seven_bits(bad_command: int) -> None:
    with pytest.raises(PacketError):
        encode_init(1, bad_command, 0, b"")


@pytest.mark.parametrize("seq", [-1, 0x80])
def test_sequence_must_fit_in_seven_bits(seq: int) -> None:
    with pytest.raises(PacketError):
        encode_continuation(1, seq, b"")


@pytest.mark.parametrize("length", [0, 1, 4])
def test_reports_too_short_for_a_header_are_rejected(length: int) -> None:
    with pytest.raises(PacketError):
        parse_packet(bytes(length))


def test_short_reports_are_zero_padded_and_long_ones_cut() -> None:
    assert normalize_report(b"\x00\x00\x00\x01\x81\x00\x01z") == (
        b"\x00\x00\x00\x01\x81\x00\x01z".ljust(64, b"\0")
    )
    assert normalize_report(bytes(range(70))) == bytes(range(64))


def test_reassemble_rejects_broken_sequences() -> None:
    reports = fragment(9, HidCommand.CBOR, bytes(200))
    with pytest.raises(PacketError):
        reassemble([reports[0], reports[2], reports[1], reports[3]])
    with pytest.raises(PacketError):
        reassemble(reports[:-1])
    with pytest.raises(PacketError):
        reassemble(reports[1:])
    with pytest.raises(PacketError):
        reassemble([])


@settings(deadline=None)
@given(
    cid=st.integers(0, 0xFFFFFFFF),
    command=st.integers(0, 0x7F),
    payload=st.binary(max_size=MAX_MESSAGE_SIZE),
)
def test_any_message_round_trips(cid: int, command: int, payload: bytes) -> None:
    reports = fragment(cid, command, payload)
    assert all(len(report) == REPORT_SIZE for report in reports)
    assert reassemble(reports) == (cid, command, payload)


@settings(deadline=None)
@given(st.binary(max_size=200))
def test_parse_never_fails_otherwise(report: bytes) -> None:
    try:
        packet = parse_packet(report)
    except PacketError:
        assert len(report) < 5
    else:
        assert isinstance(packet, InitPacket | ContinuationPacket)
