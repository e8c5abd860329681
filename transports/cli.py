"""The ``fidoemu`` command: ``demo``, ``info`` and ``bench`` (and ``serve`` from
``transports.uhid`` when that transport is installed).

``demo`` plays both sides of WebAuthn (W3C WebAuthn L3 §7.1 registration, §7.2 authentication)
with python-fido2: a relying party (``Fido2Server``) and a client (``Fido2Client``) talking to
the emulator through ``InProcessDevice``, on the SQLite store that every command shares by
default. It prints each CTAP message decoded, so it doubles as a readable trace of CTAP 2.1.

Exit codes: 0 success, 1 a failure the user can act on (an unusable store file, a failed
verification), 2 a usage error (argparse's convention).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import importlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum, IntEnum
from pathlib import Path
from types import ModuleType
from typing import Any, Final, TextIO

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fido2 import cbor as fido2_cbor
from fido2.attestation import AttestationVerifier
from fido2.attestation.base import AttestationResult, InvalidAttestation
from fido2.client import ClientError, DefaultClientDataCollector, Fido2Client
from fido2.ctap import STATUS, CtapDevice
from fido2.hid import CTAPHID
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestationConveyancePreference,
    AttestedCredentialData,
    AuthenticationResponse,
    AuthenticatorData,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    RegistrationResponse,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from authenticator import PROFILES, Authenticator, SqliteStore, StoreFileError
from authenticator.commands import (
    Command,
    GetAssertionKey,
    GetAssertionResponseKey,
    GetInfoKey,
    MakeCredentialKey,
    MakeCredentialResponseKey,
)
from authenticator.status import CtapStatus
from transports import bench
from transports.inprocess import InProcessDevice


def _optional_module(name: str) -> ModuleType | None:
    """A transport that may not be installed yet (uhid); errors inside it still surface."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as missing:
        if missing.name is None or not name.startswith(missing.name):
            raise
        return None


STORE_FILE: Final = "store.sqlite"
DEMO_RP: Final = PublicKeyCredentialRpEntity(id="demo.fidoemu.example", name="fidoemu demo")
DEMO_ORIGIN: Final = "https://demo.fidoemu.example"
DEMO_USER: Final = PublicKeyCredentialUserEntity(
    id=b"fidoemu-demo-user", name="demo@fidoemu.example", display_name="Demo User"
)
_BYTES_SHOWN: Final = 32  # longer byte strings are abbreviated in traces

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2


def default_store_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/fidoemu/store.sqlite``, else ``~/.local/share/fidoemu/store.sqlite``
    (XDG Base Directory Specification: an empty or relative XDG_DATA_HOME is ignored)."""
    env = os.environ if environ is None else environ
    data_home = env.get("XDG_DATA_HOME", "")
    base = Path(data_home) if os.path.isabs(data_home) else Path.home() / ".local" / "share"
    return base / "fidoemu" / STORE_FILE


class CommandFailed(Exception):
    """A failure with a message for the user; ``main`` prints it and exits 1."""


# -- decoding CTAP messages for the trace ---------------------------------------------------

_KEY_NAMES: Final[dict[int, tuple[type[IntEnum] | None, type[IntEnum] | None]]] = {
    Command.MAKE_CREDENTIAL: (MakeCredentialKey, MakeCredentialResponseKey),
    Command.GET_ASSERTION: (GetAssertionKey, GetAssertionResponseKey),
    Command.GET_NEXT_ASSERTION: (None, GetAssertionResponseKey),
    Command.GET_INFO: (None, GetInfoKey),
}
_AUTH_DATA_KEYS: Final = (MakeCredentialResponseKey.AUTH_DATA, GetAssertionResponseKey.AUTH_DATA)


def _enum_name(enum: type[IntEnum] | None, value: object) -> str:
    if enum is not None and isinstance(value, int) and value in enum._value2member_map_:
        return f"{enum(value).name.lower()} ({value})"
    return repr(value) if not isinstance(value, str) else value


def _command_name(code: int) -> str:
    try:
        return f"authenticator{Command(code).name.title().replace('_', '')} (0x{code:02x})"
    except ValueError:
        return f"command 0x{code:02x}"


def render(value: object, indent: int = 1) -> list[str]:
    """Lines describing a decoded CBOR (or JSON) value, YAML-like; long bytes abbreviated."""
    pad = "  " * indent
    if isinstance(value, Mapping):
        lines = []
        for key, item in value.items():
            lines.extend(_render_item(pad, _enum_name(None, key), item, indent))
        return lines
    if isinstance(value, list):
        lines = []
        for item in value:
            lines.extend(_render_item(pad, "-", item, indent))
        return lines
    return [pad + _scalar(value)]


def _render_item(pad: str, label: str, item: object, indent: int) -> list[str]:
    inline = _inline(item)
    if inline is not None:
        return [f"{pad}{label}: {inline}"]
    return [f"{pad}{label}:", *render(item, indent + 1)]


def _inline(value: object) -> str | None:
    """A one-line form for scalars and for small flat lists and maps, else None."""
    if isinstance(value, Mapping):
        parts = [f"{_enum_name(None, k)}: {_scalar(v)}" for k, v in value.items() if _flat(v)]
        text = "{" + ", ".join(parts) + "}"
    elif isinstance(value, list):
        parts = [_inline(v) or "" for v in value]
        text = "[" + ", ".join(parts) + "]"
        if not all(parts):
            return None
    else:
        return _scalar(value)
    if len(parts) != len(value) or len(text) > 72:
        return None
    return text


def _flat(value: object) -> bool:
    return not isinstance(value, Mapping | list)


def _scalar(value: object) -> str:
    if isinstance(value, Enum):  # python-fido2's option enums: show the wire value
        value = value.value
    if isinstance(value, bytes):
        if len(value) <= _BYTES_SHOWN:
            return f"h'{value.hex()}'"
        return f"h'{value[:_BYTES_SHOWN].hex()}…' ({len(value)} bytes)"
    if isinstance(value, Mapping | list):
        return "{}" if isinstance(value, Mapping) else "[]"
    return repr(value)


def describe_auth_data(data: bytes, indent: int) -> list[str]:
    """Authenticator data (WebAuthn §6.1) field by field."""
    pad = "  " * indent
    try:
        auth_data = AuthenticatorData(data)
    except Exception:  # a trace must never fail on what it merely displays
        return [f"{pad}(undecodable authenticator data, {len(data)} bytes)"]
    flags = [f.name for f in AuthenticatorData.FLAG if f in AuthenticatorData.FLAG(auth_data.flags)]
    lines = [
        f"{pad}rpIdHash: h'{auth_data.rp_id_hash.hex()}'",
        f"{pad}flags: {' | '.join(str(f) for f in flags) or 'none'}",
        f"{pad}signCount: {auth_data.counter}",
    ]
    credential = auth_data.credential_data
    if credential is not None:
        public_key = dict(credential.public_key)
        lines += [
            f"{pad}aaguid: {credential.aaguid}",
            f"{pad}credentialId: {_scalar(credential.credential_id)}",
            f"{pad}credentialPublicKey: COSE kty {public_key.get(1)}, alg {public_key.get(3)}",
        ]
    if auth_data.extensions:
        lines.append(f"{pad}extensions: {auth_data.extensions!r}")
    return lines


def describe_message(data: bytes, keys: type[IntEnum] | None, indent: int = 2) -> list[str]:
    """A CTAP2 parameter or response map with the spec's member names."""
    pad = "  " * indent
    try:
        decoded = fido2_cbor.decode(data)
    except Exception:
        return [f"{pad}(not CBOR: {_scalar(data)})"]
    if not isinstance(decoded, Mapping):
        return render(decoded, indent)
    lines: list[str] = []
    for key, value in decoded.items():
        label = _enum_name(keys, key)
        if keys in (MakeCredentialResponseKey, GetAssertionResponseKey) and key in _AUTH_DATA_KEYS:
            lines.append(f"{pad}{label}: ({len(value)} bytes)")
            lines.extend(describe_auth_data(value, indent + 1))
        else:
            lines.extend(_render_item(pad, label, value, indent))
    return lines


class TracingDevice(CtapDevice):
    """A ``CtapDevice`` that prints every CTAPHID call to ``out``, decoded, then forwards it."""

    def __init__(self, device: CtapDevice, out: TextIO) -> None:
        self._device = device
        self._out = out
        self._last_info: bytes | None = None  # clients ask getInfo repeatedly; show it once

    @property
    def capabilities(self) -> int:
        return self._device.capabilities

    def close(self) -> None:
        self._device.close()

    @classmethod
    def list_devices(cls) -> Iterator[CtapDevice]:
        return iter(())

    def call(
        self,
        cmd: int,
        data: bytes = b"",
        event: threading.Event | None = None,
        on_keepalive: Callable[[STATUS], None] | None = None,
    ) -> bytes:
        if cmd != CTAPHID.CBOR or not data:
            self._print(f"  → CTAPHID 0x{cmd:02x} ({len(data)} bytes)")
            response = self._device.call(cmd, data, event, on_keepalive)
            self._print(f"  ← {len(response)} bytes")
            return response
        command = data[0]
        request_keys, response_keys = _KEY_NAMES.get(command, (None, None))
        self._print(f"  → {_command_name(command)}")
        if len(data) > 1:
            self._print(*describe_message(data[1:], request_keys))
        response = self._device.call(cmd, data, event, on_keepalive)
        status = _status_name(response[0]) if response else "(empty)"
        if command == Command.GET_INFO:
            if response == self._last_info:
                self._print(f"  ← {status}, the same getInfo as above")
                return response
            self._last_info = response
        self._print(f"  ← {status}")
        if len(response) > 1:
            self._print(*describe_message(response[1:], response_keys))
        return response

    def _print(self, *lines: str) -> None:
        for line in lines:
            print(line, file=self._out)


def _status_name(status: int) -> str:
    try:
        return f"{CtapStatus(status).name} (0x{status:02x})"
    except ValueError:
        return f"status 0x{status:02x}"


# -- the stores ------------------------------------------------------------------------------


@contextmanager
def open_store(path: Path) -> Iterator[SqliteStore]:
    """The SQLite store at ``path``; unusable files become a ``CommandFailed``."""
    try:
        store = SqliteStore(path)
    except StoreFileError as exc:
        raise CommandFailed(
            f"cannot use the store file: {exc}\n"
            f"  (move it away, or choose another file with --store PATH)"
        ) from None
    except OSError as exc:
        raise CommandFailed(f"cannot open the store file {path}: {exc.strerror or exc}") from None
    try:
        yield store
    finally:
        store.close()


@dataclass
class DemoRecord:
    """What the demo relying party remembers about its one user's credential (its database)."""

    credential: AttestedCredentialData
    sign_count: int

    @classmethod
    def load(cls, path: Path) -> DemoRecord | None:
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            return cls(
                AttestedCredentialData(base64.b64decode(data["credential"], validate=True)),
                int(data["sign_count"]),
            )
        except (OSError, ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise CommandFailed(
                f"the demo relying party's record {path} is unreadable ({exc}); delete it to "
                "register a new demo credential"
            ) from None

    def save(self, path: Path) -> None:
        data = {
            "rp_id": DEMO_RP.id,
            "credential": base64.b64encode(bytes(self.credential)).decode(),
            "sign_count": self.sign_count,
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)


def demo_record_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".demo-rp.json")


# -- fidoemu demo ----------------------------------------------------------------------------


class RootVerifier(AttestationVerifier):
    """Trusts exactly one root certificate: the store's attestation root."""

    def __init__(self, root_pem: str) -> None:
        super().__init__()
        self.root = x509.load_pem_x509_certificate(root_pem.encode())

    def ca_lookup(self, attestation_result: AttestationResult, auth_data: Any) -> bytes | None:
        return self.root.public_bytes(Encoding.DER)


def _section(out: TextIO, title: str) -> None:
    print(f"\n== {title} ==", file=out)


def run_demo(store_path: Path, profile: str, out: TextIO) -> int:
    record_path = demo_record_path(store_path)
    print(f"store: {store_path}", file=out)
    print(f"relying party: {DEMO_RP.id} ({DEMO_ORIGIN}), its records: {record_path}", file=out)
    with open_store(store_path) as store:
        auth = Authenticator(store, config=PROFILES[profile])
        device = TracingDevice(InProcessDevice(auth), out)
        client = Fido2Client(device, DefaultClientDataCollector(DEMO_ORIGIN))
        verifier = RootVerifier(auth.attestation_root_pem())
        server = Fido2Server(
            DEMO_RP,
            attestation=AttestationConveyancePreference.DIRECT,
            verify_attestation=verifier,
        )
        record = DemoRecord.load(record_path)
        if record is not None and store.get(record.credential.credential_id) is None:
            print(
                "The relying party knows a credential this store does not hold (was the store "
                "reset or replaced?): registering a new one.",
                file=out,
            )
            record = None
        if record is None:
            record = _demo_register(server, client, verifier, out)
            record.save(record_path)
        else:
            _section(out, "Registration: skipped")
            print(
                f"The relying party already has credential "
                f"{record.credential.credential_id.hex()} for {DEMO_USER.name}, and the store "
                f"holds it: logging in with it (last signature counter seen: "
                f"{record.sign_count}).",
                file=out,
            )
        new_count = _demo_login(server, client, record, out)
        previous, record.sign_count = record.sign_count, new_count
        record.save(record_path)
    _section(out, "Summary")
    print(f"signature counter: {previous} → {new_count}", file=out)
    if new_count <= previous:
        print("the counter did not increase: a relying party would suspect a cloned key", file=out)
        return EXIT_FAILURE
    print("Run `fidoemu demo` again: it logs in with the same passkey, counter +1.", file=out)
    return EXIT_OK


def _demo_register(
    server: Fido2Server, client: Fido2Client, verifier: RootVerifier, out: TextIO
) -> DemoRecord:
    _section(out, "Registration: the relying party's options")
    options, state = server.register_begin(
        DEMO_USER,
        resident_key_requirement=ResidentKeyRequirement.REQUIRED,
        user_verification=UserVerificationRequirement.DISCOURAGED,
    )
    print(*render(dict(options)), sep="\n", file=out)
    _section(out, "Registration: the client talks to the authenticator (CTAP 2.1 §6.1)")
    try:
        response = client.make_credential(options.public_key)
    except ClientError as exc:
        raise CommandFailed(f"registration failed in the client: {exc!r}") from None
    _section(out, "Registration: the relying party verifies")
    _report_attestation(response, verifier, out)
    try:
        auth_data = server.register_complete(state, response)
    except (ValueError, InvalidAttestation) as exc:
        raise CommandFailed(f"the relying party rejected the registration: {exc}") from None
    credential = auth_data.credential_data
    if credential is None:
        raise CommandFailed("the registration carries no credential")
    print(
        f"registration verified (Fido2Server.register_complete): credential "
        f"{credential.credential_id.hex()}, sign count {auth_data.counter}",
        file=out,
    )
    return DemoRecord(credential, auth_data.counter)


def _report_attestation(
    response: RegistrationResponse, verifier: RootVerifier, out: TextIO
) -> None:
    attestation = response.response.attestation_object
    statement = attestation.att_stmt
    print(f"attestation format: {attestation.fmt}", file=out)
    chain = [x509.load_der_x509_certificate(der) for der in statement.get("x5c", [])]
    for position, certificate in enumerate(chain):
        print(f"  x5c[{position}]: {certificate.subject.rfc4514_string()}", file=out)
    print(f"  trusted root: {verifier.root.subject.rfc4514_string()}", file=out)
    try:
        verifier.verify_attestation(attestation, response.response.client_data.hash)
    except InvalidAttestation as exc:
        raise CommandFailed(f"attestation verification failed: {exc!r}") from None
    print("  attestation signature valid; x5c chain verified up to the store's root", file=out)


def _demo_login(server: Fido2Server, client: Fido2Client, record: DemoRecord, out: TextIO) -> int:
    _section(out, "Login: the relying party's options (no allowCredentials: a passkey login)")
    options, state = server.authenticate_begin(
        user_verification=UserVerificationRequirement.DISCOURAGED
    )
    print(*render(dict(options)), sep="\n", file=out)
    _section(out, "Login: the client talks to the authenticator (CTAP 2.1 §6.2)")
    try:
        selection = client.get_assertion(options.public_key)
    except ClientError as exc:
        raise CommandFailed(f"login failed in the client: {exc!r}") from None
    response: AuthenticationResponse = selection.get_response(0)
    _section(out, "Login: the relying party verifies")
    user_handle = response.response.user_handle
    print(f"user handle returned: {user_handle!r}", file=out)
    if user_handle != DEMO_USER.id:
        raise CommandFailed("the authenticator answered for another user")
    try:
        server.authenticate_complete(state, [record.credential], response)
    except ValueError as exc:
        raise CommandFailed(f"the relying party rejected the login: {exc}") from None
    count = response.response.authenticator_data.counter
    print(
        f"assertion verified (Fido2Server.authenticate_complete): signature valid with the "
        f"registered public key; signature counter {count} (previously {record.sign_count})",
        file=out,
    )
    return count


# -- fidoemu info ----------------------------------------------------------------------------


def run_info(store_path: Path, profile: str, out: TextIO) -> int:
    with open_store(store_path) as store:
        auth = Authenticator(store, config=PROFILES[profile])
        response = InProcessDevice(auth).call(CTAPHID.CBOR, bytes([Command.GET_INFO]))
        print(f"store: {store_path}", file=out)
        print(f"profile: {profile}", file=out)
        print(f"authenticatorGetInfo → {_status_name(response[0])}", file=out)
        for line in describe_message(response[1:], GetInfoKey, indent=1):
            print(line, file=out)
        print("\nattestation root certificate (trust it to verify packed attestation):", file=out)
        print(auth.attestation_root_pem(), end="", file=out)
    return EXIT_OK


# -- fidoemu bench ---------------------------------------------------------------------------


def run_bench(args: argparse.Namespace, out: TextIO) -> int:
    settings = bench.BenchSettings(
        rounds=args.rounds,
        batch=args.batch,
        sqlite_batch=args.sqlite_batch,
        sqlite=not args.no_sqlite,
    )
    print(
        f"{settings.rounds} alternating rounds, medians; µs per operation; "
        "baseline = the lean pipeline (see `fidoemu bench --help`)",
        file=out,
    )
    print(bench.HEADER, file=out)
    bench.run(settings, progress=lambda row: print(bench.format_row(row), file=out, flush=True))
    return EXIT_OK


# -- argument parsing ------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fidoemu",
        description="A software FIDO2/CTAP2 authenticator emulator.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    store_help = f"the SQLite store file (default: {default_store_path()})"

    demo = commands.add_parser(
        "demo",
        help="register with and log in to a relying party, printing every step",
        description="A full WebAuthn registration, then a login, of python-fido2's Fido2Server "
        "against the emulator, printing each CTAP message decoded. Run it twice: the second "
        "run logs in with the stored passkey and its counter goes up.",
    )
    demo.add_argument("--store", type=Path, metavar="PATH", help=store_help)
    demo.add_argument("--profile", choices=sorted(PROFILES), default="security-key")
    demo.set_defaults(func=lambda args: run_demo(_store(args), args.profile, sys.stdout))

    info = commands.add_parser(
        "info",
        help="print authenticatorGetInfo and the store's attestation root certificate",
    )
    info.add_argument("--store", type=Path, metavar="PATH", help=store_help)
    info.add_argument("--profile", choices=sorted(PROFILES), default="security-key")
    info.set_defaults(func=lambda args: run_info(_store(args), args.profile, sys.stdout))

    bench_parser = commands.add_parser(
        "bench",
        help="measure the cost per CTAP command against a lean pipeline",
        description="Measures makeCredential (resident), getAssertion (discoverable) and "
        "getAssertion (allow list, non-resident) through InProcessDevice.call against a lean "
        "pipeline that does only the unavoidable work (CBOR decode, rpId hash, key generation, "
        "signature, CBOR encode), in alternating rounds; prints medians and ratios, with the "
        "in-memory store and with SQLite on a temporary file.",
    )
    defaults = bench.BenchSettings()
    bench_parser.add_argument("--rounds", type=_positive, default=defaults.rounds)
    bench_parser.add_argument(
        "--batch", type=_positive, default=defaults.batch, help="operations per round and side"
    )
    bench_parser.add_argument(
        "--sqlite-batch", type=_positive, default=defaults.sqlite_batch, metavar="N"
    )
    bench_parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite rows")
    bench_parser.set_defaults(func=lambda args: run_bench(args, sys.stdout))

    uhid_cli = _optional_module("transports.uhid.cli")
    if uhid_cli is not None:
        uhid_cli.register(commands)  # adds ``serve``; its subparsers set ``func`` as ours do
    return parser


def _store(args: argparse.Namespace) -> Path:
    path: Path | None = args.store
    return default_store_path() if path is None else path


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)  # usage errors: a message on stderr, exit code 2
    except SystemExit as exit_request:  # also --help (0); return the code to callers of main()
        return exit_request.code if isinstance(exit_request.code, int) else EXIT_USAGE
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return func(args)
    except CommandFailed as exc:
        print(f"fidoemu {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
