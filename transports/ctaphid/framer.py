"""``CtapHidFramer``: the sans-IO CTAPHID state machine of a device (CTAP 2.1 §11.2).

Theory of operation
-------------------
Inputs are 64-byte output reports from the host (``receive_packet``), the passage of time
(``tick``, reading an injected ``Clock``) and the transport's answers to requests (``respond``,
``keepalive``, ``fail``). Outputs are 64-byte input reports to send, in order
(``packets_to_send``), and events (``HidEvent``) for the transport. Nothing here blocks, sleeps,
reads a file or raises on input: bad input becomes a CTAPHID_ERROR packet on the offending
channel, or is ignored where the spec says so.

The device has at most one *transaction* at a time (§11.2.4: "busy"), in one of two states:

* **assembling** — an initialization packet arrived on channel C announcing BCNT bytes;
  continuation packets on C with SEQ 0, 1, 2, ... follow. A wrong SEQ answers ERR_INVALID_SEQ;
  no packet for ``transaction_timeout`` seconds answers ERR_MSG_TIMEOUT (§11.2.6); another
  initialization packet on C answers ERR_INVALID_SEQ, except INIT (resynchronises C) and
  CANCEL (drops the half-sent request silently). Either way the transaction ends.
* **processing** — a complete CTAPHID_CBOR or CTAPHID_MSG request was handed to the transport
  as a ``Request`` event; the framer waits for ``respond``/``fail`` and relays ``keepalive``.
  CTAPHID_CANCEL on C becomes a ``Cancel`` event (the transport answers the request,
  typically with CTAP2_ERR_KEEPALIVE_CANCEL; CANCEL itself is never answered, §11.2.9.1.5);
  CTAPHID_INIT on C aborts the request (an ``Abort`` event; a late ``respond`` is dropped).

PING, WINK, LOCK and INIT are answered by the framer itself and never make the device busy
beyond their own reassembly. While a transaction runs, any other channel's request answers
ERR_CHANNEL_BUSY, but CTAPHID_INIT is always served, so a new client can allocate a channel
while another waits for a touch. CTAPHID_LOCK (§11.2.9.2.3) reserves the device for one
channel for up to 10 s: other channels get ERR_CHANNEL_BUSY meanwhile.

Channels are allocated by CTAPHID_INIT on the broadcast channel, counting up from 1; the
framer remembers the most recent ``max_channels`` of them, and any other non-broadcast channel
answers ERR_INVALID_CHANNEL. Continuation packets that belong to no transaction are ignored
(§11.2.4: spurious continuation packets).

Where the spec leaves a choice: a command the device does not know or does not offer answers
ERR_INVALID_CMD as soon as its initialization packet arrives (before ERR_INVALID_LEN); an empty
CTAPHID_CBOR request answers ERR_INVALID_LEN; ERR_LOCK_REQUIRED is answered for commands listed
in ``FramerSettings.lock_required`` (none by default: no standard command needs a lock);
ERR_OTHER is what ``fail`` sends for a transport-side failure, and what a bug in this module
turns into instead of an exception.
"""

from __future__ import annotations

import logging
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from authenticator.clock import Clock, SystemClock
from transports.ctaphid.constants import (
    BROADCAST_CID,
    DEFAULT_TRANSACTION_TIMEOUT,
    INIT_NONCE_SIZE,
    MAX_LOCK_SECONDS,
    MAX_MESSAGE_SIZE,
    PROTOCOL_VERSION,
    RESERVED_CID,
    Capability,
    HidCommand,
    HidError,
    KeepaliveStatus,
)
from transports.ctaphid.packets import (
    ContinuationPacket,
    InitPacket,
    PacketError,
    encode_init,
    fragment,
    parse_packet,
)

log = logging.getLogger("fidoemu.ctaphid")

_FIRST_CID: Final = 1
_INIT_RESPONSE: Final = struct.Struct(">8sIBBBBB")


@dataclass(frozen=True, slots=True)
class FramerSettings:
    """What the CTAPHID layer of the device is; fixed for the device's lifetime."""

    capabilities: Capability = Capability.WINK | Capability.CBOR
    device_version: tuple[int, int, int] = (0, 1, 0)  # major, minor, build (CTAPHID_INIT)
    transaction_timeout: float = DEFAULT_TRANSACTION_TIMEOUT
    max_message_size: int = MAX_MESSAGE_SIZE
    max_channels: int = 256
    lock_required: frozenset[HidCommand] = frozenset()


# -- events -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """A complete CTAPHID_CBOR or CTAPHID_MSG message; answer it with ``respond`` or ``fail``."""

    cid: int
    command: HidCommand
    payload: bytes = field(repr=False)  # may carry PIN material: never in a repr or a log
    transaction: int


@dataclass(frozen=True, slots=True)
class Cancel:
    """CTAPHID_CANCEL for the request being processed; it still needs an answer."""

    request: Request


@dataclass(frozen=True, slots=True)
class Abort:
    """The request's channel was resynchronised (or its client went away): answer nothing."""

    request: Request


@dataclass(frozen=True, slots=True)
class Wink:
    cid: int


@dataclass(frozen=True, slots=True)
class ChannelAllocated:
    cid: int


@dataclass(frozen=True, slots=True)
class ErrorSent:
    cid: int
    error: HidError


HidEvent = Request | Cancel | Abort | Wink | ChannelAllocated | ErrorSent


# -- transaction states -----------------------------------------------------------------------


@dataclass(slots=True)
class _Assembling:
    cid: int
    command: HidCommand
    length: int
    buffer: bytearray
    next_seq: int
    deadline: float


@dataclass(slots=True)
class _Processing:
    request: Request

    @property
    def cid(self) -> int:
        return self.request.cid


@dataclass(slots=True)
class _Lock:
    cid: int
    until: float


class CtapHidFramer:
    """One device's CTAPHID layer. See the module docstring for the theory of operation."""

    def __init__(self, settings: FramerSettings | None = None, clock: Clock | None = None) -> None:
        self.settings = settings if settings is not None else FramerSettings()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._channels: OrderedDict[int, None] = OrderedDict()
        self._next_cid = _FIRST_CID
        self._transaction: _Assembling | _Processing | None = None
        self._lock: _Lock | None = None
        self._outbox: list[bytes] = []
        self._serial = 0
        self.ignored_reports = 0  # too short for a header, or spurious continuations

    # -- inputs -------------------------------------------------------------------------------

    def receive_packet(self, report: bytes) -> list[HidEvent]:
        """Take one output report from the host; never raises."""
        events = self.tick()
        try:
            packet = parse_packet(report)
            if isinstance(packet, InitPacket):
                events += self._on_init_packet(packet)
            else:
                events += self._on_continuation(packet)
        except PacketError:
            self.ignored_reports += 1  # no channel to answer on
        except Exception:  # a bug here must not take the device down
            log.exception("CTAPHID framer failure; answering ERR_OTHER")
            events += self._fail_current(HidError.OTHER)
        return events

    def tick(self) -> list[HidEvent]:
        """Apply timeouts: an incomplete message answers ERR_MSG_TIMEOUT; a lock expires."""
        now = self.clock.now()
        events: list[HidEvent] = []
        transaction = self._transaction
        if isinstance(transaction, _Assembling) and now >= transaction.deadline:
            self._transaction = None
            events.append(self._error(transaction.cid, HidError.MSG_TIMEOUT))
        if self._lock is not None and now >= self._lock.until:
            self._lock = None
        return events

    def respond(self, request: Request, payload: bytes) -> bool:
        """Send the response to ``request``; False (and nothing sent) if it was aborted."""
        if not self._is_current(request):
            return False
        self._transaction = None
        try:
            self._outbox += fragment(request.cid, request.command, payload)
        except PacketError:
            log.error("response of %d bytes does not fit in a CTAPHID message", len(payload))
            self._error(request.cid, HidError.OTHER)
        return True

    def keepalive(self, request: Request, status: KeepaliveStatus) -> bool:
        if not self._is_current(request):
            return False
        self._outbox.append(encode_init(request.cid, HidCommand.KEEPALIVE, 1, bytes([status])))
        return True

    def fail(self, request: Request, error: HidError = HidError.OTHER) -> bool:
        """Answer ``request`` with CTAPHID_ERROR instead of a response."""
        if not self._is_current(request):
            return False
        self._transaction = None
        self._error(request.cid, error)
        return True

    def disconnect(self) -> list[HidEvent]:
        """Every client went away (the last hidraw reader closed): drop the transaction and lock.

        Allocated channels stay valid: a client keeps its channel across reopening the device.
        """
        events: list[HidEvent] = []
        if isinstance(self._transaction, _Processing):
            events.append(Abort(self._transaction.request))
        self._transaction = None
        self._lock = None
        return events

    # -- outputs and queries ------------------------------------------------------------------

    def packets_to_send(self) -> list[bytes]:
        """Input reports to send to the host, oldest first; the queue is emptied."""
        packets, self._outbox = self._outbox, []
        return packets

    @property
    def busy(self) -> bool:
        return self._transaction is not None

    @property
    def current_request(self) -> Request | None:
        transaction = self._transaction
        return transaction.request if isinstance(transaction, _Processing) else None

    def next_deadline(self) -> float | None:
        """The clock time at which ``tick`` next has something to do, if any."""
        deadlines = []
        if isinstance(self._transaction, _Assembling):
            deadlines.append(self._transaction.deadline)
        if self._lock is not None:
            deadlines.append(self._lock.until)
        return min(deadlines) if deadlines else None

    # -- initialization packets ---------------------------------------------------------------

    def _on_init_packet(self, packet: InitPacket) -> list[HidEvent]:
        cid = packet.cid
        if packet.command == HidCommand.INIT:
            return self._init(packet)
        if cid in (BROADCAST_CID, RESERVED_CID) or cid not in self._channels:
            return [self._error(cid, HidError.INVALID_CHANNEL)]
        self._channels.move_to_end(cid)
        cancel = packet.command == HidCommand.CANCEL
        transaction = self._transaction
        if transaction is not None:
            if transaction.cid != cid:
                return [] if cancel else [self._error(cid, HidError.CHANNEL_BUSY)]
            if isinstance(transaction, _Processing):
                request = transaction.request
                if cancel:
                    return [Cancel(request)] if request.command == HidCommand.CBOR else []
                return [self._error(cid, HidError.CHANNEL_BUSY)]
            self._transaction = None  # a new initialization packet mid-message ends it
            return [] if cancel else [self._error(cid, HidError.INVALID_SEQ)]
        if cancel:
            return []  # nothing to cancel; CANCEL is never answered
        if self._lock is not None and self._lock.cid != cid:
            return [self._error(cid, HidError.CHANNEL_BUSY)]
        command = self._offered_command(packet.command)
        if command is None:
            return [self._error(cid, HidError.INVALID_CMD)]
        if command in self.settings.lock_required and (self._lock is None or self._lock.cid != cid):
            return [self._error(cid, HidError.LOCK_REQUIRED)]
        if packet.length > self.settings.max_message_size:
            return [self._error(cid, HidError.INVALID_LEN)]
        if packet.length <= len(packet.data):
            return self._complete(cid, command, packet.data)
        self._transaction = _Assembling(
            cid=cid,
            command=command,
            length=packet.length,
            buffer=bytearray(packet.data),
            next_seq=0,
            deadline=self.clock.now() + self.settings.transaction_timeout,
        )
        return []

    def _offered_command(self, code: int) -> HidCommand | None:
        """The command, if this device implements it (INIT and CANCEL are handled earlier)."""
        try:
            command = HidCommand(code)
        except ValueError:
            return None  # vendor range 0x40..0x7F included: we define no vendor commands
        caps = self.settings.capabilities
        offered = {
            HidCommand.PING: True,
            HidCommand.LOCK: True,
            HidCommand.WINK: Capability.WINK in caps,
            HidCommand.CBOR: Capability.CBOR in caps,
            HidCommand.MSG: Capability.NMSG not in caps,
        }
        return command if offered.get(command, False) else None

    def _init(self, packet: InitPacket) -> list[HidEvent]:
        """CTAPHID_INIT (§11.2.9.1.3): allocate a channel, or resynchronise one."""
        cid = packet.cid
        if cid != BROADCAST_CID and cid not in self._channels:  # RESERVED_CID never is
            return [self._error(cid, HidError.INVALID_CHANNEL)]
        if packet.length != INIT_NONCE_SIZE:
            return [self._error(cid, HidError.INVALID_LEN)]
        events: list[HidEvent] = []
        if cid == BROADCAST_CID:
            new_cid = self._allocate()
            events.append(ChannelAllocated(new_cid))
        else:
            new_cid = cid
            self._channels.move_to_end(cid)
            transaction = self._transaction
            if transaction is not None and transaction.cid == cid:
                self._transaction = None
                if isinstance(transaction, _Processing):
                    events.append(Abort(transaction.request))
        major, minor, build = self.settings.device_version
        body = _INIT_RESPONSE.pack(
            packet.data[:INIT_NONCE_SIZE],
            new_cid,
            PROTOCOL_VERSION,
            major,
            minor,
            build,
            int(self.settings.capabilities),
        )
        self._outbox += fragment(cid, HidCommand.INIT, body)
        return events

    def _allocate(self) -> int:
        cid = self._next_cid
        self._next_cid = cid + 1 if cid + 1 < BROADCAST_CID else _FIRST_CID
        self._channels[cid] = None
        self._channels.move_to_end(cid)
        while len(self._channels) > self.settings.max_channels:
            self._channels.popitem(last=False)
        return cid

    # -- continuation packets and complete messages -------------------------------------------

    def _on_continuation(self, packet: ContinuationPacket) -> list[HidEvent]:
        transaction = self._transaction
        if not isinstance(transaction, _Assembling) or transaction.cid != packet.cid:
            self.ignored_reports += 1
            return []
        if packet.seq != transaction.next_seq:
            self._transaction = None
            return [self._error(packet.cid, HidError.INVALID_SEQ)]
        missing = transaction.length - len(transaction.buffer)
        transaction.buffer += packet.data[:missing]
        transaction.next_seq += 1
        transaction.deadline = self.clock.now() + self.settings.transaction_timeout
        if len(transaction.buffer) < transaction.length:
            return []
        self._transaction = None
        return self._complete(transaction.cid, transaction.command, bytes(transaction.buffer))

    def _complete(self, cid: int, command: HidCommand, payload: bytes) -> list[HidEvent]:
        if command == HidCommand.PING:
            self._outbox += fragment(cid, HidCommand.PING, payload)
            return []
        if command == HidCommand.WINK:
            self._outbox += fragment(cid, HidCommand.WINK, b"")
            return [Wink(cid)]
        if command == HidCommand.LOCK:
            return self._set_lock(cid, payload)
        if command == HidCommand.CBOR and not payload:
            return [self._error(cid, HidError.INVALID_LEN)]
        self._serial += 1
        request = Request(cid, command, payload, self._serial)
        self._transaction = _Processing(request)
        return [request]

    def _set_lock(self, cid: int, payload: bytes) -> list[HidEvent]:
        """CTAPHID_LOCK (§11.2.9.2.3): one byte, 0 releases, 1..10 seconds locks."""
        if len(payload) != 1:
            return [self._error(cid, HidError.INVALID_LEN)]
        seconds = payload[0]
        if seconds > MAX_LOCK_SECONDS:
            return [self._error(cid, HidError.INVALID_PAR)]
        self._lock = _Lock(cid, self.clock.now() + seconds) if seconds else None
        self._outbox += fragment(cid, HidCommand.LOCK, b"")
        return []

    # -- helpers ------------------------------------------------------------------------------

    def _is_current(self, request: Request) -> bool:
        transaction = self._transaction
        return (
            isinstance(transaction, _Processing)
            and transaction.request.transaction == request.transaction
        )

    def _fail_current(self, error: HidError) -> list[HidEvent]:
        transaction, self._transaction = self._transaction, None
        if transaction is None:
            return []
        events: list[HidEvent] = [self._error(transaction.cid, error)]
        if isinstance(transaction, _Processing):
            events.insert(0, Abort(transaction.request))
        return events

    def _error(self, cid: int, error: HidError) -> ErrorSent:
        self._outbox += fragment(cid, HidCommand.ERROR, bytes([error]))
        log.debug("cid %08x: CTAPHID_ERROR %s", cid, error.name)
        return ErrorSent(cid, error)
