"""CTAPHID, the FIDO USB HID protocol (CTAP 2.1 §11.2), as pure code: the wire values
(``constants``), the packet codec (``packets``), the device-side state machine
(``framer.CtapHidFramer``) and its pairing with the authenticator core
(``session.CtapHidSession``). Transports that own a real HID endpoint drive these."""

from __future__ import annotations

from transports.ctaphid.constants import (
    BROADCAST_CID,
    MAX_MESSAGE_SIZE,
    REPORT_SIZE,
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
from transports.ctaphid.session import (
    AskPresence,
    CtapHidSession,
    SessionAction,
    StopAsking,
    Winked,
    framer_settings,
)

__all__ = [
    "BROADCAST_CID",
    "MAX_MESSAGE_SIZE",
    "REPORT_SIZE",
    "Abort",
    "AskPresence",
    "Cancel",
    "Capability",
    "ChannelAllocated",
    "CtapHidFramer",
    "CtapHidSession",
    "ErrorSent",
    "FramerSettings",
    "HidCommand",
    "HidError",
    "HidEvent",
    "KeepaliveStatus",
    "Request",
    "SessionAction",
    "StopAsking",
    "Wink",
    "Winked",
    "framer_settings",
]
