"""The ``struct uhid_event`` codec (linux/uhid.h): any buffer from /dev/uhid decodes to an
event or raises ``UhidEventError`` — truncated, oversized, unknown — and never anything else;
what we encode has the kernel's layout."""

from __future__ import annotations

import struct

import pytest
from fido2.hid.base import parse_report_descriptor
from hypothesis import given, settings
from hypothesis import strategies as st

from transports.uhid import events
from transports.uhid.events import (
    FIDO_REPORT_DESCRIPTOR,
    UHID_DATA_MAX,
    UHID_EVENT_SIZE,
    Close,
    GetReport,
    Open,
    Output,
    SetReport,
    Start,
    Stop,
    UhidEventError,
    UhidEventType,
    UhidReportType,
    ctaphid_packet,
    parse_event,
)

KERNEL_TO_DEVICE = [
    UhidEventType.START,
    UhidEventType.STOP,
    UhidEventType.OPEN,
    UhidEventType.CLOSE,
    UhidEventType.OUTPUT,
    UhidEventType.GET_REPORT,
    UhidEventType.SET_REPORT,
]


def output_event(data: bytes, rtype: int = UhidReportType.OUTPUT, size: int | None = None) -> bytes:
    body = data.ljust(UHID_DATA_MAX, b"\0") + struct.pack(
        "<HB", len(data) if size is None else size, rtype
    )
    return (struct.pack("<I", UhidEventType.OUTPUT) + body).ljust(UHID_EVENT_SIZE, b"\0")


def test_event_size_matches_the_kernel() -> None:
    assert UHID_EVENT_SIZE == 4376


def test_report_descriptor_is_a_fido_device_to_python_fido2() -> None:
    assert parse_report_descriptor(FIDO_REPORT_DESCRIPTOR) == (64, 64)
    assert FIDO_REPORT_DESCRIPTOR.hex(" ") == (
        "06 d0 f1 09 01 a1 01 09 20 15 00 26 ff 00 75 08 95 40 81 02 "
        "09 21 15 00 26 ff 00 75 08 95 40 91 02 c0"
    )


def test_create2_layout() -> None:
    event = events.create2(name="key", phys="p", uniq="u1", vendor=0x1209, product=0x0001)
    assert len(event) == UHID_EVENT_SIZE
    kind, name, phys, uniq, rd_size, bus, vendor, product, _, _ = struct.unpack_from(
        "<I128s64s64sHHIIII", event
    )
    assert kind == UhidEventType.CREATE2
    assert (name.rstrip(b"\0"), phys.rstrip(b"\0"), uniq.rstrip(b"\0")) == (b"key", b"p", b"u1")
    assert (rd_size, bus, vendor, product) == (len(FIDO_REPORT_DESCRIPTOR), 3, 0x1209, 1)
    offset = struct.calcsize("<I128s64s64sHHIIII")
    assert event[offset : offset + rd_size] == FIDO_REPORT_DESCRIPTOR


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "n" * 128), ("phys", "p" * 64), ("uniq", "u" * 64), ("name", "a\0b")],
)
def test_create2_refuses_strings_the_kernel_would_cut(field: str, value: str) -> None:
    strings = {"name": "ok", "phys": "", "uniq": "", field: value}
    with pytest.raises(ValueError, match=field):
        events.create2(
            name=strings["name"], phys=strings["phys"], uniq=strings["uniq"], vendor=1, product=2
        )


def test_input2_destroy_and_replies_layout() -> None:
    event = events.input2(b"\xaa" * 64)
    assert len(event) == UHID_EVENT_SIZE
    assert struct.unpack_from("<IH", event) == (UhidEventType.INPUT2, 64)
    assert event[6:70] == b"\xaa" * 64
    assert struct.unpack_from("<I", events.destroy()) == (UhidEventType.DESTROY,)
    assert struct.unpack_from("<IIHH", events.get_report_reply(7, 5)) == (10, 7, 5, 0)
    assert struct.unpack_from("<IIH", events.set_report_reply(8, 5)) == (14, 8, 5)
    with pytest.raises(ValueError, match="UHID_DATA_MAX"):
        events.input2(bytes(UHID_DATA_MAX + 1))


def test_decodes_every_kernel_event() -> None:
    def pad(raw: bytes) -> bytes:
        return raw.ljust(UHID_EVENT_SIZE, b"\0")

    assert parse_event(pad(struct.pack("<IQ", UhidEventType.START, 4))) == Start(4)
    assert parse_event(pad(struct.pack("<I", UhidEventType.STOP))) == Stop()
    assert parse_event(pad(struct.pack("<I", UhidEventType.OPEN))) == Open()
    assert parse_event(pad(struct.pack("<I", UhidEventType.CLOSE))) == Close()
    packet = bytes(range(64))
    assert parse_event(output_event(b"\0" + packet)) == Output(
        b"\0" + packet, UhidReportType.OUTPUT
    )
    assert parse_event(pad(struct.pack("<IIBB", UhidEventType.GET_REPORT, 9, 0, 0))) == GetReport(
        9, 0, UhidReportType.FEATURE
    )
    set_report = struct.pack("<IIBBH", UhidEventType.SET_REPORT, 3, 1, 0, 2) + b"hi"
    assert parse_event(pad(set_report)) == SetReport(3, 1, UhidReportType.FEATURE, b"hi")


def test_ctaphid_packet_strips_the_report_id() -> None:
    packet = bytes(range(1, 65))
    assert ctaphid_packet(Output(b"\0" + packet, UhidReportType.OUTPUT)) == packet
    assert ctaphid_packet(Output(packet, UhidReportType.OUTPUT)) == packet
    assert ctaphid_packet(Output(b"\x01" + packet, UhidReportType.OUTPUT)) is None
    assert ctaphid_packet(Output(packet[:10], UhidReportType.OUTPUT)) is None
    assert ctaphid_packet(Output(b"\0" + packet, UhidReportType.FEATURE)) is None


@pytest.mark.parametrize(
    ("buffer", "message"),
    [
        (b"", "truncated event"),
        (b"\x02\x00", "truncated event"),
        (struct.pack("<I", 99), "unknown event type 99"),
        (
            struct.pack("<I", UhidEventType.INPUT2).ljust(UHID_EVENT_SIZE, b"\0"),
            "not sent by the kernel",
        ),
        (struct.pack("<I", UhidEventType.START), "truncated START"),
        (output_event(b"x")[:100], "truncated OUTPUT"),
        (output_event(b"x", size=UHID_DATA_MAX + 1), "exceeds"),
        (output_event(b"x", rtype=7), "unknown report type 7"),
        (bytes(UHID_EVENT_SIZE + 1), "oversized"),
    ],
)
def test_malformed_events_are_clear_errors(buffer: bytes, message: str) -> None:
    with pytest.raises(UhidEventError, match=message):
        parse_event(buffer)


@settings(deadline=None)
@given(st.binary(max_size=UHID_EVENT_SIZE + 64))
def test_arbitrary_buffers_decode_or_raise_uhid_event_error(buffer: bytes) -> None:
    try:
        event = parse_event(buffer)
    except UhidEventError:
        return
    assert isinstance(event, Start | Stop | Open | Close | Output | GetReport | SetReport)


@settings(deadline=None)
@given(
    kind=st.sampled_from(KERNEL_TO_DEVICE),
    body=st.binary(max_size=64),
    length=st.integers(0, UHID_EVENT_SIZE + 16),
    tail=st.binary(min_size=7, max_size=7),
)
def test_every_kernel_event_type_at_every_length(
    kind: UhidEventType, body: bytes, length: int, tail: bytes
) -> None:
    buffer = (struct.pack("<I", kind) + body).ljust(4 + UHID_DATA_MAX, b"\0") + tail
    buffer = buffer.ljust(UHID_EVENT_SIZE, b"\0")[:length]
    try:
        event = parse_event(buffer)
    except UhidEventError as error:
        message = str(error)
        assert message, "errors explain themselves"
        return
    if isinstance(event, Output):
        assert len(event.data) <= UHID_DATA_MAX
