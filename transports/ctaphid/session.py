"""``CtapHidSession``: a ``CtapHidFramer`` wired to an ``Authenticator``, still sans-IO.

This is everything a HID transport does except the I/O: reports in, reports out, and
*presence questions* out. A driver (``transports.uhid.device``) moves reports between the
session and the kernel, calls ``tick`` when ``next_deadline`` passes, and answers each
``AskPresence`` in its own way (a terminal prompt, a desktop notification) by calling
``presence_decided`` with the same ticket; ``StopAsking`` tells it a question is moot.

Theory of operation (CTAP 2.1 §11.2.9.1.2, §11.2.9.2.1, FIDO U2F HID §4.1.1):

* A CTAPHID_CBOR request runs ``Authenticator.start``. When the core wants a touch, the session
  sends KEEPALIVE(UPNEEDED) at once and then every ``keepalive_interval`` seconds, and asks
  the driver. The decision resumes the core; CTAPHID_CANCEL resumes it with CANCELLED (the
  response is then CTAP2_ERR_KEEPALIVE_CANCEL); CTAPHID_INIT on the channel, or every client
  closing the device, abandons it without a response.
* A CTAPHID_MSG (U2F) request is never held open: U2F clients poll. Without a fresh touch the
  request answers "conditions not satisfied" at once while the question stays open; an approval
  is latched for ``U2F_TOUCH_VALIDITY`` seconds and consumed by the next request that needs it.
* With ``instant_presence`` (e.g. always approve), no question is asked: the policy answers
  every presence request synchronously, for CBOR and MSG alike.
* With ``offload=True`` the session does not call the core itself: each core step (start, or
  resume after a presence decision) is handed to the driver as a ``Compute`` action, which the
  driver runs where it likes (a worker thread) and reports back with ``computed``. Until then
  the session sends KEEPALIVE(PROCESSING) every ``keepalive_interval`` (CTAP 2.1 §11.2.9.2.1),
  so a client waiting for a slow command (an RS256 key generation) knows the key is alive.
  Steps run one at a time, in order. CTAPHID_CANCEL during a step takes effect when it ends
  (a step that then wants a touch is resumed with CANCELLED; a finished one is answered), and
  an abandoned request's result is dropped. Without ``offload`` (the default) every step runs
  inside the call that caused it, as pure code must.

Only command names, parameter names and sizes are logged (``describe_*``); never values that
could be secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import IntEnum
from functools import partial
from typing import Any, Final

from authenticator import Authenticator, AuthenticatorConfig, NeedPresence, Presence
from authenticator.clock import Clock, SystemClock
from authenticator.commands import (
    ClientPinKey,
    Command,
    ConfigKey,
    CredentialManagementKey,
    GetAssertionKey,
    LargeBlobsKey,
    MakeCredentialKey,
)
from authenticator.presence import PresencePolicy, Step
from authenticator.status import CtapStatus
from authenticator.u2f import StatusWord, U2fInstruction
from transports.ctaphid.constants import (
    KEEPALIVE_INTERVAL,
    Capability,
    HidCommand,
    HidError,
    KeepaliveStatus,
)
from transports.ctaphid.framer import (
    Abort,
    Cancel,
    CtapHidFramer,
    FramerSettings,
    HidEvent,
    Request,
    Wink,
)

log = logging.getLogger("fidoemu.ctaphid.session")

U2F_TOUCH_VALIDITY: Final = 10.0
"""Seconds an approved U2F touch stays usable by the next request that needs one."""


@dataclass(frozen=True, slots=True)
class AskPresence:
    """Ask the user; answer with ``presence_decided(ticket, outcome)``."""

    ticket: int
    request: NeedPresence


@dataclass(frozen=True, slots=True)
class StopAsking:
    """The question with this ticket no longer matters (cancelled, aborted, superseded)."""

    ticket: int


@dataclass(frozen=True, slots=True)
class Winked:
    cid: int


@dataclass(frozen=True, slots=True)
class Compute:
    """Run ``work`` (one core step) and report its result, or the exception it raised, with
    ``computed(job, result)``. Only with ``offload=True``; at most one is outstanding."""

    job: int
    work: Callable[[], Step]


SessionAction = AskPresence | StopAsking | Winked | Compute


def framer_settings(config: AuthenticatorConfig, **overrides: Any) -> FramerSettings:
    """CTAPHID_INIT's capabilities and version, true of the configured device."""
    capabilities = Capability.WINK | Capability.CBOR
    if not config.u2f:
        capabilities |= Capability.NMSG
    firmware = config.firmware_version
    version = ((firmware >> 16) & 0xFF, (firmware >> 8) & 0xFF, firmware & 0xFF)
    return replace(FramerSettings(capabilities=capabilities, device_version=version), **overrides)


@dataclass(slots=True)
class _Waiting:
    request: Request
    ticket: int
    next_keepalive: float


@dataclass(slots=True)
class _Job:
    """A core step handed to the driver (offload mode); the first in the queue is running."""

    job: int
    request: Request
    work: Callable[[], Step]
    next_keepalive: float
    dispatched: bool = False
    cancelled: bool = False  # CTAPHID_CANCEL arrived while it ran
    aborted: bool = False  # the request was abandoned: drop the result


class CtapHidSession:
    """CTAPHID framing plus the authenticator core; see the module docstring."""

    def __init__(
        self,
        authenticator: Authenticator,
        *,
        clock: Clock | None = None,
        settings: FramerSettings | None = None,
        instant_presence: PresencePolicy | None = None,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
        offload: bool = False,
    ) -> None:
        self.authenticator = authenticator
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.framer = CtapHidFramer(
            settings if settings is not None else framer_settings(authenticator.config),
            self.clock,
        )
        self.instant_presence = instant_presence
        self.keepalive_interval = keepalive_interval
        self._waiting: _Waiting | None = None
        self.offload = offload
        self._jobs: list[_Job] = []
        self._job_ids = 0
        self._tickets = 0
        self._u2f_ask: int | None = None
        self._u2f_touch_at: float | None = None
        self.on_request: Callable[[Request], None] | None = None  # e.g. a test's probe

    # -- inputs -------------------------------------------------------------------------------

    def receive_packet(self, report: bytes) -> list[SessionAction]:
        return self._handle(self.framer.receive_packet(report))

    def tick(self) -> list[SessionAction]:
        actions = self._handle(self.framer.tick())
        waiting = self._waiting
        now = self.clock.now()
        if waiting is not None and now >= waiting.next_keepalive:
            self.framer.keepalive(waiting.request, KeepaliveStatus.UP_NEEDED)
            waiting.next_keepalive = now + self.keepalive_interval
        for job in self._jobs:
            if not job.aborted and now >= job.next_keepalive:
                self.framer.keepalive(job.request, KeepaliveStatus.PROCESSING)
                job.next_keepalive = now + self.keepalive_interval
        return actions

    def presence_decided(self, ticket: int, outcome: Presence) -> list[SessionAction]:
        waiting = self._waiting
        if waiting is not None and waiting.ticket == ticket:
            self._waiting = None
            log.info("presence: %s", outcome.value)
            return self._core(waiting.request, partial(self.authenticator.resume, outcome))
        if self._u2f_ask == ticket:
            self._u2f_ask = None
            if outcome is Presence.APPROVED:
                self._u2f_touch_at = self.clock.now()
        return []

    def disconnect(self) -> list[SessionAction]:
        """Every client closed the device: abandon what they left behind."""
        return self._handle(self.framer.disconnect())

    def computed(self, job: int, result: Step | Exception) -> list[SessionAction]:
        """The outcome of a ``Compute``: the step the core returned, or what it raised."""
        if not self._jobs or self._jobs[0].job != job or not self._jobs[0].dispatched:
            return []  # not the running job: ignore
        done = self._jobs.pop(0)
        actions: list[SessionAction] = []
        if isinstance(result, Exception):
            self.framer.fail(done.request, HidError.OTHER)
            if self.authenticator.strict:
                raise result
            log.error(
                "internal error while processing a request; answered ERR_OTHER", exc_info=result
            )
        elif done.aborted:
            if isinstance(result, NeedPresence):
                self._cancel_core()
        elif done.cancelled and isinstance(result, NeedPresence):
            log.info("cid %08x: cancelled by the client", done.request.cid)
            actions += self._core(
                done.request, partial(self.authenticator.resume, Presence.CANCELLED)
            )
        else:
            actions += self._run(done.request, result)
        return actions + self._dispatch()

    # -- outputs ------------------------------------------------------------------------------

    def packets_to_send(self) -> list[bytes]:
        return self.framer.packets_to_send()

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (self.framer.next_deadline(),) if d is not None]
        if self._waiting is not None:
            deadlines.append(self._waiting.next_keepalive)
        deadlines += [job.next_keepalive for job in self._jobs if not job.aborted]
        return min(deadlines) if deadlines else None

    @property
    def waiting_for_presence(self) -> bool:
        return self._waiting is not None

    @property
    def computing(self) -> bool:
        return bool(self._jobs)

    # -- internals ----------------------------------------------------------------------------

    def _handle(self, events: list[HidEvent]) -> list[SessionAction]:
        actions: list[SessionAction] = []
        for event in events:
            if isinstance(event, Request):
                actions += self._start(event)
            elif isinstance(event, Cancel):
                actions += self._cancel(event.request)
            elif isinstance(event, Abort):
                actions += self._abort(event.request)
            elif isinstance(event, Wink):
                log.info("cid %08x: wink", event.cid)
                actions.append(Winked(event.cid))
        return actions

    def _start(self, request: Request) -> list[SessionAction]:
        if self.on_request is not None:
            self.on_request(request)
        if request.command == HidCommand.CBOR:
            log.info("cid %08x: CBOR %s", request.cid, describe_cbor_request(request.payload))
            return self._core(request, partial(self.authenticator.start, request.payload))
        log.info("cid %08x: MSG %s", request.cid, describe_apdu(request.payload))
        return self._core(request, partial(self.authenticator.u2f, request.payload))

    def _core(self, request: Request, work: Callable[[], Step]) -> list[SessionAction]:
        """One core step: run now, or (offload) queue it for the driver."""
        if not self.offload:
            return self._run(request, self._guard(request, work))
        self._job_ids += 1
        now = self.clock.now()
        self._jobs.append(_Job(self._job_ids, request, work, now + self.keepalive_interval))
        return self._dispatch()

    def _dispatch(self) -> list[SessionAction]:
        if not self._jobs or self._jobs[0].dispatched:
            return []
        head = self._jobs[0]
        head.dispatched = True
        return [Compute(head.job, head.work)]

    def _guard(self, request: Request, call: Callable[[], Step]) -> Step | None:
        """Run the core; an unexpected exception answers ERR_OTHER (and is re-raised when
        the authenticator is strict, as in every test)."""
        try:
            return call()
        except Exception:
            self.framer.fail(request, HidError.OTHER)
            if self.authenticator.strict:
                raise
            log.exception("internal error while processing a request; answered ERR_OTHER")
            return None

    def _run(self, request: Request, step: Step | None) -> list[SessionAction]:
        """Continue after a core step: answer, ask for presence, or resume the core."""
        if isinstance(step, NeedPresence):
            if self.instant_presence is not None:
                outcome = self.instant_presence(step)
                return self._core(request, partial(self.authenticator.resume, outcome))
            if request.command == HidCommand.MSG:
                outcome, asked = self._u2f_presence(step)
                return asked + self._core(request, partial(self.authenticator.resume, outcome))
            actions: list[SessionAction] = []
            if self._u2f_ask is not None:
                actions.append(StopAsking(self._u2f_ask))
                self._u2f_ask = None
            self._tickets += 1
            now = self.clock.now()
            self._waiting = _Waiting(request, self._tickets, now + self.keepalive_interval)
            self.framer.keepalive(request, KeepaliveStatus.UP_NEEDED)
            log.info("presence wanted (%s, rp %r)", step.reason, step.rp_id)
            return [*actions, AskPresence(self._tickets, step)]
        if step is not None:
            self.framer.respond(request, step.response)
            if request.command == HidCommand.CBOR:
                log.info("cid %08x: -> %s", request.cid, describe_cbor_response(step.response))
            else:
                log.info("cid %08x: -> %s", request.cid, describe_apdu_response(step.response))
        return []

    def _u2f_presence(self, need: NeedPresence) -> tuple[Presence, list[SessionAction]]:
        touched = self._u2f_touch_at
        if touched is not None and self.clock.now() - touched <= U2F_TOUCH_VALIDITY:
            self._u2f_touch_at = None
            return Presence.APPROVED, []
        if self._u2f_ask is not None:
            return Presence.TIMED_OUT, []  # still asking: "conditions not satisfied"
        self._tickets += 1
        self._u2f_ask = self._tickets
        return Presence.TIMED_OUT, [AskPresence(self._tickets, need)]

    def _cancel(self, request: Request) -> list[SessionAction]:
        for job in self._jobs:
            if job.request is request and not job.aborted:
                job.cancelled = True  # takes effect when the step ends
                return []
        waiting = self._waiting
        if waiting is None or waiting.request != request:
            return []
        self._waiting = None
        log.info("cid %08x: cancelled by the client", request.cid)
        return [
            StopAsking(waiting.ticket),
            *self._core(request, partial(self.authenticator.resume, Presence.CANCELLED)),
        ]

    def _abort(self, request: Request) -> list[SessionAction]:
        for job in self._jobs:
            if job.request is request and not job.aborted:
                job.aborted = True  # its result is dropped when it ends
                log.info("cid %08x: request abandoned while processing", request.cid)
                return []
        waiting = self._waiting
        if waiting is None or waiting.request != request:
            return []
        self._waiting = None
        log.info("cid %08x: request abandoned (channel resynchronised or client gone)", request.cid)
        self._cancel_core()
        return [StopAsking(waiting.ticket)]

    def _cancel_core(self) -> None:
        try:
            self.authenticator.cancel()
        except Exception:
            if self.authenticator.strict:
                raise
            log.exception("internal error while abandoning a request")


# -- log lines: names and sizes, never values -----------------------------------------------------

_PARAMETER_KEYS: Final[dict[int, type[IntEnum]]] = {
    Command.MAKE_CREDENTIAL: MakeCredentialKey,
    Command.GET_ASSERTION: GetAssertionKey,
    Command.CLIENT_PIN: ClientPinKey,
    Command.CREDENTIAL_MANAGEMENT: CredentialManagementKey,
    Command.CREDENTIAL_MANAGEMENT_PRE: CredentialManagementKey,
    Command.LARGE_BLOBS: LargeBlobsKey,
    Command.CONFIG: ConfigKey,
}
_SAFE_STRINGS: Final = {"id", "name", "rp", "rpId", "type"}


def _enum_name(enum: type[IntEnum], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return f"0x{value:02x}"


def describe_cbor_request(payload: bytes) -> str:
    """``getAssertion(rpId='example.com', clientDataHash=<32 B>, options{up})`` style."""
    from authenticator import cbor  # the one decoder; errors only make the line less detailed

    if not payload:
        return "(empty)"
    name = _enum_name(Command, payload[0])
    try:
        parameters = cbor.decode_map(payload[1:])
    except Exception:
        return f"{name} (undecodable parameters, {len(payload) - 1} B)"
    keys = _PARAMETER_KEYS.get(payload[0])
    parts = []
    for key, value in parameters.items():
        label = _enum_name(keys, key) if keys is not None and isinstance(key, int) else str(key)
        parts.append(f"{label.lower()}={_summary(label, value)}")
    return f"{name}({', '.join(parts)})"


def _summary(label: str, value: object) -> str:
    if isinstance(value, bytes):
        return f"<{len(value)} B>"
    if isinstance(value, bool | int):
        return str(value)
    if isinstance(value, str):
        return repr(value[:64]) if label.upper() in {"RP_ID"} else f"<{len(value)} chars>"
    if isinstance(value, list):
        return f"[{len(value)}]"
    if isinstance(value, dict):
        inner = []
        for key, item in value.items():
            if isinstance(item, str) and key in _SAFE_STRINGS:
                inner.append(f"{key}={item[:64]!r}")
            elif isinstance(item, bool):
                inner.append(f"{key}={item}")
            else:
                inner.append(str(key))
        return "{" + ", ".join(inner) + "}"
    return type(value).__name__


def describe_cbor_response(response: bytes) -> str:
    if not response:
        return "(empty)"
    status = _enum_name(CtapStatus, response[0])
    return f"{status} ({len(response) - 1} B)" if len(response) > 1 else status


def describe_apdu(apdu: bytes) -> str:
    if len(apdu) < 4:
        return f"<{len(apdu)} B APDU>"
    return f"{_enum_name(U2fInstruction, apdu[1])} (P1 0x{apdu[2]:02x}, {len(apdu)} B)"


def describe_apdu_response(response: bytes) -> str:
    if len(response) < 2:
        return "(short response)"
    word = int.from_bytes(response[-2:], "big")
    try:
        name = StatusWord(word).name
    except ValueError:
        name = f"0x{word:04x}"
    return f"{name} ({len(response) - 2} B)"
