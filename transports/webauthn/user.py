"""Scripted user interaction for WebAuthn ceremonies: a queue of what the person does, in the
order a browser asks (pick an authenticator, touch it, verify, pick an account).

Theory of operation: a ceremony asks the ``ScriptedUser`` three kinds of questions:
``presence`` (the authenticator wants a touch or a built-in UV gesture), ``choose_authenticator``
(several authenticators are attached) and ``choose_account`` (a discoverable login found several
accounts). Each question takes the next action in the queue if it is of the right kind;
``Wait`` actions before an answer, and a touch's own ``after`` (``approve(after=0.5)``,
``time_out(after=1.5)``), add virtual seconds (never slept) that count against the ceremony's
timeout; over ``InProcessDevice(hid=True)`` they are filled with keepalives every 100 ms.
Actions of each kind are used in their queue order, so ``then(choose_account(1))`` needs no
touch before it; a question with no action of its kind
queued gets the default person: touch at once, first authenticator, first account, no PIN.
``assert_done()`` reports actions a test queued but no ceremony used.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from authenticator.presence import NeedPresence, Presence


class ScriptError(AssertionError):
    """The script does not fit the ceremony (an action of the wrong kind, or left over)."""


class Gesture(Enum):
    """What the user does when an authenticator asks for presence."""

    APPROVE = "approve"  # touch (and pass the built-in UV gesture when asked)
    DENY = "deny"  # refuse on the authenticator (OPERATION_DENIED)
    TIME_OUT = "time_out"  # never touch: the authenticator's own wait ends (USER_ACTION_TIMEOUT)
    # Touch, but the fingerprint/face does not match. Inside makeCredential/getAssertion
    # (CTAP 2.1 §6.1.2 step 11.2.3, §6.2.2 step 6.2.3) the core answers PUAT_REQUIRED when a
    # usable PIN is set, PIN_BLOCKED when the UV retries are exhausted, else OPERATION_DENIED;
    # UV_INVALID (UV_BLOCKED on the last retry) only for the clientPIN subcommand
    # getPinUvAuthTokenUsingUvWithPermissions (§6.5.5.7.3).
    UV_FAIL = "uv_fail"
    CANCEL = "cancel"  # close the browser dialog: the client cancels (KEEPALIVE_CANCEL)
    ABORT = "abort"  # the page aborts through its AbortSignal (AbortError)


_PRESENCE: dict[Gesture, Presence] = {
    Gesture.APPROVE: Presence.APPROVED,
    Gesture.DENY: Presence.DENIED,
    Gesture.TIME_OUT: Presence.TIMED_OUT,
    Gesture.UV_FAIL: Presence.UV_FAILED,
    Gesture.CANCEL: Presence.CANCELLED,
    Gesture.ABORT: Presence.CANCELLED,
}


@dataclass(frozen=True, slots=True)
class Touch:
    """A gesture, ``after`` virtual seconds of the authenticator waiting for it (over HID,
    keepalives every 100 ms meanwhile; the seconds count against the ceremony's timeout)."""

    gesture: Gesture
    after: float = 0.0

    @property
    def presence(self) -> Presence:
        return _PRESENCE[self.gesture]


@dataclass(frozen=True, slots=True)
class Wait:
    """The user does nothing for ``seconds`` (virtual time) before the next action."""

    seconds: float


@dataclass(frozen=True, slots=True)
class ChooseAuthenticator:
    index: int


@dataclass(frozen=True, slots=True)
class ChooseAccount:
    index: int


@dataclass(frozen=True, slots=True)
class EnterPin:
    """Type a PIN when the client asks for one (needs an authenticator with clientPIN)."""

    pin: str = field(repr=False)


Action = Touch | Wait | ChooseAuthenticator | ChooseAccount | EnterPin

APPROVE = Touch(Gesture.APPROVE)


def _touch(gesture: Gesture, after: float) -> Touch:
    if after < 0:
        raise ValueError("time does not go backwards")
    return Touch(gesture, after)


def approve(after: float = 0.0) -> Touch:
    return APPROVE if not after else _touch(Gesture.APPROVE, after)


def deny(after: float = 0.0) -> Touch:
    return _touch(Gesture.DENY, after)


def time_out(after: float = 0.0) -> Touch:
    """The authenticator gives up waiting, ``after`` seconds into the wait (real keys wait
    about 30 s; a short value keeps a HID test's keepalive count small)."""
    return _touch(Gesture.TIME_OUT, after)


def uv_fail(after: float = 0.0) -> Touch:
    return _touch(Gesture.UV_FAIL, after)


def cancel(after: float = 0.0) -> Touch:
    return _touch(Gesture.CANCEL, after)


def abort(after: float = 0.0) -> Touch:
    return _touch(Gesture.ABORT, after)


def wait(seconds: float) -> Wait:
    if seconds < 0:
        raise ValueError("time does not go backwards")
    return Wait(seconds)


def choose_authenticator(index: int) -> ChooseAuthenticator:
    return ChooseAuthenticator(index)


def choose_account(index: int) -> ChooseAccount:
    return ChooseAccount(index)


def enter_pin(pin: str) -> EnterPin:
    return EnterPin(pin)


def wrong_pin(times: int, pin: str = "000000") -> list[EnterPin]:
    """``times`` wrong PIN entries (use a PIN that is not the authenticator's)."""
    return [EnterPin(pin) for _ in range(times)]


@dataclass(frozen=True, slots=True)
class Prompt:
    """What the user was asked, for assertions in tests."""

    kind: str  # "presence", "authenticator", "account", "pin"
    detail: str = ""
    options: tuple[str, ...] = ()


class ScriptedUser:
    """The person in front of the browser, as a queue of actions (see the module docstring)."""

    def __init__(self, *actions: Action | Iterable[Action]) -> None:
        self._queue: deque[Action] = deque()
        self.prompts: list[Prompt] = []
        self.then(*actions)

    def __repr__(self) -> str:
        return f"ScriptedUser(pending={len(self._queue)})"

    def then(self, *actions: Action | Iterable[Action]) -> ScriptedUser:
        """Queue more actions (lists, e.g. ``wrong_pin(3)``, are flattened)."""
        for action in actions:
            if isinstance(action, Touch | Wait | ChooseAuthenticator | ChooseAccount | EnterPin):
                self._queue.append(action)
            else:
                self._queue.extend(action)
        return self

    @property
    def pending(self) -> tuple[Action, ...]:
        return tuple(self._queue)

    def clear(self) -> None:
        self._queue.clear()

    @property
    def scripts_presence(self) -> bool:
        """A touch or a wait is queued: the script, not the device's own policy, decides."""
        return any(isinstance(action, Touch | Wait) for action in self._queue)

    def assert_done(self) -> None:
        if self._queue:
            raise ScriptError(f"actions left unused: {list(self._queue)}")

    # -- questions a ceremony asks ---------------------------------------------------------

    def presence(self, request: NeedPresence) -> tuple[float, Touch]:
        """Seconds waited, then the gesture, for one presence request."""
        if not self._queue:  # the common case, kept cheap: a prompt user
            return 0.0, APPROVE
        self.prompts.append(
            Prompt("presence", request.reason + (" with UV" if request.user_verification else ""))
        )
        touch = self._take(Touch)
        assert touch is None or isinstance(touch, Touch)  # noqa: S101 - _take's contract
        waited = self._waits()
        return (waited, APPROVE) if touch is None else (waited + touch.after, touch)

    def choose_authenticator(self, names: list[str]) -> tuple[float, int]:
        return self._choose("authenticator", names, ChooseAuthenticator)

    def choose_account(self, names: list[str]) -> tuple[float, int]:
        return self._choose("account", names, ChooseAccount)

    def pin(self, rp_id: str) -> tuple[float, str | None]:
        """The next PIN the user types, or None when the script has none (the user gives up)."""
        self.prompts.append(Prompt("pin", rp_id))
        action = self._take(EnterPin)
        assert action is None or isinstance(action, EnterPin)  # noqa: S101
        return self._waits(), None if action is None else action.pin

    def _choose(
        self, kind: str, names: list[str], action_type: type[ChooseAuthenticator | ChooseAccount]
    ) -> tuple[float, int]:
        self.prompts.append(Prompt(kind, options=tuple(names)))
        if not self._queue:
            return 0.0, 0
        action = self._take(action_type)
        if action is None:
            return self._waits(), 0
        assert isinstance(action, ChooseAuthenticator | ChooseAccount)  # noqa: S101
        if not 0 <= action.index < len(names):
            raise ScriptError(f"choose {kind} {action.index}: only {len(names)} offered")
        return self._waits(), action.index

    def _take(self, kind: type[Action]) -> Action | None:
        """Remove the first action of ``kind``; the Waits queued before it are moved to the
        head, where ``_waits`` counts them."""
        waits: list[Action] = []
        for position, action in enumerate(self._queue):
            if isinstance(action, Wait):
                waits.append(action)
            elif isinstance(action, kind):
                del self._queue[position]
                for wait_action in waits:
                    self._queue.remove(wait_action)
                self._queue.extendleft(reversed(waits))
                return action
        return None

    def _waits(self) -> float:
        waited = 0.0
        while self._queue and isinstance(self._queue[0], Wait):
            action = self._queue.popleft()
            assert isinstance(action, Wait)  # noqa: S101 - narrowed above
            waited += action.seconds
        return waited
