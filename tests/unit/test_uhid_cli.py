"""``fidoemu serve``/``doctor`` without a kernel: argument handling, the USB profile, PIN
presetting through the protocol, and every doctor finding against a fake /dev and /sys."""

from __future__ import annotations

import argparse
import io
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fido2.ctap2 import Ctap2

from authenticator import SECURITY_KEY, Authenticator
from transports.cli import CommandFailed
from transports.inprocess import InProcessDevice
from transports.uhid import cli, doctor
from transports.uhid.doctor import Acl, Person, System, Verdict


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


def test_serve_defaults() -> None:
    args = parse("serve")
    assert (args.profile, args.presence, args.store, args.pin) == (
        "security-key",
        "auto",
        None,
        None,
    )


def test_usb_config_caps_the_message_size_and_offers_the_preview_command() -> None:
    config = cli.usb_config(SECURITY_KEY)
    assert config.max_msg_size == 1200
    assert config.credential_management_preview


def test_default_serial_is_stable_per_store(tmp_path: Path) -> None:
    first = cli.default_serial(tmp_path / "a.sqlite")
    assert first == cli.default_serial(tmp_path / "a.sqlite")
    assert first != cli.default_serial(tmp_path / "b.sqlite")
    assert first.startswith("fidoemu-") and len(first) <= 63


def test_serve_without_uhid_fails_with_the_doctor_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(
        ["serve", "--store", str(tmp_path / "s.sqlite"), "--uhid", str(tmp_path / "no-uhid")]
    )
    assert status == 1
    assert "fidoemu doctor" in capsys.readouterr().err


def test_serve_refuses_a_name_the_kernel_would_cut(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(["serve", "--store", str(tmp_path / "s.sqlite"), "--name", "x" * 200])
    assert status == 2
    assert "name must be at most 127 bytes" in capsys.readouterr().err


def test_pin_is_preset_once_through_the_protocol() -> None:
    authenticator = Authenticator(strict=True)
    cli._preset_pin(authenticator, "123456")
    assert Ctap2(InProcessDevice(authenticator)).get_info().options["clientPin"] is True
    cli._preset_pin(authenticator, "999999")  # already set: left alone, no retry spent
    from fido2.ctap2 import ClientPin

    client_pin = ClientPin(Ctap2(InProcessDevice(authenticator)))
    assert client_pin.get_pin_retries()[0] == 8
    client_pin.get_pin_token("123456")


def test_pin_too_short_is_reported() -> None:
    with pytest.raises(CommandFailed, match="PIN"):
        cli._preset_pin(Authenticator(strict=True), "1")


# -- doctor ------------------------------------------------------------------------------------


def fake_system(
    tmp_path: Path,
    uid: int = 1000,
    gids: frozenset[int] = frozenset(),
    person: Person | None = None,
) -> System:
    return System(
        root=tmp_path,
        uid=uid,
        gids=gids,
        kernel_release="6.1.0-test",
        user="alice",
        person=person,
    )


def kernel_config(tmp_path: Path, line: str) -> None:
    (tmp_path / "boot").mkdir(exist_ok=True)
    (tmp_path / "boot" / "config-6.1.0-test").write_text(f"CONFIG_HID=y\n{line}\n")


def char_device_stand_in(path: Path, mode: int) -> None:
    """A regular file cannot pass for a character device, so patch os.stat results instead."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    path.chmod(mode)


def test_missing_module_is_fixed_with_modprobe(tmp_path: Path) -> None:
    kernel_config(tmp_path, "CONFIG_UHID=m")
    [finding] = doctor.check_uhid(fake_system(tmp_path))
    assert finding.verdict is Verdict.FAIL
    assert finding.fix[0] == "sudo modprobe uhid"
    assert "modules-load.d" in finding.fix[1]


def test_kernel_without_uhid_is_explained(tmp_path: Path) -> None:
    kernel_config(tmp_path, "# CONFIG_UHID is not set")
    [finding] = doctor.check_uhid(fake_system(tmp_path))
    assert finding.verdict is Verdict.FAIL and "CONFIG_UHID" in finding.summary


def test_loaded_module_without_node(tmp_path: Path) -> None:
    (tmp_path / "sys" / "module" / "uhid").mkdir(parents=True)
    [finding] = doctor.check_uhid(fake_system(tmp_path))
    assert "mknod" in finding.fix[0]


def test_uhid_permissions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    device = tmp_path / "dev" / "uhid"
    char_device_stand_in(device, 0o600)
    real_stat = Path.stat

    def as_char_device(self: Path, **kwargs: object) -> os.stat_result:
        result = real_stat(self)
        if self == device:
            fields = list(result)
            fields[0] = stat.S_IFCHR | stat.S_IMODE(result.st_mode)
            fields[4], fields[5] = 0, 0  # root:root
            return os.stat_result(fields)
        return result

    monkeypatch.setattr(Path, "stat", as_char_device)
    [denied] = doctor.check_uhid(fake_system(tmp_path))
    assert denied.verdict is Verdict.FAIL
    assert any("usermod -aG fidoemu alice" in line for line in denied.fix)
    assert any("70-fidoemu.rules" in line for line in denied.fix)
    [as_root] = doctor.check_uhid(fake_system(tmp_path, uid=0))
    assert as_root.verdict is Verdict.OK
    device.chmod(0o660)
    [by_group] = doctor.check_uhid(fake_system(tmp_path, gids=frozenset({0})))
    assert by_group.verdict is Verdict.OK


def test_hidraw_findings(tmp_path: Path) -> None:
    assert doctor.check_hidraw(fake_system(tmp_path))[0].verdict is Verdict.OK  # none yet
    node = tmp_path / "sys" / "class" / "hidraw" / "hidraw3" / "device"
    node.mkdir(parents=True)
    from transports.uhid.events import FIDO_REPORT_DESCRIPTOR

    (node / "report_descriptor").write_bytes(FIDO_REPORT_DESCRIPTOR)
    (node / "uevent").write_text("HID_NAME=fidoemu security-key\nHID_UNIQ=x\n")
    assert doctor.fido_hidraw_nodes(fake_system(tmp_path)) == [("hidraw3", "fidoemu security-key")]
    [missing] = doctor.check_hidraw(fake_system(tmp_path))
    assert missing.verdict is Verdict.FAIL and "no device node" in missing.summary
    device = tmp_path / "dev" / "hidraw3"
    char_device_stand_in(device, 0o600)
    [root_only] = doctor.check_hidraw(fake_system(tmp_path, uid=0))
    assert root_only.verdict is Verdict.FAIL and "browsers" in root_only.summary
    device.chmod(0o666)
    [open_to_all] = doctor.check_hidraw(fake_system(tmp_path, uid=0))
    assert open_to_all.verdict is Verdict.OK


def test_udev_rule_detection_and_report(tmp_path: Path) -> None:
    [absent] = doctor.check_udev_rule(fake_system(tmp_path))
    assert absent.verdict is Verdict.WARN
    rules = tmp_path / "etc" / "udev" / "rules.d"
    rules.mkdir(parents=True)
    (rules / "70-fidoemu.rules").write_text("")
    [present] = doctor.check_udev_rule(fake_system(tmp_path))
    assert present.verdict is Verdict.OK
    out = io.StringIO()
    assert doctor.report([absent, present], out) == 0
    assert "fix: fidoemu doctor --udev-rule | sudo tee /etc/udev/rules.d/70-fidoemu.rules" in (
        out.getvalue()
    )
    assert doctor.report(doctor.check_uhid(fake_system(tmp_path)), io.StringIO()) == 1


def test_shipped_udev_rule_matches_the_default_ids() -> None:
    rule = (Path(__file__).resolve().parents[2] / "docs" / "70-fidoemu.rules").read_text()
    assert 'KERNEL=="uhid"' in rule
    assert "0003:1209:0001.*" in rule
    assert 'TAG+="uaccess"' in rule


def fido_hidraw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int, gid: int) -> Path:
    """A FIDO hidraw3 in the fake /sys and a /dev/hidraw3 that stats as (mode, root:gid)."""
    from transports.uhid.events import FIDO_REPORT_DESCRIPTOR

    node = tmp_path / "sys" / "class" / "hidraw" / "hidraw3" / "device"
    node.mkdir(parents=True)
    (node / "report_descriptor").write_bytes(FIDO_REPORT_DESCRIPTOR)
    (node / "uevent").write_text("HID_NAME=fidoemu security-key\nHID_UNIQ=x\n")
    device = tmp_path / "dev" / "hidraw3"
    char_device_stand_in(device, mode)
    real_stat = Path.stat

    def as_char_device(self: Path, **kwargs: object) -> os.stat_result:
        result = real_stat(self)
        if self == device:
            fields = list(result)
            fields[0] = stat.S_IFCHR | mode
            fields[4], fields[5] = 0, gid
            return os.stat_result(fields)
        return result

    monkeypatch.setattr(Path, "stat", as_char_device)
    return device


def acl_bytes(*entries: tuple[int, int, int]) -> bytes:
    """A system.posix_acl_access value: version 2, then (tag, perm, id) entries."""
    raw = (2).to_bytes(4, "little")
    for tag, perm, ident in entries:
        raw += tag.to_bytes(2, "little") + perm.to_bytes(2, "little") + ident.to_bytes(4, "little")
    return raw


USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
NO_ID = 0xFFFFFFFF


def with_acl(monkeypatch: pytest.MonkeyPatch, device: Path, raw: bytes) -> None:
    real_getxattr = os.getxattr

    def getxattr(path: object, attribute: str, *args: object, **kwargs: object) -> bytes:
        if Path(str(path)) == device and attribute == "system.posix_acl_access":
            return raw
        return real_getxattr(path, attribute)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "getxattr", getxattr)


def test_root_sees_a_group_only_node_as_open_to_the_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fido_hidraw(tmp_path, monkeypatch, 0o660, gid=4242)
    [finding] = doctor.check_hidraw(fake_system(tmp_path, uid=0))
    assert "only root" not in finding.summary
    assert finding.verdict is Verdict.WARN
    assert "group 4242" in finding.summary
    assert doctor.report([finding], io.StringIO()) == 0


def test_root_group_does_not_count_as_access(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fido_hidraw(tmp_path, monkeypatch, 0o660, gid=0)
    [finding] = doctor.check_hidraw(fake_system(tmp_path, uid=0))
    assert finding.verdict is Verdict.FAIL and "only root can open it" in finding.summary


def test_root_checks_the_user_behind_sudo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fido_hidraw(tmp_path, monkeypatch, 0o660, gid=4242)
    member = Person("alice", 1000, frozenset({1000, 4242}))
    [ok] = doctor.check_hidraw(fake_system(tmp_path, uid=0, person=member))
    assert ok.verdict is Verdict.OK and "alice" in ok.summary
    outsider = Person("alice", 1000, frozenset({1000}))
    [denied] = doctor.check_hidraw(fake_system(tmp_path, uid=0, person=outsider))
    assert denied.verdict is Verdict.FAIL and "alice cannot open it" in denied.summary
    # the same judgement when alice runs doctor herself
    [as_alice] = doctor.check_hidraw(fake_system(tmp_path, uid=1000, gids=frozenset({4242})))
    assert as_alice.verdict is Verdict.OK


def test_an_acl_counts_only_if_it_grants_the_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = fido_hidraw(tmp_path, monkeypatch, 0o600, gid=0)
    alice = Person("alice", 1000, frozenset({1000}))
    base = [(USER_OBJ, 6, NO_ID), (GROUP_OBJ, 0, NO_ID), (OTHER, 0, NO_ID)]
    with_acl(monkeypatch, device, acl_bytes(*base, (USER, 6, 1001), (MASK, 6, NO_ID)))
    [someone_else] = doctor.check_hidraw(fake_system(tmp_path, uid=0, person=alice))
    assert someone_else.verdict is Verdict.FAIL
    assert ", ACL)" in someone_else.summary  # shown, but it is not alice's
    with_acl(monkeypatch, device, acl_bytes(*base, (USER, 6, 1000), (MASK, 6, NO_ID)))
    [granted] = doctor.check_hidraw(fake_system(tmp_path, uid=0, person=alice))
    assert granted.verdict is Verdict.OK
    with_acl(monkeypatch, device, acl_bytes(*base, (USER, 6, 1000), (MASK, 4, NO_ID)))
    [masked] = doctor.check_hidraw(fake_system(tmp_path, uid=0, person=alice))
    assert masked.verdict is Verdict.FAIL  # the mask takes write away
    with_acl(monkeypatch, device, acl_bytes(*base, (GROUP, 6, 77), (MASK, 6, NO_ID)))
    [by_group] = doctor.check_hidraw(fake_system(tmp_path, uid=1000, gids=frozenset({77})))
    assert by_group.verdict is Verdict.OK
    [unknown_user] = doctor.check_hidraw(fake_system(tmp_path, uid=0))
    assert unknown_user.verdict is Verdict.WARN and "group 77" in unknown_user.summary


def test_acl_parser_rejects_garbage() -> None:
    assert not Acl.parse(b"")
    assert not Acl.parse(b"\x01\x00\x00\x00" + bytes(8))  # unknown version
    assert not Acl.parse(acl_bytes((USER_OBJ, 6, NO_ID), (OTHER, 0, NO_ID)))  # no named entries
    assert Acl.parse(acl_bytes((USER, 6, 5)) + b"\x02").users() == [5]  # trailing bytes ignored


def test_fixes_work_outside_a_source_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fido_hidraw(tmp_path, monkeypatch, 0o600, gid=0)
    findings = [
        *doctor.check_hidraw(fake_system(tmp_path, uid=0)),
        *doctor.check_udev_rule(fake_system(tmp_path)),
    ]
    fixes = [line for finding in findings for line in finding.fix]
    assert fixes and not any("docs/" in line for line in fixes)
    assert any(line.startswith("fidoemu doctor --udev-rule | sudo tee") for line in fixes)
    assert cli.main(["doctor", "--udev-rule"]) == 0
    printed = capsys.readouterr().out
    assert printed == doctor.UDEV_RULE
    shipped = Path(__file__).resolve().parents[2] / "docs" / "70-fidoemu.rules"
    assert printed == shipped.read_text()


# -- serve -v -----------------------------------------------------------------------------------


@pytest.fixture
def fidoemu_logger() -> Iterator[None]:
    logger = logging.getLogger("fidoemu")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def _make_credential_through_a_session() -> None:
    from fido2 import cbor

    from authenticator.presence import approve
    from transports.ctaphid.constants import BROADCAST_CID, HidCommand
    from transports.ctaphid.packets import fragment
    from transports.ctaphid.session import CtapHidSession

    session = CtapHidSession(Authenticator(strict=True), instant_presence=approve)
    session.receive_packet(fragment(BROADCAST_CID, HidCommand.INIT, bytes(8))[0])
    cid = int.from_bytes(session.packets_to_send()[0][15:19], "big")
    message = b"\x01" + cbor.encode(
        {
            1: bytes(32),
            2: {"id": "example.com", "name": "Example"},
            3: {"id": b"user", "name": "user"},
            4: [{"type": "public-key", "alg": -7}],
        }
    )
    for report in fragment(cid, HidCommand.CBOR, message):
        session.receive_packet(report)
    assert session.packets_to_send()


@pytest.mark.usefixtures("fidoemu_logger")
@pytest.mark.parametrize("verbosity", [0, 1, 2])
def test_verbose_logs_each_decoded_command(
    verbosity: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `fidoemu serve -v` sets up: the session's decoded command lines on stderr, only
    with -v (the guest test checks the same through a real `fidoemu serve`)."""
    cli._configure_logging(verbosity)
    _make_credential_through_a_session()
    err = capsys.readouterr().err
    if verbosity:
        assert "CBOR MAKE_CREDENTIAL(client_data_hash=<32 B>, rp={id='example.com'" in err
        assert "-> OK (" in err
    else:
        assert err == ""
