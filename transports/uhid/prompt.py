"""Asking a person for a touch: ``TerminalPrompt`` reads answers from stdin (a terminal or a
pipe) with a timeout, and pops up a desktop notification where ``notify-send`` exists.

It implements ``transports.uhid.device.PresenceAsker``: each question runs in its own thread
and returns a ``Presence``. One reader thread owns stdin for the life of the process, so a
question that is abandoned (the client cancelled) leaves no blocked read behind; lines typed
before a question is asked are discarded, so a stray Enter never approves a later request.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import shutil
import subprocess
import sys
import threading
from typing import Final, TextIO

from authenticator import NeedPresence, Presence

POLL: Final = 0.05
APPROVE: Final = frozenset({"", "y", "yes", "t", "touch"})
DENY: Final = frozenset({"n", "no", "d", "deny"})
_EOF: Final = object()


class TerminalPrompt:
    """Presence from a person at a terminal: Enter or ``y`` approves, ``n`` denies."""

    def __init__(
        self,
        timeout: float = 30.0,
        *,
        stdin_fd: int | None = None,
        out: TextIO | None = None,
        notify: bool = True,
    ) -> None:
        self.timeout = timeout
        self._stdin_fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
        self._out = out if out is not None else sys.stderr
        self._notify = notify and shutil.which("notify-send") is not None
        self._lines: queue.SimpleQueue[str | object] = queue.SimpleQueue()
        self._reader: threading.Thread | None = None
        self._one_question = threading.Lock()
        self._eof = False

    def ask(self, request: NeedPresence, cancelled: threading.Event) -> Presence:
        with self._one_question:
            if cancelled.is_set():  # moot before it could be asked: say nothing
                return Presence.CANCELLED
            self._start_reader()
            while not self._lines.empty():  # answers to nothing are dropped
                if self._lines.get_nowait() is _EOF:
                    self._eof = True
            what = request.reason
            who = f" for {request.rp_id}" if request.rp_id else ""
            verify = " and verify the user" if request.user_verification else ""
            self._say(
                f"fidoemu: touch requested{who} ({what}){verify}. "
                f"Approve? [Y/n] ({self.timeout:g} s)"
            )
            self._desktop_notification(f"Security key: touch requested{who}", what)
            waited = 0.0
            while waited < self.timeout:
                if cancelled.is_set():
                    self._say("fidoemu: request cancelled by the client")
                    return Presence.CANCELLED
                if self._eof:
                    cancelled.wait(min(POLL, self.timeout - waited))
                    waited += POLL
                    continue
                try:
                    line = self._lines.get(timeout=POLL)
                except queue.Empty:
                    waited += POLL
                    continue
                if line is _EOF:
                    self._eof = True
                    continue
                answer = str(line).strip().lower()
                if answer in APPROVE:
                    return Presence.APPROVED
                if answer in DENY:
                    return Presence.DENIED
                self._say("fidoemu: answer y (or Enter) to approve, n to deny")
            self._say("fidoemu: no answer in time")
            return Presence.TIMED_OUT

    def _say(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # a closed terminal must not stop the key
            print(text, file=self._out, flush=True)

    def _desktop_notification(self, summary: str, body: str) -> None:
        if not self._notify or not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            return
        try:
            subprocess.Popen(  # noqa: S603 - fixed program, arguments are data
                ["notify-send", "--app-name=fidoemu", "--expire-time=10000", summary, body],  # noqa: S607
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            self._notify = False

    def _start_reader(self) -> None:
        if self._reader is not None:
            return
        self._discard_waiting_input()

        def read_lines() -> None:
            pending = b""
            while True:
                try:
                    chunk = os.read(self._stdin_fd, 1024)
                except OSError:
                    chunk = b""
                if not chunk:
                    self._lines.put(_EOF)
                    return
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._lines.put(line.decode(errors="replace"))

        self._reader = threading.Thread(target=read_lines, name="presence-stdin", daemon=True)
        self._reader.start()

    def _discard_waiting_input(self) -> None:
        """Drop what was typed before the first question: the reader thread would otherwise
        queue it only after ``ask`` has dropped stale answers, and a stray Enter would approve."""
        with contextlib.suppress(OSError, ValueError):
            while select.select([self._stdin_fd], [], [], 0)[0]:
                if not os.read(self._stdin_fd, 1024):
                    self._lines.put(_EOF)
                    return
