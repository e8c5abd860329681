"""``UhidDevice``: a virtual USB FIDO security key through Linux's /dev/uhid. The only code in
fidoemu that opens /dev/uhid.

Theory of operation. The kernel turns our UHID_CREATE2 into a HID device that hid-generic binds
and exposes as /dev/hidrawN, where browsers, libfido2 and python-fido2 find it by its FIDO
report descriptor. Output reports written by clients come back to us as UHID_OUTPUT events;
we answer with UHID_INPUT2 events carrying 64-byte CTAPHID packets. All protocol work is done
by the sans-IO ``CtapHidSession`` (framer + authenticator core); this module adds only:

* a **reader thread** that does nothing but move events from /dev/uhid into an in-process
  queue. The kernel queues at most 31 output reports for us and silently drops the rest
  ("Output queue is full"), with no backpressure to the client, so the fd must be drained
  while the core computes or a response is being paced out;
* a **main loop** that takes reader events, presence answers and timer expiries from that
  queue in order, feeds the session and writes what it produces;
* **pacing**: hidraw keeps only 64 unread input reports per reader and drops newer ones, so a
  response of more than ``pace_above`` packets is written one packet per ``pace_interval``
  (1 ms, like a full-speed USB interrupt endpoint) instead of in a burst;
* **presence questions** answered in their own thread by a ``PresenceAsker`` (a terminal
  prompt), cancelled through an event when the session says the question is moot;
* a **core worker** thread for a session in offload mode: it runs each core step (``Compute``)
  while the main loop keeps draining /dev/uhid and sending KEEPALIVE(PROCESSING) every 100 ms,
  so a slow command (RS256 key generation) neither stalls the fd nor leaves the client guessing;
* **lifecycle**: UHID_DESTROY on ``close()``, which ``__exit__`` and the CLI's signal handling
  guarantee; if the process dies anyway the kernel destroys the device when the fd closes.

UHID_CLOSE (the last reader closed the hidraw node) abandons whatever transaction the departed
clients left, so the next client is served at once. GET_REPORT/SET_REPORT (feature reports,
which FIDO devices do not have) are answered with EIO.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import select
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from authenticator import NeedPresence, Presence
from authenticator.presence import Step
from transports.ctaphid.session import (
    AskPresence,
    Compute,
    CtapHidSession,
    SessionAction,
    StopAsking,
    Winked,
)
from transports.uhid import events
from transports.uhid.events import (
    Close,
    GetReport,
    Open,
    Output,
    SetReport,
    Start,
    Stop,
    UhidEventError,
)

log = logging.getLogger("fidoemu.uhid")

UHID_PATH: Final = "/dev/uhid"
DEFAULT_VENDOR_ID: Final = 0x1209  # pid.codes, the open-source hardware vendor ID
DEFAULT_PRODUCT_ID: Final = 0x0001  # a pid.codes test PID; real deployments may set their own
PACE_ABOVE: Final = 31
PACE_INTERVAL: Final = 0.001
MAX_WAIT: Final = 1.0  # upper bound on one wait of the main loop, so nothing can stall it


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """How the key looks to the system: HID name, physical path, serial (uniq) and IDs."""

    name: str = "fidoemu security key"
    phys: str = "fidoemu"
    uniq: str = ""
    vendor_id: int = DEFAULT_VENDOR_ID
    product_id: int = DEFAULT_PRODUCT_ID
    version: int = 0x0100

    def validate(self) -> None:
        """Raise ValueError for strings the kernel would truncate (it keeps 127/63/63 bytes)."""
        events.create2(
            name=self.name,
            phys=self.phys,
            uniq=self.uniq,
            vendor=self.vendor_id,
            product=self.product_id,
        )


class PresenceAsker(Protocol):
    """Asks a person; blocking is fine (it runs in its own thread)."""

    def ask(self, request: NeedPresence, cancelled: threading.Event) -> Presence:
        """Return the outcome; give up (any value) soon after ``cancelled`` is set."""
        ...


@dataclass(frozen=True, slots=True)
class _Answer:
    ticket: int
    outcome: Presence


@dataclass(frozen=True, slots=True)
class _ReaderGone:
    error: OSError | None


@dataclass(frozen=True, slots=True)
class _Computed:
    job: int
    result: Step | Exception


class _StopRequest:
    pass


_STOP: Final = _StopRequest()
_Item = bytes | _Answer | _ReaderGone | _Computed | _StopRequest


class UhidDevice:
    """One virtual key. Several may run in one process, each with its own fd and threads."""

    def __init__(
        self,
        session: CtapHidSession,
        identity: DeviceIdentity | None = None,
        *,
        asker: PresenceAsker | None = None,
        path: str = UHID_PATH,
        pace_above: int = PACE_ABOVE,
        pace_interval: float = PACE_INTERVAL,
    ) -> None:
        self.session = session
        self.identity = identity if identity is not None else DeviceIdentity()
        self.identity.validate()
        self.asker = asker
        self.path = path
        self.pace_above = pace_above
        self.pace_interval = pace_interval
        self._fd: int | None = None
        self._inbox: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._wake_r, self._wake_w = -1, -1
        self._reader: threading.Thread | None = None
        self._questions: dict[int, threading.Event] = {}
        self._work: queue.SimpleQueue[Compute | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self.started = threading.Event()  # set on UHID_START: the hidraw node exists
        self.open_count = 0
        self.packets_written = 0

    def __repr__(self) -> str:
        return f"UhidDevice({self.identity.name!r}, uniq={self.identity.uniq!r})"

    # -- lifecycle ----------------------------------------------------------------------------

    def open(self) -> None:
        """Create the HID device. Raises OSError when /dev/uhid cannot be opened."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        try:
            identity = self.identity
            self._write(
                fd,
                events.create2(
                    name=identity.name,
                    phys=identity.phys,
                    uniq=identity.uniq,
                    vendor=identity.vendor_id,
                    product=identity.product_id,
                    version=identity.version,
                ),
            )
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self._reader = threading.Thread(
            target=self._read_events, name=f"uhid-reader {identity.name}", daemon=True
        )
        self._reader.start()
        log.info("created HID device %r (uniq %r)", identity.name, identity.uniq)

    def close(self) -> None:
        """Destroy the HID device and release everything; safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        for cancelled in self._questions.values():
            cancelled.set()
        self._questions.clear()
        try:
            self._write(fd, events.destroy())
        except OSError as error:
            log.warning("UHID_DESTROY failed: %s", error)
        os.write(self._wake_w, b"x")
        if self._reader is not None:
            self._reader.join(timeout=2)
        if self._worker is not None:
            self._work.put(None)  # a step in progress finishes first; its result is dropped
            self._worker = None
        for descriptor in (fd, self._wake_r, self._wake_w):
            os.close(descriptor)
        self._wake_r = self._wake_w = -1
        log.info("destroyed HID device %r", self.identity.name)

    def __enter__(self) -> UhidDevice:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request_stop(self) -> None:
        """Make ``run`` return soon. Safe from a signal handler and from any thread."""
        self._inbox.put(_STOP)

    # -- the main loop ------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until ``request_stop`` or until /dev/uhid fails (then OSError is raised)."""
        if self._fd is None:
            raise RuntimeError("open() the device first")
        clock = self.session.clock
        while True:
            deadline = self.session.next_deadline()
            wait = MAX_WAIT if deadline is None else min(MAX_WAIT, max(0.0, deadline - clock.now()))
            try:
                item: _Item | None = self._inbox.get(timeout=wait)
            except queue.Empty:
                item = None
            if isinstance(item, _StopRequest):
                return
            if isinstance(item, _ReaderGone):
                raise item.error or OSError(errno.EIO, "/dev/uhid closed")
            actions: list[SessionAction] = []
            if isinstance(item, bytes):
                actions += self._on_uhid_event(item)
            elif isinstance(item, _Answer):
                self._questions.pop(item.ticket, None)
                actions += self.session.presence_decided(item.ticket, item.outcome)
            elif isinstance(item, _Computed):
                actions += self.session.computed(item.job, item.result)
            actions += self.session.tick()
            self._act(actions)
            self._flush()

    def _on_uhid_event(self, buffer: bytes) -> list[SessionAction]:
        try:
            event = events.parse_event(buffer)
        except UhidEventError as error:
            log.warning("ignoring an event from /dev/uhid: %s", error)
            return []
        if isinstance(event, Output):
            packet = events.ctaphid_packet(event)
            if packet is None:
                log.warning("ignoring an output report of %d bytes", len(event.data))
                return []
            return self.session.receive_packet(packet)
        if isinstance(event, Start):
            self.started.set()
            log.info("UHID_START (dev_flags 0x%x)", event.dev_flags)
        elif isinstance(event, Stop):
            log.info("UHID_STOP")
        elif isinstance(event, Open):
            self.open_count += 1
            log.debug("UHID_OPEN")
        elif isinstance(event, Close):
            log.debug("UHID_CLOSE")
            return self.session.disconnect()
        elif isinstance(event, GetReport):
            log.info(
                "UHID_GET_REPORT (%s %d) answered EIO", event.report_type.name, event.report_number
            )
            self._write_event(events.get_report_reply(event.request_id, errno.EIO))
        elif isinstance(event, SetReport):
            log.info(
                "UHID_SET_REPORT (%s %d) answered EIO", event.report_type.name, event.report_number
            )
            self._write_event(events.set_report_reply(event.request_id, errno.EIO))
        return []

    def _act(self, actions: list[SessionAction]) -> None:
        for action in actions:
            if isinstance(action, AskPresence):
                self._ask(action)
            elif isinstance(action, StopAsking):
                cancelled = self._questions.pop(action.ticket, None)
                if cancelled is not None:
                    cancelled.set()
            elif isinstance(action, Winked):
                log.warning("wink! (%s)", self.identity.name)
            elif isinstance(action, Compute):
                self._compute(action)

    def _compute(self, action: Compute) -> None:
        if self._worker is None:
            self._worker = threading.Thread(
                target=self._run_steps, name=f"core {self.identity.name}", daemon=True
            )
            self._worker.start()
        self._work.put(action)

    def _run_steps(self) -> None:
        """The core worker: one step at a time, results back to the main loop in order."""
        while (action := self._work.get()) is not None:
            result: Step | Exception
            try:
                result = action.work()
            except Exception as error:  # the session answers ERR_OTHER (or re-raises, strict)
                result = error
            self._inbox.put(_Computed(action.job, result))

    def _ask(self, action: AskPresence) -> None:
        asker = self.asker
        if asker is None:  # no way to ask anyone: as if nobody touched the key
            self._inbox.put(_Answer(action.ticket, Presence.TIMED_OUT))
            return
        cancelled = threading.Event()
        self._questions[action.ticket] = cancelled

        def worker() -> None:
            try:
                outcome = asker.ask(action.request, cancelled)
            except Exception:
                log.exception("presence prompt failed; treating it as a timeout")
                outcome = Presence.TIMED_OUT
            self._inbox.put(_Answer(action.ticket, outcome))

        threading.Thread(target=worker, name="presence", daemon=True).start()

    def _flush(self) -> None:
        packets = self.session.packets_to_send()
        pace = len(packets) > self.pace_above
        for index, packet in enumerate(packets):
            if pace and index:
                time.sleep(self.pace_interval)
            self._write_event(events.input2(packet))
            self.packets_written += 1

    # -- I/O ----------------------------------------------------------------------------------

    def _write_event(self, event: bytes) -> None:
        if self._fd is None:
            return
        self._write(self._fd, event)

    @staticmethod
    def _write(fd: int, event: bytes) -> None:
        written = os.write(fd, event)
        if written != len(event):
            raise OSError(errno.EIO, f"short write to /dev/uhid: {written} of {len(event)}")

    def _read_events(self) -> None:
        """Drain /dev/uhid as fast as events come: poll, then read until the queue is empty."""
        fd, wake = self._fd, self._wake_r
        if fd is None:
            return
        os.set_blocking(fd, False)
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(wake, select.POLLIN)
        while True:
            try:
                ready = poller.poll()
                if any(descriptor == wake for descriptor, _ in ready):
                    return
                while True:
                    self._inbox.put(os.read(fd, events.UHID_EVENT_SIZE))
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as error:
                if self._fd is not None:
                    self._inbox.put(_ReaderGone(error))
                return

    # -- discovery ----------------------------------------------------------------------------

    def hidraw_nodes(self, sysfs: Path = Path("/sys/class/hidraw")) -> list[Path]:
        """The /dev/hidrawN node(s) of this device, found through sysfs by its uniq and name."""
        return list(_find_hidraw(self.identity, sysfs))


def _find_hidraw(identity: DeviceIdentity, sysfs: Path) -> Iterator[Path]:
    try:
        nodes = sorted(sysfs.iterdir())
    except OSError:
        return
    wanted = {f"HID_NAME={identity.name}", f"HID_UNIQ={identity.uniq}"}
    for node in nodes:
        try:
            uevent = (node / "device" / "uevent").read_text().splitlines()
        except OSError:
            continue
        if wanted <= set(uevent):
            yield Path("/dev") / node.name
