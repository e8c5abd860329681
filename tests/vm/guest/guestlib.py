"""Helpers for the tests that run inside the VM guest: ``fidoemu serve`` as a child process
(``Key``), raw hidraw access for protocol-level checks (``RawHid``) and timeouts around client
calls (python-fido2 reads block forever if a packet is lost)."""

from __future__ import annotations

import contextlib
import os
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final, TypeVar

from fido2.hid import CtapHidDevice, open_device

from transports.ctaphid.constants import BROADCAST_CID, HidCommand
from transports.ctaphid.packets import InitPacket, fragment, parse_packet

REPO: Final = Path(__file__).resolve().parents[3]
START_TIMEOUT: Final = 120.0  # a cold start under TCG reads every module over 9p
CALL_TIMEOUT: Final = 60.0
T = TypeVar("T")


def within(seconds: float, call: Callable[[], T]) -> T:
    """Run ``call`` in a thread; fail (instead of hanging the VM) if it takes too long."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {seconds} s")
    if error:
        raise error[0]
    return result[0]


class Key:
    """One ``fidoemu serve`` process (the real CLI: ``python -m transports.cli serve``)."""

    def __init__(
        self, workdir: Path, name: str, *extra: str, presence: str = "auto", verbose: bool = True
    ) -> None:
        self.name = name
        self.store = workdir / f"{name.replace(' ', '-')}.sqlite"
        self.log = workdir / f"{name.replace(' ', '-')}.log"
        self.command = [
            sys.executable,
            "-m",
            "transports.cli",
            "serve",
            "--store",
            str(self.store),
            "--name",
            name,
            "--presence",
            presence,
            *(["-v"] if verbose else []),
            *extra,
        ]
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - our own CLI
            self.command,
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
        )
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        self.hidraw, self.serial = self._wait_ready()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self._lines.put(raw.decode(errors="replace").rstrip("\n"))

    def _wait_ready(self) -> tuple[str, str]:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"serve exited {self.process.returncode}: {self.logs()}"
                    ) from None
                continue
            if " ready " in line and " on /dev/hidraw" in line:
                hidraw = line.split(" on ", 1)[1].split(" ", 1)[0].rstrip(",")
                serial = line.split("(serial ", 1)[1].split(",", 1)[0]
                return hidraw, serial
        self.process.kill()
        raise TimeoutError(f"serve not ready in {START_TIMEOUT} s: {self.logs()}")

    def logs(self) -> str:
        """What the key wrote to stderr so far (its -v log and its prompts)."""
        return self.log.read_text(errors="replace")

    def prompts(self) -> int:
        return self.logs().count("touch requested")

    @contextlib.contextmanager
    def answering(self, answer: str) -> Iterator[None]:
        """While in the block, answer every new "touch requested" prompt with ``answer``.

        Counting prompts is not enough to answer exactly one: a question the client cancelled
        may print its prompt late, and its answer is then discarded by the next question
        (which drops lines typed before it was asked), so every new prompt gets an answer.
        """
        done = threading.Event()
        seen = self.prompts()

        def answer_prompts() -> None:
            nonlocal seen
            while not done.wait(0.02):
                count = self.prompts()
                if count > seen:
                    seen = count
                    assert self.process.stdin is not None
                    self.process.stdin.write(answer.encode() + b"\n")
                    self.process.stdin.flush()

        thread = threading.Thread(target=answer_prompts, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def open(self) -> CtapHidDevice:
        return within(CALL_TIMEOUT, lambda: open_device(self.hidraw))

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Stop the key like a user would; SIGKILL only if it ignores ``sig`` for 20 s."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_file.close()
        return self.process.returncode


class RawHid:
    """A hidraw node opened directly: write 64-byte packets, read with a timeout."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def write(self, packet: bytes) -> None:
        assert len(packet) == 64
        os.write(self.fd, b"\0" + packet)  # report ID 0, then the packet

    def read(self, timeout: float = 10.0) -> bytes | None:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        return os.read(self.fd, 64) if ready else None

    def send(self, cid: int, command: int, payload: bytes, pace: float = 0.0) -> None:
        """Write a message's packets; ``pace`` seconds between them keeps a long request from
        overrunning uhid's 31-report output queue, whose overflow the kernel drops silently."""
        for index, packet in enumerate(fragment(cid, command, payload)):
            if pace and index:
                time.sleep(pace)
            self.write(packet)

    def receive(self, cid: int | None = None, timeout: float = 10.0) -> tuple[int, int, bytes]:
        """The next whole message (cid, command, payload) on channel ``cid`` (any if None).

        Every reader of a hidraw node sees every input report, so messages for other
        channels (another client's INIT response) are skipped.
        """
        while True:
            message = self._receive_any(timeout)
            if cid is None or message[0] == cid:
                return message

    def _receive_any(self, timeout: float) -> tuple[int, int, bytes]:
        first = self.read(timeout)
        if first is None:
            raise TimeoutError("no packet from the device")
        packet = parse_packet(first)
        assert isinstance(packet, InitPacket), "expected an initialization packet"
        payload = bytearray(packet.data)
        sequence = 0
        while len(payload) < packet.length:
            more = self.read(timeout)
            if more is None:
                raise TimeoutError("message incomplete")
            header = struct.unpack_from(">IB", more)
            assert header == (packet.cid, sequence), f"lost a packet: got {header}, {sequence=}"
            sequence += 1
            payload += more[5 : 5 + packet.length - len(payload)]
        return packet.cid, packet.command, bytes(payload)

    def init(self) -> int:
        nonce = os.urandom(8)
        self.send(BROADCAST_CID, HidCommand.INIT, nonce)
        while True:
            _, command, payload = self.receive(BROADCAST_CID)
            if command == HidCommand.INIT and payload[:8] == nonce:
                channel: int = struct.unpack_from(">I", payload, 8)[0]
                return channel
