"""An in-process transport: a ``fido2.ctap.CtapDevice`` that calls the core directly, so
python-fido2's ``Fido2Client``, ``Ctap2`` and ``Ctap1`` drive a virtual authenticator with no
USB, no kernel and no browser.

It carries the CTAPHID commands a client library uses (CBOR, MSG, PING, WINK; CANCEL through
the ``event`` argument), calls ``on_keepalive`` with UPNEEDED while the core waits for the
user, and answers presence requests with an injected policy (default: approve at once).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Final

from fido2.ctap import STATUS, CtapDevice, CtapError
from fido2.hid import CAPABILITY, CTAPHID

from authenticator import Authenticator, NeedPresence, Presence, PresencePolicy, approve
from authenticator.presence import Step

CAPABILITIES: Final = CAPABILITY.WINK | CAPABILITY.CBOR


class InProcessDevice(CtapDevice):
    """A python-fido2 device backed by an in-process ``Authenticator``."""

    def __init__(
        self,
        authenticator: Authenticator | None = None,
        *,
        presence: PresencePolicy = approve,
    ) -> None:
        self.authenticator = authenticator if authenticator is not None else Authenticator()
        self.presence = presence
        self.winks = 0
        self._lock = threading.Lock()

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
        with self._lock:
            if cmd == CTAPHID.CBOR:
                step = self.authenticator.start(bytes(data))
            elif cmd == CTAPHID.MSG and self.authenticator.config.u2f:
                step = self.authenticator.u2f(bytes(data))
            elif cmd == CTAPHID.PING:
                return bytes(data)
            elif cmd == CTAPHID.WINK:
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
                outcome = self.presence(step)
                if event is not None and event.is_set():
                    outcome = Presence.CANCELLED
            step = self.authenticator.resume(outcome)
        return step.response

    def close(self) -> None:
        """Nothing to release: the authenticator outlives the device handle."""

    @classmethod
    def list_devices(cls) -> Iterator[InProcessDevice]:
        """In-process devices are created, not discovered."""
        return iter(())
