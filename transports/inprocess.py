"""An in-process transport: a ``fido2.ctap.CtapDevice`` that calls the core directly, so
python-fido2's ``Fido2Client``, ``Ctap2`` and ``Ctap1`` drive a virtual authenticator with no
USB, no kernel and no browser.

It carries the CTAPHID commands a client library uses (CBOR, MSG, PING, WINK; CANCEL through
the ``event`` argument), calls ``on_keepalive`` with UPNEEDED while the core waits for the
user, and answers presence requests with an injected policy (default: approve at once).

Two paths. The default, direct path exchanges CTAP messages with the core: no framing, no
clock, as fast as a call can be. With ``hid=True`` every message crosses the real CTAPHID
stack as 64-byte reports: python-fido2's own ``CtapHidDevice`` is the host, our
``CtapHidSession`` (framer + core) the device, joined by an in-memory connection, with time on
a ``ManualClock``. A policy may then answer with a ``Decision`` that takes virtual time: while
the person "waits" the connection advances the clock from one session deadline to the next,
so the host reads KEEPALIVE(UPNEEDED) every 100 ms (CTAP 2.1 §11.2.9.2.1) and never sleeps; a
CANCELLED decision is the platform cancelling: the call's ``event`` is set and python-fido2
sends CTAPHID_CANCEL after the next keepalive, as a real client would. Over HID, U2F behaves
like a real key: it answers "conditions not satisfied" and latches the touch for the retry.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

from fido2.ctap import STATUS, CtapDevice, CtapError
from fido2.hid import CAPABILITY, CTAPHID, CtapHidDevice
from fido2.hid.base import CtapHidConnection, HidDescriptor

from authenticator import Authenticator, ManualClock, NeedPresence, Presence, approve
from authenticator.presence import Step
from transports.ctaphid.constants import REPORT_SIZE
from transports.ctaphid.session import AskPresence, CtapHidSession, SessionAction

# Command bytes as plain ints for the per-call dispatch (an IntEnum attribute read is slow).
_CBOR: Final = int(CTAPHID.CBOR)
_MSG: Final = int(CTAPHID.MSG)
_PING: Final = int(CTAPHID.PING)
_WINK: Final = int(CTAPHID.WINK)

CAPABILITIES: Final = CAPABILITY.WINK | CAPABILITY.CBOR
_SAME_TIME: Final = 1e-6
"""Seconds within which a decision and a keepalive are simultaneous (the decision goes first),
so float drift in 100 ms steps never adds or removes a keepalive."""
REPORT_LOG_SIZE: Final = 8192
"""Reports the HID path remembers (``InProcessDevice.reports``), newest last."""


@dataclass(frozen=True, slots=True)
class Decision:
    """A presence answer that takes ``after`` virtual seconds (over the HID path the device
    sends keepalives meanwhile). CANCELLED means the platform cancels at that moment."""

    outcome: Presence
    after: float = 0.0


TimedPresencePolicy = Callable[[NeedPresence], Presence | Decision]
"""A ``PresencePolicy``, or one whose answers may take time (``Decision``)."""


@dataclass(frozen=True, slots=True)
class Report:
    """One 64-byte report on the in-memory HID wire: ``to_device`` or from it, at ``time``."""

    time: float
    to_device: bool
    data: bytes = field(repr=False)  # requests may carry PIN material: never in a repr


class InProcessDevice(CtapDevice):
    """A python-fido2 device backed by an in-process ``Authenticator``."""

    def __init__(
        self,
        authenticator: Authenticator | None = None,
        *,
        presence: TimedPresencePolicy = approve,
        hid: bool = False,
        clock: ManualClock | None = None,
    ) -> None:
        """``hid=True`` routes every call through the CTAPHID framer (see the module
        docstring) on ``clock``: by default the authenticator's own clock when it is a
        ``ManualClock`` (so its timers see the waits), else a fresh one."""
        self.authenticator = authenticator if authenticator is not None else Authenticator()
        self.presence = presence
        self.winks = 0
        self._lock = threading.Lock()
        self._hid: _HidLoop | None = None
        if hid:
            own = self.authenticator.context.clock
            if clock is None:
                clock = own if isinstance(own, ManualClock) else ManualClock()
            self._hid = _HidLoop(self, clock)

    @property
    def clock(self) -> ManualClock | None:
        """The HID path's virtual clock (None on the direct path, which takes no time)."""
        return None if self._hid is None else self._hid.clock

    @property
    def reports(self) -> list[Report]:
        """The HID path's most recent reports, both directions, oldest first."""
        return [] if self._hid is None else list(self._hid.log)

    def __repr__(self) -> str:
        return f"InProcessDevice({self.authenticator!r})"

    @property
    def capabilities(self) -> int:
        caps = CAPABILITIES
        if not self.authenticator.config.u2f:
            caps |= CAPABILITY.NMSG
        return int(caps)

    @property
    def product_name(self) -> str:
        return f"fidoemu {self.authenticator.config.name}"

    @property
    def serial_number(self) -> str | None:
        return None

    def call(
        self,
        cmd: int,
        data: bytes = b"",
        event: threading.Event | None = None,
        on_keepalive: Callable[[STATUS], None] | None = None,
    ) -> bytes:
        if self._hid is not None:
            with self._lock:
                return self._hid.call(cmd, data, event, on_keepalive)
        with self._lock:
            if cmd == _CBOR:
                step = self.authenticator.start(bytes(data))
            elif cmd == _MSG and self.authenticator.config.u2f:
                step = self.authenticator.u2f(bytes(data))
            elif cmd == _PING:
                return bytes(data)
            elif cmd == _WINK:
                self.winks += 1
                return b""
            else:
                raise CtapError(CtapError.ERR.INVALID_COMMAND)
            return self._drive(step, event, on_keepalive)

    def _drive(
        self,
        step: Step,
        event: threading.Event | None,
        on_keepalive: Callable[[STATUS], None] | None,
    ) -> bytes:
        keepalive_sent = False
        while isinstance(step, NeedPresence):
            if on_keepalive is not None and not keepalive_sent:
                on_keepalive(STATUS.UPNEEDED)  # fido2 reports each status once, as we do
                keepalive_sent = True
            outcome = Presence.CANCELLED if event is not None and event.is_set() else None
            if outcome is None:
                answer = self.presence(step)  # the direct path takes no time: a Decision's
                outcome = answer.outcome if isinstance(answer, Decision) else answer  # delay
                if event is not None and event.is_set():  # is the HID path's business
                    outcome = Presence.CANCELLED
            step = self.authenticator.resume(outcome)
        return step.response

    def close(self) -> None:
        """Nothing to release: the authenticator outlives the device handle."""

    @classmethod
    def list_devices(cls) -> Iterator[InProcessDevice]:
        """In-process devices are created, not discovered."""
        return iter(())


class _HidLoop(CtapHidConnection):
    """The in-memory wire between python-fido2's ``CtapHidDevice`` (host) and a
    ``CtapHidSession`` (device), and the world's one timeline.

    ``write_packet`` feeds the session; ``read_packet`` returns the session's next report,
    and when there is none the device must be waiting for the person: the clock jumps to
    the earlier of the session's next deadline (a keepalive) and the scheduled decision.
    """

    def __init__(self, device: InProcessDevice, clock: ManualClock) -> None:
        self.device = device
        self.clock = clock
        self.session = CtapHidSession(device.authenticator, clock=clock)
        self.log: deque[Report] = deque(maxlen=REPORT_LOG_SIZE)
        self._inbox: deque[bytes] = deque()
        self._decision: tuple[int, float, Presence] | None = None  # ticket, when, outcome
        self._event: threading.Event | None = None
        descriptor = HidDescriptor(
            "fidoemu-inprocess", 0, 0, REPORT_SIZE, REPORT_SIZE, device.product_name, None
        )
        self.host = CtapHidDevice(descriptor, self)  # CTAPHID_INIT allocates our channel

    def call(
        self,
        cmd: int,
        data: bytes,
        event: threading.Event | None,
        on_keepalive: Callable[[STATUS], None] | None,
    ) -> bytes:
        self._event = event if event is not None else threading.Event()
        try:
            return self.host.call(cmd, data, self._event, on_keepalive)
        finally:
            self._event = None
            self._decision = None
            if self.session.waiting_for_presence:  # the host gave up mid-request
                self.session.disconnect()
            self._inbox.clear()

    # -- CtapHidConnection --------------------------------------------------------------------

    def write_packet(self, data: bytes) -> None:
        self.log.append(Report(self.clock.now(), True, bytes(data)))
        self._act(self.session.receive_packet(data))

    def read_packet(self) -> bytes:
        while not self._inbox:
            self._inbox.extend(self.session.packets_to_send())
            if self._inbox:
                break
            self._pass_time()
        report = self._inbox.popleft()
        self.log.append(Report(self.clock.now(), False, report))
        return report

    def close(self) -> None:
        """The device handle outlives calls; nothing to release."""

    # -- the timeline -------------------------------------------------------------------------

    def _act(self, actions: list[SessionAction]) -> None:
        for action in actions:
            if not isinstance(action, AskPresence):
                continue  # StopAsking: the decision is dropped below; Winked: nothing to show
            answer = self.device.presence(action.request)
            decision = answer if isinstance(answer, Decision) else Decision(answer)
            if not self.session.waiting_for_presence:  # U2F: decided at once, for the retry
                self._act(self.session.presence_decided(action.ticket, decision.outcome))
                continue
            self._decision = (action.ticket, self.clock.now() + decision.after, decision.outcome)
        if not self.session.waiting_for_presence:
            self._decision = None

    def _pass_time(self) -> None:
        """Nothing to read: move the clock to the next thing that happens."""
        deadline = self.session.next_deadline()
        decision = self._decision
        if decision is not None and (deadline is None or decision[1] <= deadline + _SAME_TIME):
            ticket, when, outcome = decision
            self._advance_to(when)
            self._decision = None
            if outcome is Presence.CANCELLED and self._event is not None:
                self._event.set()  # the client cancels; fido2 sends CTAPHID_CANCEL next
            else:
                self._act(self.session.presence_decided(ticket, outcome))
            return
        if deadline is None:
            raise CtapError(CtapError.ERR.OTHER)  # nothing will ever answer: fail, not hang
        self._advance_to(deadline)
        self._act(self.session.tick())

    def _advance_to(self, when: float) -> None:
        now = self.clock.now()
        if when > now:
            self.clock.advance(when - now)
