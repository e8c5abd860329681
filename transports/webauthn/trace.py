"""A record of every CTAP request and response a client exchanged, decoded for people with
secrets redacted; the pytest plugin prints it when a test fails.

Recording keeps the raw bytes only (decoding costs nothing until a trace is shown), so tracing
can stay on in fast test suites.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import cbor2

from authenticator.commands import Command, GetAssertionKey, MakeCredentialKey
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


_MEMBER_NAMES: Final[dict[int, dict[int, str]]] = {
    Command.MAKE_CREDENTIAL: {k.value: _camel(k.name) for k in MakeCredentialKey},
    Command.GET_ASSERTION: {k.value: _camel(k.name) for k in GetAssertionKey},
    Command.CLIENT_PIN: {
        1: "pinUvAuthProtocol",
        2: "subCommand",
        3: "keyAgreement",
        4: "pinUvAuthParam",
        5: "newPinEnc",
        6: "pinHashEnc",
        9: "permissions",
        10: "rpId",
    },
}
_RESPONSE_NAMES: Final[dict[int, dict[int, str]]] = {
    Command.CLIENT_PIN: {
        1: "keyAgreement",
        2: "pinUvAuthToken",
        3: "pinRetries",
        4: "powerCycleState",
        5: "uvRetries",
    },
    Command.MAKE_CREDENTIAL: {1: "fmt", 2: "authData", 3: "attStmt", 5: "largeBlobKey"},
    Command.GET_ASSERTION: {
        1: "credential",
        2: "authData",
        3: "signature",
        4: "user",
        5: "numberOfCredentials",
        6: "userSelected",
        7: "largeBlobKey",
    },
    Command.GET_NEXT_ASSERTION: {
        1: "credential",
        2: "authData",
        3: "signature",
        4: "user",
        7: "largeBlobKey",
    },
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
    if key in _SECRET_KEYS:
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
