"""In the guest: the hidraw-vs-in-process benchmark script works (a few iterations; the
figures themselves come from running it on its own, see bench_hidraw.py)."""

from __future__ import annotations

from pathlib import Path

from tests.vm.guest.bench_hidraw import measure
from tests.vm.guest.guestlib import CALL_TIMEOUT, Key, within


def test_bench_measures_both_paths(auto_key: Key, tmp_path: Path) -> None:
    over_hidraw, in_process = within(CALL_TIMEOUT, lambda: measure(auto_key.hidraw, tmp_path, 3))
    assert over_hidraw > 0 and in_process > 0
