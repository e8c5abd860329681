"""Fixtures for the in-guest tests: the keys (``fidoemu serve`` processes) they talk to.

``auto_key`` (presence auto, no PIN) lives for the whole guest run; modules that need another
kind of key start their own, so that at most two keys exist at any time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vm.guest.guestlib import Key

if not os.path.exists("/dev/uhid"):  # a guest without uhid is a broken VM, not a skip
    raise RuntimeError("tests/vm/guest must run in the test VM (no /dev/uhid here)")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="session")
def auto_key(workdir: Path) -> Iterator[Key]:
    key = Key(workdir, "fidoemu-auto")
    yield key
    key.stop()
