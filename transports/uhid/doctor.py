"""``fidoemu doctor``: can this machine run a virtual key, and can browsers open it?

Checks, each with the exact fix: the uhid driver (/dev/uhid exists; if not, whether the module
is loaded, loadable or missing from the kernel), access to /dev/uhid for the user running
``fidoemu serve``, FIDO hidraw nodes and who can open them (browsers run unprivileged), and
whether our udev rule is installed. Every check reads the file system under injectable roots,
so tests run it against a fake /dev and /sys.
"""

from __future__ import annotations

import grp
import gzip
import os
import platform
import pwd
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Final, TextIO

from transports.uhid.events import FIDO_USAGE_PAGE

UDEV_RULE_NAME: Final = "70-fidoemu.rules"
UDEV_RULE_DIRS: Final = ("etc/udev/rules.d", "lib/udev/rules.d", "usr/lib/udev/rules.d")
MODULES_LOAD_FILE: Final = "/etc/modules-load.d/fidoemu.conf"
GROUP: Final = "fidoemu"
_FIDO_PAGE_ITEM: Final = bytes([0x06, FIDO_USAGE_PAGE & 0xFF, FIDO_USAGE_PAGE >> 8])


class Verdict(Enum):
    OK = "ok"
    WARN = "warning"
    FAIL = "problem"


@dataclass(frozen=True, slots=True)
class Finding:
    verdict: Verdict
    summary: str
    fix: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class System:
    """Where to look (tests point these at a temporary tree) and who is asking."""

    root: Path = Path("/")
    uid: int = field(default_factory=os.getuid)
    gids: frozenset[int] = field(default_factory=lambda: frozenset(os.getgroups()))
    kernel_release: str = field(default_factory=platform.release)
    user: str = field(default_factory=lambda: os.environ.get("SUDO_USER") or _user_name())

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _may_read_write(system: System, info: os.stat_result) -> bool:
    mode = info.st_mode
    if system.uid == 0:
        return True
    if info.st_uid == system.uid:
        return mode & (stat.S_IRUSR | stat.S_IWUSR) == (stat.S_IRUSR | stat.S_IWUSR)
    if info.st_gid in system.gids:
        return mode & (stat.S_IRGRP | stat.S_IWGRP) == (stat.S_IRGRP | stat.S_IWGRP)
    return mode & (stat.S_IROTH | stat.S_IWOTH) == (stat.S_IROTH | stat.S_IWOTH)


def _owner(info: os.stat_result) -> str:
    try:
        user = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        user = str(info.st_uid)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    return f"{stat.filemode(info.st_mode)} {user}:{group}"


def _kernel_has_uhid(system: System) -> str | None:
    """'y', 'm' or None (not configured or unknown), from the kernel's build config."""
    candidates = [
        system.path(f"/boot/config-{system.kernel_release}"),
        system.path("/proc/config.gz"),
    ]
    for candidate in candidates:
        try:
            raw = candidate.read_bytes()
            text = gzip.decompress(raw) if candidate.suffix == ".gz" else raw
        except (OSError, EOFError, gzip.BadGzipFile):
            continue
        for line in text.decode(errors="replace").splitlines():
            if line.startswith("CONFIG_UHID="):
                return line.split("=", 1)[1]
        return None
    return None


def check_uhid(system: System) -> list[Finding]:
    device = system.path("/dev/uhid")
    modules = system.path(f"/lib/modules/{system.kernel_release}")
    try:
        info = device.stat()
    except FileNotFoundError:
        loaded = system.path("/sys/module/uhid").exists()
        config = _kernel_has_uhid(system)
        module_files = list(modules.glob("kernel/drivers/hid/uhid.ko*")) if modules.exists() else []
        if loaded:
            return [
                Finding(
                    Verdict.FAIL,
                    "the uhid module is loaded but /dev/uhid is missing (no devtmpfs/udev?)",
                    ("sudo mknod -m 0660 /dev/uhid c 10 239",),
                )
            ]
        if config in ("m", "y") or module_files:
            return [
                Finding(
                    Verdict.FAIL,
                    "/dev/uhid is missing: the uhid module is not loaded",
                    (
                        "sudo modprobe uhid",
                        f"echo uhid | sudo tee {MODULES_LOAD_FILE}   # load it at every boot",
                    ),
                )
            ]
        return [
            Finding(
                Verdict.FAIL,
                f"/dev/uhid is missing and kernel {system.kernel_release} has no uhid driver "
                "(CONFIG_UHID)",
                (
                    "use a kernel built with CONFIG_UHID=m (every Debian/Ubuntu/Fedora kernel "
                    "is), or run fidoemu in a VM with one (see tests/vm/)",
                ),
            )
        ]
    if not stat.S_ISCHR(info.st_mode):
        return [Finding(Verdict.FAIL, "/dev/uhid is not a character device")]
    if _may_read_write(system, info):
        return [Finding(Verdict.OK, f"/dev/uhid is usable by {system.user} ({_owner(info)})")]
    return [
        Finding(
            Verdict.FAIL,
            f"/dev/uhid ({_owner(info)}) is not readable and writable by {system.user}, so "
            "`fidoemu serve` needs root",
            (
                f"sudo groupadd -f {GROUP} && sudo usermod -aG {GROUP} {system.user}",
                f"sudo install -m 644 docs/{UDEV_RULE_NAME} /etc/udev/rules.d/",
                "sudo udevadm control --reload && sudo udevadm trigger",
                "then log out and in again (group membership is read at login)",
            ),
        )
    ]


def fido_hidraw_nodes(system: System) -> list[tuple[str, str]]:
    """(hidrawN, HID name) of every hidraw node whose descriptor has the FIDO usage page."""
    found = []
    base = system.path("/sys/class/hidraw")
    try:
        nodes = sorted(base.iterdir())
    except OSError:
        return []
    for node in nodes:
        try:
            descriptor = (node / "device" / "report_descriptor").read_bytes()
        except OSError:
            continue
        if _FIDO_PAGE_ITEM not in descriptor:
            continue
        name = ""
        try:
            for line in (node / "device" / "uevent").read_text().splitlines():
                if line.startswith("HID_NAME="):
                    name = line.split("=", 1)[1]
        except OSError:
            pass
        found.append((node.name, name))
    return found


def check_hidraw(system: System) -> list[Finding]:
    nodes = fido_hidraw_nodes(system)
    if not nodes:
        return [
            Finding(
                Verdict.OK,
                "no FIDO hidraw device right now (start `fidoemu serve` and run doctor again "
                "to check that browsers can open it)",
            )
        ]
    findings = []
    for node, name in nodes:
        try:
            info = system.path(f"/dev/{node}").stat()
        except OSError:
            findings.append(Finding(Verdict.FAIL, f"/dev/{node} ({name}) has no device node"))
            continue
        others = info.st_mode & (stat.S_IROTH | stat.S_IWOTH) == (stat.S_IROTH | stat.S_IWOTH)
        acl = _has_acl(system.path(f"/dev/{node}"))
        label = f"/dev/{node} ({name or 'unnamed'}, {_owner(info)}{', ACL' if acl else ''})"
        if others or acl or (system.uid != 0 and _may_read_write(system, info)):
            findings.append(Finding(Verdict.OK, f"{label} can be opened by browsers"))
        else:
            findings.append(
                Finding(
                    Verdict.FAIL,
                    f"{label}: only root can open it, so browsers and ssh cannot see the key",
                    (
                        f"sudo install -m 644 docs/{UDEV_RULE_NAME} /etc/udev/rules.d/",
                        "sudo udevadm control --reload && sudo udevadm trigger",
                        "(systemd 244+ already grants FIDO devices to the logged-in desktop user; "
                        f"the rule also gives group {GROUP} access for headless use)",
                    ),
                )
            )
    return findings


def _has_acl(path: Path) -> bool:
    try:
        return bool(os.getxattr(path, "system.posix_acl_access"))
    except OSError:
        return False


def check_udev_rule(system: System) -> list[Finding]:
    for directory in UDEV_RULE_DIRS:
        if system.path(f"/{directory}/{UDEV_RULE_NAME}").exists():
            return [Finding(Verdict.OK, f"udev rule installed: /{directory}/{UDEV_RULE_NAME}")]
    return [
        Finding(
            Verdict.WARN,
            f"the udev rule {UDEV_RULE_NAME} is not installed (needed to run without root)",
            (f"sudo install -m 644 docs/{UDEV_RULE_NAME} /etc/udev/rules.d/",),
        )
    ]


def run_checks(system: System | None = None) -> list[Finding]:
    system = system if system is not None else System()
    if platform.system() != "Linux" and system.root == Path("/"):
        return [Finding(Verdict.FAIL, "virtual USB keys need Linux (/dev/uhid)")]
    return [*check_uhid(system), *check_hidraw(system), *check_udev_rule(system)]


def report(findings: Iterable[Finding], out: TextIO) -> int:
    """Print the findings with their fixes; 0 when nothing is a problem, else 1."""
    status = 0
    for finding in findings:
        print(f"[{finding.verdict.value:>7}] {finding.summary}", file=out)
        for line in finding.fix:
            print(f"          fix: {line}", file=out)
        if finding.verdict is Verdict.FAIL:
            status = 1
    return status
