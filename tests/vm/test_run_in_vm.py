"""tests/vm/run-in-vm.sh's choice of accelerator, on the host (dry run: no VM is booted).
TCG is the default and the only mode CI uses; KVM is opt-in (FIDOEMU_VM_ACCEL=kvm)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "run-in-vm.sh"


def dry_run(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "FIDOEMU_VM_ACCEL"}
    environment.pop("XFER", None)
    environment.update(FIDOEMU_VM_DRY_RUN="1", **env)
    return subprocess.run(  # noqa: S603
        ["bash", str(SCRIPT), "true"],  # noqa: S607 - our own script
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=environment,
    )


def test_tcg_is_the_default() -> None:
    result = dry_run()
    assert result.returncode == 0, result.stderr
    command = result.stdout.split()
    assert command[0] == "qemu-system-x86_64"
    assert command[command.index("-accel") + 1] == "tcg"
    assert "kvm" not in result.stdout
    assert command[command.index("-smp") + 1] == "1"


@pytest.mark.parametrize(("accel", "cpu"), [("kvm", "host"), ("tcg", "max")])
def test_accelerator_can_be_chosen(accel: str, cpu: str) -> None:
    result = dry_run(FIDOEMU_VM_ACCEL=accel)
    assert result.returncode == 0, result.stderr
    command = result.stdout.split()
    assert command[command.index("-accel") + 1] == accel
    assert command[command.index("-cpu") + 1] == cpu


def test_unknown_accelerator_is_a_usage_error() -> None:
    result = dry_run(FIDOEMU_VM_ACCEL="xen")
    assert result.returncode == 2
    assert "FIDOEMU_VM_ACCEL must be tcg (default) or kvm" in result.stderr
