"""A record of every CTAP request and response a client exchanged, decoded for people with
secrets redacted; the pytest plugin prints it when a test fails.

Recording keeps the raw bytes only (decoding costs nothing until a trace is shown), so tracing
can stay on in fast test suites.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from threading import Event
from typing import Any, Final

import cbor2
from fido2.ctap import STATUS, CtapDevice, CtapError
from fido2.hid import CTAPHID

from authenticator.commands import (
    BioEnrollmentKey,
    BioEnrollmentResponseKey,
    ClientPinKey,
    ClientPinResponseKey,
    Command,
    ConfigKey,
    CredentialManagementKey,
    CredentialManagementResponseKey,
    GetAssertionKey,
    GetAssertionResponseKey,
    GetInfoKey,
    LargeBlobsKey,
    LargeBlobsResponseKey,
    MakeCredentialKey,
    MakeCredentialResponseKey,
)
from authenticator.status import CtapStatus

# Members that carry secrets or secret-derived values: PIN material, shared-secret
# agreements, hmac-secret salts and outputs, large-blob keys (CTAP 2.1 §6.5, §12.5, §12.3).
_SECRET_KEYS: Final = frozenset(
    {
        "pinHashEnc",
        "newPinEnc",
        "pinUvAuthToken",
        "pinUvAuthParam",
        "saltEnc",
        "saltAuth",
        "hmac-secret",
        "hmac-secret-mc",
        "largeBlobKey",
        "credBlob",
        "keyAgreement",
    }
)


def _camel(name: str) -> str:
    head, *rest = name.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)


def _names(keys: type[IntEnum]) -> dict[int, str]:
    return {k.value: _camel(k.name) for k in keys}


# Request and response member names per command (CTAP 2.1 §6), from the core's key enums.
_MEMBER_NAMES: Final[dict[int, dict[int, str]]] = {
    Command.MAKE_CREDENTIAL: _names(MakeCredentialKey),
    Command.GET_ASSERTION: _names(GetAssertionKey),
    Command.CLIENT_PIN: _names(ClientPinKey),
    Command.CREDENTIAL_MANAGEMENT: _names(CredentialManagementKey),
    Command.CREDENTIAL_MANAGEMENT_PRE: _names(CredentialManagementKey),
    Command.LARGE_BLOBS: _names(LargeBlobsKey),
    Command.CONFIG: _names(ConfigKey),
    Command.BIO_ENROLLMENT: _names(BioEnrollmentKey),
    Command.BIO_ENROLLMENT_PRE: _names(BioEnrollmentKey),
}
_RESPONSE_NAMES: Final[dict[int, dict[int, str]]] = {
    Command.GET_INFO: _names(GetInfoKey),
    Command.CLIENT_PIN: _names(ClientPinResponseKey),
    Command.MAKE_CREDENTIAL: _names(MakeCredentialResponseKey),
    Command.GET_ASSERTION: _names(GetAssertionResponseKey),
    Command.GET_NEXT_ASSERTION: _names(GetAssertionResponseKey),
    Command.CREDENTIAL_MANAGEMENT: _names(CredentialManagementResponseKey),
    Command.CREDENTIAL_MANAGEMENT_PRE: _names(CredentialManagementResponseKey),
    Command.LARGE_BLOBS: _names(LargeBlobsResponseKey),
    Command.BIO_ENROLLMENT: _names(BioEnrollmentResponseKey),
    Command.BIO_ENROLLMENT_PRE: _names(BioEnrollmentResponseKey),
}


@dataclass(frozen=True, slots=True)
class Exchange:
    """One CTAP2 command and its answer, as bytes on the wire."""

    authenticator: str
    request: bytes = field(repr=False)
    response: bytes = field(repr=False)

    @property
    def command(self) -> str:
        if not self.request:
            return "<empty>"
        try:
            return Command(self.request[0]).name
        except ValueError:
            return f"0x{self.request[0]:02x}"

    @property
    def status(self) -> str:
        if not self.response:
            return "<no response>"
        try:
            return CtapStatus(self.response[0]).name
        except ValueError:
            return f"0x{self.response[0]:02x}"

    def decoded(self) -> tuple[Any, Any]:
        """The request and response maps, with secrets redacted and keys named."""
        command = self.request[0] if self.request else -1
        return (
            _named(_decode(self.request[1:]), _MEMBER_NAMES.get(command, {})),
            _named(_decode(self.response[1:]), _RESPONSE_NAMES.get(command, {})),
        )

    def format(self) -> str:
        request, response = self.decoded()
        return (
            f"[{self.authenticator}] {self.command} -> {self.status}\n"
            f"    request:  {request!r}\n"
            f"    response: {response!r}"
        )


class Trace:
    """The exchanges of one test (or client), in order."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self.notes: list[str] = []

    def __len__(self) -> int:
        return len(self.exchanges)

    def record(self, authenticator: str, request: bytes, response: bytes) -> None:
        self.exchanges.append(Exchange(authenticator, request, response))

    def note(self, text: str) -> None:
        """A client-side event worth showing (user prompts, cancels, timeouts)."""
        self.notes.append(text)
        self.exchanges.append(Exchange("client", b"", text.encode()))

    def commands(self) -> list[str]:
        return [e.command for e in self.exchanges if e.request]

    def format(self) -> str:
        lines = []
        for exchange in self.exchanges:
            if not exchange.request:
                lines.append(f"[client] {exchange.response.decode()}")
            else:
                lines.append(exchange.format())
        return "\n".join(lines)


class RecordingDevice(CtapDevice):
    """A python-fido2 ``CtapDevice`` that records every CTAP2 message it carries into a trace.

    The client hands this to python-fido2's ``ClientPin``, ``LargeBlobs`` and to the
    hmac-secret key agreement, so their getInfo, clientPIN (each PIN attempt), key-agreement
    and largeBlobs exchanges are traced like the ceremony's own commands.
    """

    def __init__(self, device: CtapDevice, name: str, trace: Trace) -> None:
        self.device = device
        self.name = name
        self.trace = trace

    @property
    def capabilities(self) -> int:
        return self.device.capabilities

    def call(
        self,
        cmd: int,
        data: bytes = b"",
        event: Event | None = None,
        on_keepalive: Callable[[STATUS], None] | None = None,
    ) -> bytes:
        try:
            response = self.device.call(cmd, data, event, on_keepalive)
        except CtapError as error:  # some transports raise a status instead of returning it
            if cmd == CTAPHID.CBOR:
                self.trace.record(self.name, bytes(data), bytes([int(error.code)]))
            raise
        if cmd == CTAPHID.CBOR:
            self.trace.record(self.name, bytes(data), bytes(response))
        return response

    def close(self) -> None:
        self.device.close()

    @classmethod
    def list_devices(cls) -> Iterator[CtapDevice]:
        return iter(())


def _decode(data: bytes) -> Any:
    if not data:
        return None
    try:
        return cbor2.loads(data)
    except Exception:  # a malformed message is shown as bytes
        return f"<{len(data)} undecodable bytes: {data[:16].hex()}...>"


def _named(value: Any, names: dict[int, str]) -> Any:
    if not isinstance(value, dict):
        return value
    return {
        names.get(k, k) if isinstance(k, int) else k: _redact(names.get(k, k), v)
        for k, v in value.items()
    }


def _redact(key: Any, value: Any) -> Any:
    if key in _SECRET_KEYS and not isinstance(value, bool | int):  # options/flags are no secret
        if isinstance(value, dict | list):
            return f"<redacted {type(value).__name__}>"
        return f"<redacted {len(value) if isinstance(value, bytes | str) else ''} bytes>"
    if isinstance(value, dict):
        return {k: _redact(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(None, v) for v in value]
    if isinstance(value, bytes) and len(value) > 48:
        return f"{value[:24].hex()}...({len(value)} bytes)"
    return value
