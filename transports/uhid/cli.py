"""``fidoemu serve`` and ``fidoemu doctor``: the virtual USB security key's commands.

``register(subparsers)`` adds both to the ``fidoemu`` command (``transports.cli``); the module
also runs on its own as ``python -m transports.uhid.cli serve|doctor``.

``serve`` runs one key on the SQLite store every fidoemu command shares by default, advertising
maxMsgSize 1200 (``UHID_MAX_MSG_SIZE``) so that every CTAP request fits in the 31 output
reports uhid can queue. It prints one line ``fidoemu serve: ready <name> on /dev/hidrawN ...``
on stdout when the kernel has created the device, serves until SIGINT/SIGTERM/SIGHUP and
destroys the device on the way out, whatever the cause. Exit codes as in ``transports.cli``:
0 success, 1 a failure the user can act on, 2 usage.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Final

from authenticator import PROFILES, Authenticator, AuthenticatorConfig, deny
from authenticator.presence import PresencePolicy, approve
from transports.ctaphid.session import CtapHidSession
from transports.uhid import doctor
from transports.uhid.device import UHID_PATH, DeviceIdentity, UhidDevice
from transports.uhid.prompt import TerminalPrompt

log = logging.getLogger("fidoemu.uhid.cli")

UHID_MAX_MSG_SIZE: Final = 1200
"""maxMsgSize on this transport: what real keys advertise, and well within the 1827 bytes
(31 packets) that uhid queues without loss (see docs/virtual-key.md, "Limits")."""
PRESENCE_MODES: Final = ("auto", "prompt", "deny")
READY_WAIT: Final = 5.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve`` and ``doctor`` to a ``fidoemu``-style parser; each sets ``func``."""
    serve = subparsers.add_parser(
        "serve",
        help="run a virtual USB FIDO2 security key (Linux, /dev/uhid)",
        description="Creates a FIDO HID device through /dev/uhid that browsers, ssh, libfido2 "
        "and python-fido2 use like a USB security key, backed by the SQLite store. "
        "Run `fidoemu doctor` if it cannot start or browsers cannot see it.",
    )
    serve.add_argument(
        "--profile", choices=sorted(PROFILES), default="security-key", help="what device to be"
    )
    serve.add_argument(
        "--store",
        type=Path,
        metavar="PATH",
        help="SQLite store (default: $XDG_DATA_HOME/fidoemu/store.sqlite)",
    )
    serve.add_argument("--name", help="HID product name (default: 'fidoemu <profile>')")
    serve.add_argument(
        "--serial",
        help="HID serial number (uniq); default: derived from the store path, so every store "
        "is a distinct key",
    )
    serve.add_argument(
        "--presence",
        choices=PRESENCE_MODES,
        default="auto",
        help="auto: every touch request is approved at once; prompt: ask on this terminal "
        "(and as a desktop notification); deny: refuse every touch (default: auto)",
    )
    serve.add_argument(
        "--presence-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="with --presence prompt: how long to wait for an answer (default 30)",
    )
    serve.add_argument(
        "--pin",
        help="set this PIN on a store that has none yet (a store with a PIN keeps it); note "
        "that command lines are visible to other local users",
    )
    serve.add_argument(
        "-v", "--verbose", action="count", default=0, help="log each CTAP command (-vv: debug)"
    )
    serve.add_argument("--uhid", default=UHID_PATH, help=argparse.SUPPRESS)
    serve.set_defaults(func=run_serve)

    check = subparsers.add_parser(
        "doctor",
        help="check /dev/uhid and hidraw permissions and print the exact fix",
        description="Checks that this machine can run `fidoemu serve` (the uhid driver, access "
        "to /dev/uhid) and that browsers can open the virtual key (hidraw permissions, the udev "
        "rule). Exit code 0 when nothing needs fixing, 1 otherwise.",
    )
    check.add_argument(
        "--udev-rule",
        action="store_true",
        help=f"print the udev rule ({doctor.UDEV_RULE_NAME}) instead of checking; install it "
        f"with `fidoemu doctor --udev-rule | sudo tee /etc/udev/rules.d/{doctor.UDEV_RULE_NAME}`",
    )
    check.set_defaults(func=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    if args.udev_rule:
        sys.stdout.write(doctor.UDEV_RULE)
        return 0
    return doctor.report(doctor.run_checks(), sys.stdout)


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("fidoemu")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def usb_config(profile: AuthenticatorConfig) -> AuthenticatorConfig:
    """The profile as a USB key: maxMsgSize at most 1200, and credential management also under
    the FIDO_2_1_PRE command 0x41 (option credentialMgmtPreview), as YubiKey 5.2+ keys offer it,
    because libfido2 1.12 (Debian 12's fido2-token and OpenSSH's ``ssh-keygen -K``) only uses
    that one."""
    return dataclasses.replace(
        profile,
        max_msg_size=min(profile.max_msg_size, UHID_MAX_MSG_SIZE),
        credential_management_preview=(
            profile.credential_management_preview or profile.credential_management
        ),
    )


def default_serial(store_path: Path) -> str:
    """A stable serial per store file: the same key every time it is served."""
    digest = hashlib.sha256(str(store_path.resolve()).encode()).hexdigest()
    return f"fidoemu-{digest[:12]}"


def _presence(mode: str, timeout: float) -> tuple[PresencePolicy | None, TerminalPrompt | None]:
    if mode == "auto":
        return approve, None
    if mode == "deny":
        return deny, None
    return None, TerminalPrompt(timeout)


def run_serve(args: argparse.Namespace) -> int:
    from transports.cli import CommandFailed, default_store_path, open_store

    _configure_logging(args.verbose)
    store_path: Path = args.store if args.store is not None else default_store_path()
    profile = PROFILES[args.profile]
    config = usb_config(profile)
    identity = DeviceIdentity(
        name=args.name or f"fidoemu {args.profile}",
        uniq=args.serial or default_serial(store_path),
    )
    try:
        identity.validate()
    except ValueError as error:
        print(f"fidoemu serve: {error}", file=sys.stderr)
        return 2
    if args.presence_timeout <= 0:
        print("fidoemu serve: --presence-timeout must be positive", file=sys.stderr)
        return 2
    instant, asker = _presence(args.presence, args.presence_timeout)
    try:
        with open_store(store_path) as store:
            authenticator = Authenticator(store=store, config=config)
            if args.pin is not None:
                _preset_pin(authenticator, args.pin)
            # offload: the core runs on the device's worker thread, so KEEPALIVE(PROCESSING)
            # goes out every 100 ms while a slow command computes (CTAP 2.1 §11.2.9.2.1)
            session = CtapHidSession(authenticator, instant_presence=instant, offload=True)
            device = UhidDevice(session, identity, asker=asker, path=args.uhid)
            return _serve(device, store_path, args)
    except CommandFailed as failure:
        print(f"fidoemu serve: {failure}", file=sys.stderr)
        return 1


def _serve(device: UhidDevice, store_path: Path, args: argparse.Namespace) -> int:
    try:
        device.open()
    except OSError as error:
        print(
            f"fidoemu serve: cannot open {device.path}: {error.strerror or error}\n"
            "  run `fidoemu doctor` for the fix",
            file=sys.stderr,
        )
        return 1
    previous = {}

    def stop(signum: int, frame: FrameType | None) -> None:
        device.request_stop()

    try:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, stop)
        sys.setswitchinterval(0.0002)  # let the uhid reader thread take the GIL promptly
        announcer = threading.Thread(
            target=_announce, args=(device, store_path, args), name="announce", daemon=True
        )
        announcer.start()
        device.run()
    finally:
        device.close()  # UHID_DESTROY, whatever ended the loop
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print(f"fidoemu serve: stopped {device.identity.name}", flush=True)
    return 0


def _announce(device: UhidDevice, store_path: Path, args: argparse.Namespace) -> None:
    """Print the ready line once the kernel has made the hidraw node."""
    if not device.started.wait(READY_WAIT):
        print("fidoemu serve: the kernel did not start the device", file=sys.stderr, flush=True)
        return
    nodes: list[Path] = []
    waited = 0.0
    while not nodes and waited < READY_WAIT:
        nodes = device.hidraw_nodes()
        if not nodes:
            time.sleep(0.05)
            waited += 0.05
    where = ", ".join(str(node) for node in nodes) or "(hidraw node not found)"
    print(
        f"fidoemu serve: ready {device.identity.name!r} on {where} "
        f"(serial {device.identity.uniq}, profile {args.profile}, presence {args.presence}, "
        f"store {store_path})",
        flush=True,
    )


def _preset_pin(authenticator: Authenticator, pin: str) -> None:
    """Set a PIN through the ordinary clientPIN protocol (python-fido2 over InProcessDevice),
    only if the store has none, so a wrong --pin never costs a PIN retry."""
    from fido2.ctap import CtapError
    from fido2.ctap2 import Ctap2
    from fido2.ctap2.pin import ClientPin

    from transports.cli import CommandFailed
    from transports.inprocess import InProcessDevice

    ctap2 = Ctap2(InProcessDevice(authenticator))
    options = ctap2.info.options
    if "clientPin" not in options:
        raise CommandFailed(f"the {authenticator.config.name} profile has no PIN")
    if options["clientPin"]:
        log.warning("the store already has a PIN; --pin applies only to a store without one")
        return
    try:
        ClientPin(ctap2).set_pin(pin)
    except CtapError as error:
        raise CommandFailed(f"cannot set the PIN: {error.code.name}") from None
    except ValueError as error:
        raise CommandFailed(f"cannot set the PIN: {error}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m transports.uhid.cli")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
