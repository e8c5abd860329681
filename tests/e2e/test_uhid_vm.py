"""The virtual USB key for real: boots a Debian kernel with /dev/uhid under qemu once
(``tests/vm/``), runs every test in ``tests/vm/guest`` inside it against ``fidoemu serve``, and
reports each guest test here under its own name.

These tests fail, never skip, when the VM cannot be built or booted: ``tests/vm/setup-vm.sh``
needs root (or sudo), apt and qemu; ``bash tests/setup.sh`` prepares all of it.
"""

from __future__ import annotations

import ast
import os
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VM_DIR = REPO / "tests" / "vm"
GUEST_DIR = VM_DIR / "guest"
VM_TIMEOUT = 600


def guest_test_names() -> list[str]:
    """``module::function`` of every guest test, read from the sources (no VM needed)."""
    names = []
    for path in sorted(GUEST_DIR.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                names.append(f"{path.stem}::{node.name}")
    return names


@dataclass(frozen=True)
class VmRun:
    console: str
    outcomes: dict[str, list[tuple[str, str]]]  # module::function -> [(outcome, message)]
    exit_code: int


def _parse_junit(path: Path) -> dict[str, list[tuple[str, str]]]:
    outcomes: dict[str, list[tuple[str, str]]] = {}
    for case in ElementTree.parse(path).getroot().iter("testcase"):  # noqa: S314 - our own file
        module = case.get("classname", "").rsplit(".", 1)[-1]
        function = case.get("name", "").split("[", 1)[0]
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = child.tag
                message = (child.get("message") or "") + "\n" + (child.text or "")
        outcomes.setdefault(f"{module}::{function}", []).append((outcome, message))
    return outcomes


@pytest.fixture(scope="session")
def vm_run(tmp_path_factory: pytest.TempPathFactory) -> VmRun:
    """Build (idempotently) and boot the VM once; run all guest tests in it."""
    setup = subprocess.run(  # noqa: S603
        ["bash", str(VM_DIR / "setup-vm.sh")],  # noqa: S607 - our own script
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if setup.returncode != 0:
        pytest.fail(f"cannot build the test VM:\n{setup.stdout}\n{setup.stderr}")
    xfer = tmp_path_factory.mktemp("vm-xfer")
    junit = xfer / "junit-guest.xml"
    command = " ".join(
        [
            "FIDOEMU_VM_GUEST=1",
            shlex.quote(sys.executable),
            "-m pytest -p no:fidoemu -p no:cacheprovider --confcutdir tests/vm -q -rA",
            "tests/vm/guest",
            f"--junitxml={shlex.quote(str(junit))}",
        ]
    )
    env = {**os.environ, "XFER": str(xfer), "GUEST_CWD": str(REPO)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    try:
        run = subprocess.run(  # noqa: S603
            ["bash", str(VM_DIR / "run-in-vm.sh"), command],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=VM_TIMEOUT + 60,
            check=False,
            env=env,
            cwd=REPO,
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"the test VM did not finish in time: {expired}")
    console = run.stdout + run.stderr
    (xfer / "console.log").write_text(console)
    if not junit.exists():
        pytest.fail(f"the test VM produced no results (exit {run.returncode}):\n{console[-6000:]}")
    return VmRun(console, _parse_junit(junit), run.returncode)


GUEST_TESTS = guest_test_names()


def test_guest_tests_were_found() -> None:
    assert len(GUEST_TESTS) >= 20, GUEST_TESTS


@pytest.mark.vm
@pytest.mark.parametrize("name", GUEST_TESTS)
def test_in_vm(vm_run: VmRun, name: str) -> None:
    results = vm_run.outcomes.get(name)
    assert results, f"{name} did not run in the VM:\n{vm_run.console[-4000:]}"
    failures = [message for outcome, message in results if outcome != "passed"]
    assert not failures, f"{name} in the VM:\n" + "\n".join(failures)


@pytest.mark.vm
def test_vm_ran_nothing_else(vm_run: VmRun) -> None:
    assert set(vm_run.outcomes) == set(GUEST_TESTS)
    assert vm_run.exit_code == 0, vm_run.console[-4000:]
