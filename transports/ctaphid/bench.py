"""Throughput of the CTAPHID layer on the host: 64-byte packets per second through
``CtapHidFramer`` (reassembly, then fragmenting the echo) for PING messages of several sizes,
and CTAPHID_CBOR getInfo round trips through ``CtapHidSession`` with the real core.

``framer_rows`` is a ``fidoemu bench`` row provider (``transports.bench.ROW_PROVIDERS`` entry
``"transports.ctaphid.bench:framer_rows"``); ``python -m transports.ctaphid.bench`` prints the
same figures on its own. Figures are medians over rounds, measured with the garbage collector
paused, as ``transports.bench.compare`` does.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from typing import Final

from authenticator import Authenticator
from transports.bench import BenchSettings, Row
from transports.ctaphid.constants import BROADCAST_CID, HidCommand
from transports.ctaphid.framer import CtapHidFramer
from transports.ctaphid.packets import fragment, packet_count
from transports.ctaphid.session import CtapHidSession

PING_SIZES: Final = (57, 1200, 7609)


def _allocate(framer: CtapHidFramer) -> int:
    framer.receive_packet(fragment(BROADCAST_CID, HidCommand.INIT, bytes(8))[0])
    [reply] = framer.packets_to_send()
    return int.from_bytes(reply[15:19], "big")


def _median_rate(run: Callable[[], int], rounds: int) -> float:
    """Median of (units processed / second) over ``rounds`` calls of ``run``."""
    run()  # warm up
    rates = []
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            started = time.perf_counter_ns()
            units = run()
            elapsed = time.perf_counter_ns() - started
            rates.append(units / (elapsed / 1e9))
    finally:
        if was_enabled:
            gc.enable()
    return statistics.median(rates)


def ping_packets_per_second(size: int, *, batch: int = 20, rounds: int = 15) -> float:
    """Packets in plus packets out per second for PING messages of ``size`` bytes."""
    framer = CtapHidFramer()
    cid = _allocate(framer)
    reports = fragment(cid, HidCommand.PING, bytes(i & 0xFF for i in range(size)))
    per_message = 2 * packet_count(size)

    def run() -> int:
        for _ in range(batch):
            for report in reports:
                framer.receive_packet(report)
            if len(framer.packets_to_send()) != per_message // 2:
                raise AssertionError("the framer did not echo the PING")
        return batch * per_message

    return _median_rate(run, rounds)


def get_info_round_trips_per_second(*, batch: int = 20, rounds: int = 15) -> float:
    """CTAPHID_CBOR getInfo through ``CtapHidSession`` and the core, per second."""
    session = CtapHidSession(Authenticator())
    cid = _allocate(session.framer)
    report = fragment(cid, HidCommand.CBOR, b"\x04")[0]

    def run() -> int:
        for _ in range(batch):
            session.receive_packet(report)
            if not session.packets_to_send():
                raise AssertionError("no getInfo response")
        return batch

    return _median_rate(run, rounds)


def framer_rows(settings: BenchSettings) -> Iterable[Row]:
    rounds = max(5, settings.rounds // 2)
    for size in PING_SIZES:
        yield Row(
            f"CTAPHID PING {size} B through the framer",
            ping_packets_per_second(size, rounds=rounds),
            unit="packets/s",
        )
    yield Row(
        "CTAPHID getInfo through CtapHidSession",
        get_info_round_trips_per_second(rounds=rounds),
        unit="round trips/s",
    )


def main() -> int:
    for row in framer_rows(BenchSettings()):
        print(f"{row.name:<45} {row.ours:>12,.0f} {row.unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
