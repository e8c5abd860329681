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
UDEV_RULE: Final = """\
# fidoemu: run virtual FIDO security keys without root, and let browsers open them.
#
# Install:
#   sudo groupadd -f fidoemu && sudo usermod -aG fidoemu "$USER"     # then log in again
#   fidoemu doctor --udev-rule | sudo tee /etc/udev/rules.d/70-fidoemu.rules >/dev/null
#   sudo udevadm control --reload && sudo udevadm trigger
#   echo uhid | sudo tee /etc/modules-load.d/fidoemu.conf && sudo modprobe uhid
#
# Security: /dev/uhid can create *any* HID device, keyboards included, so membership in the
# fidoemu group lets a user inject keystrokes. Give it only to users you would let type here.

# /dev/uhid: members of the fidoemu group may create virtual HID devices (`fidoemu serve`).
KERNEL=="uhid", SUBSYSTEM=="misc", GROUP="fidoemu", MODE="0660"

# The keys' /dev/hidrawN (fidoemu's default USB IDs 1209:0001): the logged-in desktop user
# (uaccess, applied by 73-seat-late.rules, hence a number below 73) and the fidoemu group.
# systemd 244+ also grants every FIDO device to the desktop user through 60-fido-id.rules.
SUBSYSTEM=="hidraw", KERNELS=="0003:1209:0001.*", TAG+="uaccess", GROUP="fidoemu", MODE="0660"
"""
"""The rule, shipped in the program so that ``fidoemu doctor --udev-rule`` can print it wherever
fidoemu is installed; docs/70-fidoemu.rules is the same text (a test keeps them equal)."""


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
    person: Person | None = field(default_factory=lambda: _sudo_person())
    """Whom a root run checks hidraw access for: the user behind ``sudo`` (None: unknown)."""

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def browser_user(self) -> Person | None:
        """The unprivileged user whose browsers must open the key, when known."""
        if self.uid != 0:
            return Person(self.user, self.uid, self.gids)
        return self.person


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    uid: int
    gids: frozenset[int]


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _sudo_person() -> Person | None:
    name = os.environ.get("SUDO_USER")
    if os.getuid() != 0 or not name:
        return None
    try:
        entry = pwd.getpwnam(name)
        return Person(name, entry.pw_uid, frozenset(os.getgrouplist(name, entry.pw_gid)))
    except (KeyError, OSError):
        return None


_RW_USER: Final = stat.S_IRUSR | stat.S_IWUSR
_RW_GROUP: Final = stat.S_IRGRP | stat.S_IWGRP
_RW_OTHER: Final = stat.S_IROTH | stat.S_IWOTH


def _may_read_write(system: System, info: os.stat_result) -> bool:
    if system.uid == 0:
        return True
    return _mode_grants(info, system.uid, system.gids)


def _mode_grants(info: os.stat_result, uid: int, gids: frozenset[int]) -> bool:
    """Read and write by the permission bits alone, as the kernel checks them (no ACL)."""
    mode = info.st_mode
    if info.st_uid == uid:
        return mode & _RW_USER == _RW_USER
    if info.st_gid in gids:
        return mode & _RW_GROUP == _RW_GROUP
    return mode & _RW_OTHER == _RW_OTHER


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
                    "is), or run fidoemu in a VM with such a kernel (qemu works without KVM; "
                    "fidoemu's source tree has scripts for it in tests/vm/)",
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
                _install_rule_fix(),
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


def _install_rule_fix() -> str:
    """Works wherever fidoemu is installed: the rule text comes from the program itself."""
    return f"fidoemu doctor --udev-rule | sudo tee /etc/udev/rules.d/{UDEV_RULE_NAME} >/dev/null"


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
        acl = _read_acl(system.path(f"/dev/{node}"))
        label = f"/dev/{node} ({name or 'unnamed'}, {_owner(info)}{', ACL' if acl else ''})"
        findings.append(_hidraw_access(system, info, acl, label))
    return findings


def _hidraw_access(system: System, info: os.stat_result, acl: Acl, label: str) -> Finding:
    """Who may open a key's hidraw node: everyone, the browser's user (when known: the caller,
    or the user behind sudo), or, for a root run that cannot tell, the group and ACL entries."""
    fix = (
        _install_rule_fix(),
        "sudo udevadm control --reload && sudo udevadm trigger",
        "(systemd 244+ already grants FIDO devices to the logged-in desktop user; "
        f"the rule also gives group {GROUP} access for headless use)",
    )
    if info.st_mode & _RW_OTHER == _RW_OTHER:
        return Finding(Verdict.OK, f"{label} can be opened by every user")
    person = system.browser_user()
    if person is not None:
        if _mode_grants(info, person.uid, person.gids) or acl.grants(person.uid, person.gids):
            return Finding(Verdict.OK, f"{label} can be opened by {person.name}'s browsers")
        return Finding(
            Verdict.FAIL,
            f"{label}: {person.name} cannot open it, so browsers and ssh run by "
            f"{person.name} cannot see the key",
            fix,
        )
    # Root, and nobody behind sudo: name whoever besides root the node is open to.
    grantees = [f"user {_user(uid)}" for uid in acl.users() if uid != 0]
    grantees += [f"group {_group(gid)}" for gid in acl.groups() if gid != 0]
    if info.st_gid != 0 and info.st_mode & _RW_GROUP == _RW_GROUP:
        grantees.insert(0, f"group {_group(info.st_gid)}")
    if not grantees:
        return Finding(
            Verdict.FAIL,
            f"{label}: only root can open it, so browsers and ssh cannot see the key",
            fix,
        )
    return Finding(
        Verdict.WARN,
        f"{label} can be opened by root and {', '.join(dict.fromkeys(grantees))}: browsers can "
        "if their user is one of these (run `sudo fidoemu doctor` as that user to check)",
    )


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


# POSIX ACL xattr (linux/posix_acl_xattr.h): u32 version 2, then (u16 tag, u16 perm, u32 id).
_ACL_VERSION: Final = 2
_ACL_USER: Final = 0x02
_ACL_GROUP: Final = 0x08
_ACL_MASK: Final = 0x10
_ACL_RW: Final = 0x4 | 0x2


@dataclass(frozen=True, slots=True)
class Acl:
    """The named-user and named-group entries of a POSIX access ACL (what ``uaccess`` adds)."""

    entries: tuple[tuple[int, int, int], ...] = ()  # (tag, perm, id)

    @classmethod
    def parse(cls, raw: bytes) -> Acl:
        if len(raw) < 4 or int.from_bytes(raw[:4], "little") != _ACL_VERSION:
            return cls()
        entries = []
        for offset in range(4, len(raw) - 7, 8):
            tag = int.from_bytes(raw[offset : offset + 2], "little")
            perm = int.from_bytes(raw[offset + 2 : offset + 4], "little")
            ident = int.from_bytes(raw[offset + 4 : offset + 8], "little")
            entries.append((tag, perm, ident))
        return cls(tuple(entries))

    def __bool__(self) -> bool:
        return any(tag in (_ACL_USER, _ACL_GROUP) for tag, _, _ in self.entries)

    def _effective(self, wanted: int) -> list[int]:
        mask = next((perm for tag, perm, _ in self.entries if tag == _ACL_MASK), _ACL_RW)
        return [
            ident
            for tag, perm, ident in self.entries
            if tag == wanted and perm & mask & _ACL_RW == _ACL_RW
        ]

    def users(self) -> list[int]:
        """Named users granted read and write (after the ACL mask)."""
        return self._effective(_ACL_USER)

    def groups(self) -> list[int]:
        return self._effective(_ACL_GROUP)

    def grants(self, uid: int, gids: frozenset[int]) -> bool:
        return uid in self.users() or any(gid in gids for gid in self.groups())


def _read_acl(path: Path) -> Acl:
    try:
        return Acl.parse(os.getxattr(path, "system.posix_acl_access"))
    except OSError:
        return Acl()


def check_udev_rule(system: System) -> list[Finding]:
    for directory in UDEV_RULE_DIRS:
        if system.path(f"/{directory}/{UDEV_RULE_NAME}").exists():
            return [Finding(Verdict.OK, f"udev rule installed: /{directory}/{UDEV_RULE_NAME}")]
    return [
        Finding(
            Verdict.WARN,
            f"the udev rule {UDEV_RULE_NAME} is not installed (needed to run without root)",
            (_install_rule_fix(),),
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
