"""``TerminalPrompt`` (``fidoemu serve --presence prompt``) on a pipe instead of a terminal:
answers, stray input, EOF, cancellation and the timeout. The prompt counts its own polls
towards the timeout, so timeouts here are a fraction of a second and nothing asserts on time."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator

import pytest

from authenticator import NeedPresence, Presence
from transports.uhid.prompt import TerminalPrompt

REQUEST = NeedPresence("example.com", reason="makeCredential")
WAIT = 10.0  # how long a test waits for the prompt thread before it fails


class Terminal:
    """A prompt reading a pipe we write to, printing into a buffer we read."""

    def __init__(self, timeout: float) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.out = io.StringIO()
        self.prompt = TerminalPrompt(timeout, stdin_fd=self.read_fd, out=self.out, notify=False)
        self.results: list[Presence] = []
        self._thread: threading.Thread | None = None

    def type(self, text: str) -> None:
        os.write(self.write_fd, text.encode())

    def hang_up(self) -> None:
        os.close(self.write_fd)
        self.write_fd = -1

    def ask_in_background(self, cancelled: threading.Event | None = None) -> None:
        event = cancelled if cancelled is not None else threading.Event()
        self._thread = threading.Thread(
            target=lambda: self.results.append(self.prompt.ask(REQUEST, event)), daemon=True
        )
        self._thread.start()

    def wait_for_output(self, text: str, count: int = 1) -> None:
        deadline = time.monotonic() + WAIT
        while self.out.getvalue().count(text) < count:
            assert time.monotonic() < deadline, f"never printed {text!r}: {self.out.getvalue()!r}"
            time.sleep(0.005)

    def result(self) -> Presence:
        assert self._thread is not None
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "the prompt did not return"
        [result] = self.results
        self.results.clear()
        return result

    def close(self) -> None:
        if self.write_fd >= 0:
            os.close(self.write_fd)
        # the read end stays with the prompt's daemon reader thread, which sees EOF and ends


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal(timeout=30.0)
    yield term
    term.close()


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        ("\n", Presence.APPROVED),
        ("y\n", Presence.APPROVED),
        ("  Yes \n", Presence.APPROVED),
        ("touch\n", Presence.APPROVED),
        ("n\n", Presence.DENIED),
        ("DENY\n", Presence.DENIED),
    ],
)
def test_answers(terminal: Terminal, answer: str, outcome: Presence) -> None:
    terminal.ask_in_background()
    terminal.wait_for_output("touch requested")
    terminal.type(answer)
    assert terminal.result() is outcome


def test_the_question_names_the_relying_party_and_the_timeout(terminal: Terminal) -> None:
    terminal.ask_in_background()
    terminal.wait_for_output("Approve?")
    terminal.type("y\n")
    assert terminal.result() is Presence.APPROVED
    assert "for example.com (makeCredential)" in terminal.out.getvalue()
    assert "(30 s)" in terminal.out.getvalue()


def test_an_unclear_answer_asks_again(terminal: Terminal) -> None:
    terminal.ask_in_background()
    terminal.wait_for_output("touch requested")
    terminal.type("maybe\n")
    terminal.wait_for_output("answer y (or Enter) to approve, n to deny")
    terminal.type("n\n")
    assert terminal.result() is Presence.DENIED


def test_answers_arrive_in_pieces(terminal: Terminal) -> None:
    terminal.ask_in_background()
    terminal.wait_for_output("touch requested")
    terminal.type("ye")
    terminal.type("s\n")
    assert terminal.result() is Presence.APPROVED


def test_input_typed_before_the_question_is_not_an_answer() -> None:
    term = Terminal(timeout=0.2)
    try:
        term.type("\n")  # a stray Enter before anything was asked
        term.ask_in_background()
        assert term.result() is Presence.TIMED_OUT
    finally:
        term.close()


def test_stale_line_between_questions_is_dropped() -> None:
    term = Terminal(timeout=0.2)
    try:
        term.ask_in_background()
        term.wait_for_output("touch requested")
        assert term.result() is Presence.TIMED_OUT
        term.type("y\n")  # answers a question that is over
        time.sleep(0.05)  # let the reader thread queue it (not a timing assertion)
        term.ask_in_background()
        assert term.result() is Presence.TIMED_OUT
    finally:
        term.close()


def test_no_answer_times_out() -> None:
    term = Terminal(timeout=0.15)
    try:
        term.ask_in_background()
        assert term.result() is Presence.TIMED_OUT
        assert "no answer in time" in term.out.getvalue()
    finally:
        term.close()


def test_end_of_input_is_a_timeout_not_an_approval() -> None:
    term = Terminal(timeout=0.15)
    try:
        term.hang_up()
        term.ask_in_background()
        assert term.result() is Presence.TIMED_OUT
        term.ask_in_background()  # and again: EOF is remembered, not re-read
        assert term.result() is Presence.TIMED_OUT
    finally:
        term.close()


def test_cancelled_before_asking_says_nothing(terminal: Terminal) -> None:
    cancelled = threading.Event()
    cancelled.set()
    terminal.ask_in_background(cancelled)
    assert terminal.result() is Presence.CANCELLED
    assert terminal.out.getvalue() == ""


def test_cancelled_while_waiting(terminal: Terminal) -> None:
    cancelled = threading.Event()
    terminal.ask_in_background(cancelled)
    terminal.wait_for_output("touch requested")
    cancelled.set()
    assert terminal.result() is Presence.CANCELLED
    assert "cancelled by the client" in terminal.out.getvalue()
    terminal.ask_in_background()  # the next question is asked and answered normally
    terminal.wait_for_output("touch requested", count=2)
    terminal.type("y\n")
    assert terminal.result() is Presence.APPROVED


def test_a_closed_output_does_not_stop_the_prompt() -> None:
    term = Terminal(timeout=0.15)
    try:
        term.out.close()
        term.ask_in_background()
        assert term.result() is Presence.TIMED_OUT
    finally:
        term.close()
