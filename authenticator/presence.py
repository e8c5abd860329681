"""User presence as data: the core yields ``NeedPresence`` and a transport answers with a
``Presence`` outcome decided by a policy (approve, deny, time out, ask a person)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Final

from authenticator.status import CtapError, CtapStatus


@dataclass(slots=True)
class NeedPresence:
    """The core wants a touch (and, when ``user_verification``, a built-in UV gesture).

    The transport decides how to ask and how long to wait; it answers with ``resume()``.
    """

    rp_id: str
    user_verification: bool = False
    reason: str = "operation"


@dataclass(slots=True)
class Done:
    """A finished command: the status byte, then the CBOR map when the status is OK."""

    response: bytes

    @property
    def status(self) -> CtapStatus:
        return CtapStatus(self.response[0])


Step = Done | NeedPresence


class Presence(Enum):
    APPROVED = "approved"
    DENIED = "denied"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    UV_FAILED = "uv_failed"  # touched, but the built-in UV gesture did not match

    def require(self) -> None:
        """The one place a presence outcome becomes a status code (CTAP 2.1 §6.1.2 step 14)."""
        if self is _APPROVED:  # every ceremony passes here: no enum attribute read for it
            return
        match self:
            case Presence.APPROVED:
                return
            case Presence.DENIED:
                raise CtapError(CtapStatus.OPERATION_DENIED, "user denied presence")
            case Presence.TIMED_OUT:
                raise CtapError(CtapStatus.USER_ACTION_TIMEOUT, "no touch in time")
            case Presence.CANCELLED:
                raise CtapError(CtapStatus.KEEPALIVE_CANCEL, "cancelled by the platform")
            case Presence.UV_FAILED:
                raise CtapError(CtapStatus.UV_INVALID, "user verification failed")


_APPROVED: Final = Presence.APPROVED

PresencePolicy = Callable[[NeedPresence], Presence]
"""Decides each presence request; transports call it (possibly blocking, e.g. a prompt)."""


def always(outcome: Presence) -> PresencePolicy:
    return lambda _request: outcome


approve: PresencePolicy = always(Presence.APPROVED)
deny: PresencePolicy = always(Presence.DENIED)
time_out: PresencePolicy = always(Presence.TIMED_OUT)


class ScriptedPresence:
    """Answers presence requests from a queue of outcomes, then falls back to a default.

    ``requests`` records every request, so a test can assert what the user was asked.
    """

    def __init__(
        self, outcomes: Iterable[Presence] = (), *, then: Presence = Presence.APPROVED
    ) -> None:
        self._queue: deque[Presence] = deque(outcomes)
        self._then = then
        self.requests: list[NeedPresence] = []

    def push(self, *outcomes: Presence) -> None:
        self._queue.extend(outcomes)

    def __call__(self, request: NeedPresence) -> Presence:
        self.requests.append(request)
        return self._queue.popleft() if self._queue else self._then
