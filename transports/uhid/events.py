"""Pure codec for the kernel's ``struct uhid_event`` (include/uapi/linux/uhid.h) and the FIDO
HID report descriptor (CTAP 2.1 §11.2.8.1). No I/O: ``transports.uhid.device`` owns the fd.

``struct uhid_event`` is ``__u32 type`` followed by a packed union whose largest member,
``uhid_create2_req``, makes the whole struct 4376 bytes; every write is padded to that size and
every read returns one event. All fields are little-endian (x86 and every platform Debian
ships uhid on). Events from the kernel are decoded into frozen records; anything truncated,
oversized, unknown or inconsistent raises ``UhidEventError`` and nothing else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

UHID_DATA_MAX: Final = 4096
HID_MAX_DESCRIPTOR_SIZE: Final = 4096
UHID_EVENT_SIZE: Final = 4 + 128 + 64 + 64 + 2 + 2 + 4 + 4 + 4 + 4 + HID_MAX_DESCRIPTOR_SIZE
"""4376: ``type`` plus ``uhid_create2_req``, the union's largest member."""
NAME_SIZE: Final = 128
PHYS_SIZE: Final = 64
UNIQ_SIZE: Final = 64
BUS_USB: Final = 0x03


class UhidEventType(IntEnum):
    DESTROY = 1
    START = 2
    STOP = 3
    OPEN = 4
    CLOSE = 5
    OUTPUT = 6
    GET_REPORT = 9
    GET_REPORT_REPLY = 10
    CREATE2 = 11
    INPUT2 = 12
    SET_REPORT = 13
    SET_REPORT_REPLY = 14


class UhidReportType(IntEnum):
    FEATURE = 0
    OUTPUT = 1
    INPUT = 2


class UhidEventError(ValueError):
    """A buffer from /dev/uhid that is not a well-formed kernel-to-device event."""


_TYPE: Final = struct.Struct("<I")
_CREATE2: Final = struct.Struct(f"<I{NAME_SIZE}s{PHYS_SIZE}s{UNIQ_SIZE}sHHIIII")
_START: Final = struct.Struct("<Q")
_OUTPUT_TAIL: Final = struct.Struct("<HB")  # size, rtype after data[4096]
_GET_REPORT: Final = struct.Struct("<IBB")  # id, rnum, rtype
_SET_REPORT: Final = struct.Struct("<IBBH")  # id, rnum, rtype, size; then data[4096]
_INPUT2: Final = struct.Struct("<IH")
_GET_REPORT_REPLY: Final = struct.Struct("<IIHH")
_SET_REPORT_REPLY: Final = struct.Struct("<IIH")


# -- the FIDO report descriptor -----------------------------------------------------------------


def _short_item(prefix: int, *data: int) -> bytes:
    """A HID short item (HID 1.11 §6.2.2.2): prefix with the size bits set for ``data``."""
    size_code = {0: 0, 1: 1, 2: 2, 4: 3}[len(data)]
    return bytes([prefix | size_code, *data])


def _report(usage: int, main_item: int) -> bytes:
    """64 bytes of 0..255, one usage, as an Input (0x80) or Output (0x90) main item."""
    return b"".join(
        [
            _short_item(0x08, usage),  # Usage
            _short_item(0x14, 0x00),  # Logical Minimum (0)
            _short_item(0x24, 0xFF, 0x00),  # Logical Maximum (255)
            _short_item(0x74, 8),  # Report Size (8 bits)
            _short_item(0x94, 64),  # Report Count (64)
            _short_item(main_item, 0x02),  # Data, Variable, Absolute
        ]
    )


FIDO_USAGE_PAGE: Final = 0xF1D0
FIDO_USAGE_CTAPHID: Final = 0x01
FIDO_USAGE_DATA_IN: Final = 0x20
FIDO_USAGE_DATA_OUT: Final = 0x21

FIDO_REPORT_DESCRIPTOR: Final = b"".join(
    [
        _short_item(0x04, FIDO_USAGE_PAGE & 0xFF, FIDO_USAGE_PAGE >> 8),  # Usage Page (FIDO)
        _short_item(0x08, FIDO_USAGE_CTAPHID),  # Usage (CTAPHID)
        _short_item(0xA0, 0x01),  # Collection (Application)
        _report(FIDO_USAGE_DATA_IN, 0x80),  # Input: 64 bytes
        _report(FIDO_USAGE_DATA_OUT, 0x90),  # Output: 64 bytes
        _short_item(0xC0),  # End Collection
    ]
)
"""CTAP 2.1 §11.2.8.1: usage page 0xF1D0, usage 0x01, 64-byte input and output reports and no
report IDs (so hidraw writes carry a leading 0x00 that arrives in ``Output.data``)."""


# -- device-to-kernel events (encoders) ---------------------------------------------------------


def _c_string(value: str, size: int, what: str) -> bytes:
    encoded = value.encode()
    if b"\0" in encoded or len(encoded) >= size:
        raise ValueError(f"{what} must be at most {size - 1} bytes of UTF-8 without NUL")
    return encoded


def _pad(event: bytes) -> bytes:
    return event.ljust(UHID_EVENT_SIZE, b"\0")


def create2(
    *,
    name: str,
    phys: str = "",
    uniq: str = "",
    vendor: int,
    product: int,
    version: int = 0,
    country: int = 0,
    descriptor: bytes = FIDO_REPORT_DESCRIPTOR,
    bus: int = BUS_USB,
) -> bytes:
    """UHID_CREATE2: create the HID device (the kernel answers with UHID_START)."""
    if not 0 < len(descriptor) <= HID_MAX_DESCRIPTOR_SIZE:
        raise ValueError("report descriptor must be 1..4096 bytes")
    head = _CREATE2.pack(
        UhidEventType.CREATE2,
        _c_string(name, NAME_SIZE, "name"),
        _c_string(phys, PHYS_SIZE, "phys"),
        _c_string(uniq, UNIQ_SIZE, "uniq"),
        len(descriptor),
        bus,
        vendor,
        product,
        version,
        country,
    )
    return _pad(head + descriptor)


def input2(report: bytes) -> bytes:
    """UHID_INPUT2: one input report (a CTAPHID packet) towards the host."""
    if len(report) > UHID_DATA_MAX:
        raise ValueError("input report longer than UHID_DATA_MAX")
    return _pad(_TYPE.pack(UhidEventType.INPUT2) + struct.pack("<H", len(report)) + report)


def destroy() -> bytes:
    return _pad(_TYPE.pack(UhidEventType.DESTROY))


def get_report_reply(request_id: int, err: int, data: bytes = b"") -> bytes:
    if len(data) > UHID_DATA_MAX:
        raise ValueError("report longer than UHID_DATA_MAX")
    head = _GET_REPORT_REPLY.pack(UhidEventType.GET_REPORT_REPLY, request_id, err, len(data))
    return _pad(head + data)


def set_report_reply(request_id: int, err: int) -> bytes:
    return _pad(_SET_REPORT_REPLY.pack(UhidEventType.SET_REPORT_REPLY, request_id, err))


# -- kernel-to-device events (decoder) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    dev_flags: int


@dataclass(frozen=True, slots=True)
class Stop:
    pass


@dataclass(frozen=True, slots=True)
class Open:
    """The first reader opened the hidraw node."""


@dataclass(frozen=True, slots=True)
class Close:
    """The last reader closed the hidraw node."""


@dataclass(frozen=True, slots=True)
class Output:
    """An output report from the host. Without report IDs, ``data`` starts with 0x00."""

    data: bytes = field(repr=False)
    report_type: UhidReportType


@dataclass(frozen=True, slots=True)
class GetReport:
    request_id: int
    report_number: int
    report_type: UhidReportType


@dataclass(frozen=True, slots=True)
class SetReport:
    request_id: int
    report_number: int
    report_type: UhidReportType
    data: bytes = field(repr=False)


UhidEvent = Start | Stop | Open | Close | Output | GetReport | SetReport

_OUTPUT_SIZE: Final = 4 + UHID_DATA_MAX + _OUTPUT_TAIL.size  # 4103
_MINIMUM_SIZE: Final = {
    UhidEventType.START: 4 + _START.size,
    UhidEventType.STOP: 4,
    UhidEventType.OPEN: 4,
    UhidEventType.CLOSE: 4,
    UhidEventType.OUTPUT: _OUTPUT_SIZE,
    UhidEventType.GET_REPORT: 4 + _GET_REPORT.size,
    UhidEventType.SET_REPORT: 4 + _SET_REPORT.size + UHID_DATA_MAX,
}


def _report_type(value: int) -> UhidReportType:
    try:
        return UhidReportType(value)
    except ValueError:
        raise UhidEventError(f"unknown report type {value}") from None


def parse_event(buffer: bytes) -> UhidEvent:
    """Decode one event read from /dev/uhid."""
    if len(buffer) < _TYPE.size:
        raise UhidEventError(f"truncated event: {len(buffer)} bytes, no type")
    if len(buffer) > UHID_EVENT_SIZE:
        raise UhidEventError(f"oversized event: {len(buffer)} bytes > {UHID_EVENT_SIZE}")
    (raw_type,) = _TYPE.unpack_from(buffer)
    try:
        event_type = UhidEventType(raw_type)
    except ValueError:
        raise UhidEventError(f"unknown event type {raw_type}") from None
    minimum = _MINIMUM_SIZE.get(event_type)
    if minimum is None:
        raise UhidEventError(f"{event_type.name} is not sent by the kernel to a device")
    if len(buffer) < minimum:
        raise UhidEventError(
            f"truncated {event_type.name} event: {len(buffer)} bytes, need {minimum}"
        )
    match event_type:
        case UhidEventType.START:
            return Start(_START.unpack_from(buffer, 4)[0])
        case UhidEventType.STOP:
            return Stop()
        case UhidEventType.OPEN:
            return Open()
        case UhidEventType.CLOSE:
            return Close()
        case UhidEventType.OUTPUT:
            size, rtype = _OUTPUT_TAIL.unpack_from(buffer, 4 + UHID_DATA_MAX)
            if size > UHID_DATA_MAX:
                raise UhidEventError(f"OUTPUT size {size} exceeds {UHID_DATA_MAX}")
            return Output(bytes(buffer[4 : 4 + size]), _report_type(rtype))
        case UhidEventType.GET_REPORT:
            request_id, number, rtype = _GET_REPORT.unpack_from(buffer, 4)
            return GetReport(request_id, number, _report_type(rtype))
        case _:  # SET_REPORT: the only type left with a minimum size
            request_id, number, rtype, size = _SET_REPORT.unpack_from(buffer, 4)
            if size > UHID_DATA_MAX:
                raise UhidEventError(f"SET_REPORT size {size} exceeds {UHID_DATA_MAX}")
            offset = 4 + _SET_REPORT.size
            return SetReport(
                request_id, number, _report_type(rtype), bytes(buffer[offset : offset + size])
            )


def ctaphid_packet(output: Output) -> bytes | None:
    """The 64-byte CTAPHID packet in an output report, or None if it is not one.

    hidraw prefixes the report ID (0x00 for a descriptor without IDs): clients write 65 bytes.
    Some write 64 (no prefix); both arrive here and are told apart by length.
    """
    if output.report_type is not UhidReportType.OUTPUT:
        return None
    data = output.data
    if len(data) == 65 and data[0] == 0:
        return data[1:]
    if len(data) == 64:
        return data
    return None
