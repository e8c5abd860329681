"""CTAPHID wire values: command bytes, error codes, keepalive statuses, capability flags and
packet geometry (CTAP 2.1 §11.2). The single place these numbers live; everything else in
``transports`` names them through these enums.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import Final


class HidCommand(IntEnum):
    """CTAPHID command codes (CTAP 2.1 §11.2.9), without the initialization-packet bit 0x80."""

    PING = 0x01
    MSG = 0x03
    LOCK = 0x04
    INIT = 0x06
    WINK = 0x08
    CBOR = 0x10
    CANCEL = 0x11
    KEEPALIVE = 0x3B
    ERROR = 0x3F


VENDOR_COMMAND_FIRST: Final = 0x40
VENDOR_COMMAND_LAST: Final = 0x7F


class HidError(IntEnum):
    """CTAPHID_ERROR codes (CTAP 2.1 §11.2.9.1.6)."""

    INVALID_CMD = 0x01
    INVALID_PAR = 0x02
    INVALID_LEN = 0x03
    INVALID_SEQ = 0x04
    MSG_TIMEOUT = 0x05
    CHANNEL_BUSY = 0x06
    LOCK_REQUIRED = 0x0A
    INVALID_CHANNEL = 0x0B
    OTHER = 0x7F


class KeepaliveStatus(IntEnum):
    """CTAPHID_KEEPALIVE status byte (CTAP 2.1 §11.2.9.2.1)."""

    PROCESSING = 0x01
    UP_NEEDED = 0x02


class Capability(IntFlag):
    """CTAPHID_INIT capability flags (CTAP 2.1 §11.2.9.1.3)."""

    WINK = 0x01
    CBOR = 0x04
    NMSG = 0x08  # the device does *not* implement CTAPHID_MSG


REPORT_SIZE: Final = 64
"""HID report size of a full-speed FIDO device; every CTAPHID packet is exactly this long."""
INIT_HEADER_SIZE: Final = 7  # CID(4) CMD(1) BCNTH(1) BCNTL(1)
CONT_HEADER_SIZE: Final = 5  # CID(4) SEQ(1)
INIT_DATA_SIZE: Final = REPORT_SIZE - INIT_HEADER_SIZE  # 57
CONT_DATA_SIZE: Final = REPORT_SIZE - CONT_HEADER_SIZE  # 59
MAX_SEQ: Final = 0x7F
MAX_MESSAGE_SIZE: Final = INIT_DATA_SIZE + (MAX_SEQ + 1) * CONT_DATA_SIZE
"""7609 bytes: one initialization packet and 128 continuation packets."""
INIT_FLAG: Final = 0x80
"""Bit 7 of byte 4: set in an initialization packet's CMD, clear in a continuation's SEQ."""

BROADCAST_CID: Final = 0xFFFFFFFF
RESERVED_CID: Final = 0x00000000
INIT_NONCE_SIZE: Final = 8
PROTOCOL_VERSION: Final = 2
"""CTAPHID protocol version reported by CTAPHID_INIT."""
MAX_LOCK_SECONDS: Final = 10
"""CTAP 2.1 §11.2.9.2.3: CTAPHID_LOCK holds for at most 10 seconds."""

DEFAULT_TRANSACTION_TIMEOUT: Final = 0.5
"""Seconds a partly received message may wait for its next continuation packet before the
device answers ERR_MSG_TIMEOUT (CTAP 2.1 §11.2.6 leaves the value to the device; 500 ms is what
open-source keys use, and it is long enough for a client running under qemu TCG)."""
KEEPALIVE_INTERVAL: Final = 0.1
"""CTAP 2.1 §11.2.9.2.1: keepalives at least every 100 ms while a request is processed."""
