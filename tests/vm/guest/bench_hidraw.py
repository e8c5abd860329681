"""Benchmark, inside the VM: one getAssertion round trip over hidraw (python-fido2
``CtapHidDevice`` -> /dev/hidrawN -> uhid -> ``fidoemu serve``) against the same call
in-process (python-fido2 ``Ctap2`` -> ``InProcessDevice`` -> the core) in the same guest, both on
a SQLite store with the same USB profile, and their ratio. Run it with

    tests/vm/run-in-vm.sh 'python tests/vm/guest/bench_hidraw.py'

Under qemu TCG the absolute times are slow; the ratio is the figure that carries over.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from fido2.ctap import CtapDevice
from fido2.ctap2 import Ctap2

from authenticator import SECURITY_KEY, Authenticator, SqliteStore
from tests.vm.guest.guestlib import Key
from transports.inprocess import InProcessDevice
from transports.uhid.cli import usb_config

RP: dict[str, Any] = {"id": "bench.example", "name": "Bench"}
ES256: list[Mapping[str, Any]] = [{"type": "public-key", "alg": -7}]


def _assertion_call(device: CtapDevice) -> Callable[[], object]:
    ctap2 = Ctap2(device)
    made = ctap2.make_credential(os.urandom(32), RP, {"id": b"bench", "name": "bench"}, ES256)
    assert made.auth_data.credential_data is not None
    allow: list[Mapping[str, Any]] = [
        {"type": "public-key", "id": made.auth_data.credential_data.credential_id}
    ]
    return lambda: ctap2.get_assertion(RP["id"], os.urandom(32), allow)


def _median_ms(call: Callable[[], object], iterations: int) -> float:
    call()  # warm up
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def measure(hidraw: str, workdir: Path, iterations: int) -> tuple[float, float]:
    """Median ms per getAssertion: (over hidraw to ``hidraw``, in-process)."""
    from fido2.hid import open_device

    device = open_device(hidraw)
    try:
        over_hidraw = _median_ms(_assertion_call(device), iterations)
    finally:
        device.close()
    store = SqliteStore(workdir / "inprocess.sqlite")
    try:
        local = InProcessDevice(Authenticator(store=store, config=usb_config(SECURITY_KEY)))
        in_process = _median_ms(_assertion_call(local), iterations)
    finally:
        store.close()
    return over_hidraw, in_process


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--iterations", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        key = Key(workdir, "fidoemu-bench")
        try:
            over_hidraw, in_process = measure(key.hidraw, workdir, args.iterations)
        finally:
            key.stop()
    print(f"getAssertion over hidraw (uhid, fidoemu serve): {over_hidraw:8.2f} ms (median)")
    print(f"getAssertion in-process (InProcessDevice):      {in_process:8.2f} ms (median)")
    print(f"ratio hidraw / in-process:                      {over_hidraw / in_process:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
