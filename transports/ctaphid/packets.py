"""The CTAPHID packet codec (CTAP 2.1 §11.2.4): 64-byte reports to typed packets and messages
to packets. Pure functions and frozen records; no state, no I/O.

An initialization packet is ``CID(4, big-endian) · CMD|0x80 · BCNT(2, big-endian) · data(57)``;
a continuation packet is ``CID · SEQ(0..127) · data(59)``. Unused trailing bytes are zero.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from transports.ctaphid.constants import (
    CONT_DATA_SIZE,
    CONT_HEADER_SIZE,
    INIT_DATA_SIZE,
    INIT_FLAG,
    INIT_HEADER_SIZE,
    MAX_MESSAGE_SIZE,
    MAX_SEQ,
    REPORT_SIZE,
)

_INIT_HEADER: Final = struct.Struct(">IBH")
_CONT_HEADER: Final = struct.Struct(">IB")


class PacketError(ValueError):
    """A report that cannot be a CTAPHID packet, or a message that cannot be framed."""


@dataclass(frozen=True, slots=True)
class InitPacket:
    """The first packet of a message: ``length`` is the whole message's size (BCNT)."""

    cid: int
    command: int  # 7-bit command code; may be one we do not know
    length: int
    data: bytes  # this packet's share of the message (at most 57 bytes, at most ``length``)


@dataclass(frozen=True, slots=True)
class ContinuationPacket:
    cid: int
    seq: int
    data: bytes  # all 59 payload bytes; the receiver knows how many are meaningful


Packet = InitPacket | ContinuationPacket


def normalize_report(report: bytes) -> bytes:
    """A report as exactly 64 bytes: short ones zero-padded (as a USB short packet would be
    read), bytes beyond 64 ignored. Reports too short to carry a continuation header are
    rejected, since their channel cannot be known."""
    if len(report) < CONT_HEADER_SIZE:
        raise PacketError(f"report of {len(report)} bytes is too short for a CTAPHID header")
    if len(report) == REPORT_SIZE:
        return bytes(report)
    return bytes(report[:REPORT_SIZE]).ljust(REPORT_SIZE, b"\0")


def parse_packet(report: bytes) -> Packet:
    """Decode one report; see ``normalize_report`` for reports that are not 64 bytes long."""
    report = normalize_report(report)
    if report[4] & INIT_FLAG:
        cid, command_byte, length = _INIT_HEADER.unpack_from(report)
        data = report[INIT_HEADER_SIZE : INIT_HEADER_SIZE + min(length, INIT_DATA_SIZE)]
        return InitPacket(cid, command_byte & ~INIT_FLAG, length, data)
    cid, seq = _CONT_HEADER.unpack_from(report)
    return ContinuationPacket(cid, seq, report[CONT_HEADER_SIZE:])


def encode_init(cid: int, command: int, length: int, data: bytes) -> bytes:
    if not 0 <= command <= 0x7F:
        raise PacketError(f"command 0x{command:x} does not fit in 7 bits")
    if len(data) > INIT_DATA_SIZE or not 0 <= length <= 0xFFFF:
        raise PacketError("initialization packet data too long")
    header = _INIT_HEADER.pack(cid, command | INIT_FLAG, length)
    return (header + data).ljust(REPORT_SIZE, b"\0")


def encode_continuation(cid: int, seq: int, data: bytes) -> bytes:
    if not 0 <= seq <= MAX_SEQ:
        raise PacketError(f"sequence number {seq} out of range")
    if len(data) > CONT_DATA_SIZE:
        raise PacketError("continuation packet data too long")
    return (_CONT_HEADER.pack(cid, seq) + data).ljust(REPORT_SIZE, b"\0")


def packet_count(length: int) -> int:
    """How many packets a message of ``length`` bytes takes."""
    if length <= INIT_DATA_SIZE:
        return 1
    return 1 + -(-(length - INIT_DATA_SIZE) // CONT_DATA_SIZE)


def fragment(cid: int, command: int, payload: bytes) -> list[bytes]:
    """Split one message into 64-byte reports (initialization packet first)."""
    if len(payload) > MAX_MESSAGE_SIZE:
        raise PacketError(f"message of {len(payload)} bytes exceeds {MAX_MESSAGE_SIZE}")
    reports = [encode_init(cid, command, len(payload), payload[:INIT_DATA_SIZE])]
    offset = INIT_DATA_SIZE
    seq = 0
    while offset < len(payload):
        reports.append(encode_continuation(cid, seq, payload[offset : offset + CONT_DATA_SIZE]))
        offset += CONT_DATA_SIZE
        seq += 1
    return reports


def reassemble(reports: list[bytes]) -> tuple[int, int, bytes]:
    """The inverse of ``fragment`` for one well-formed message: ``(cid, command, payload)``.

    For tests and clients; the device side reassembles incrementally in ``CtapHidFramer``.
    """
    if not reports:
        raise PacketError("no packets")
    first = parse_packet(reports[0])
    if not isinstance(first, InitPacket):
        raise PacketError("a message starts with an initialization packet")
    payload = bytearray(first.data)
    for expected_seq, report in enumerate(reports[1:]):
        packet = parse_packet(report)
        if not isinstance(packet, ContinuationPacket) or packet.cid != first.cid:
            raise PacketError("continuation packet expected on the same channel")
        if packet.seq != expected_seq:
            raise PacketError(f"sequence {packet.seq}, expected {expected_seq}")
        payload += packet.data[: first.length - len(payload)]
    if len(payload) != first.length:
        raise PacketError(f"message truncated: {len(payload)} of {first.length} bytes")
    return first.cid, first.command, bytes(payload)
