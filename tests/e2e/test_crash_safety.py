"""Crash safety of ``SqliteStore``: a process looping makeCredential (resident) and
getAssertion is SIGKILLed many times at random moments, and restarted on the same file.

What a relying party relies on (WebAuthn §6.1.1, CTAP 2.1 §6.2.2): every credential whose
registration response left the authenticator still exists after the crash, and no signature
counter ever goes backwards (a counter is durable before a signature carrying it is returned).
The child prints each response as it gets it; whatever it printed before dying was "returned".
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from fido2 import cbor as fido2_cbor
from fido2.cose import CoseKey
from fido2.ctap2 import Ctap2

from authenticator import Authenticator, SqliteStore
from transports.inprocess import InProcessDevice

RP_ID = "crash.example"
KILLS = 20
MAX_CREDENTIALS = 120  # below the profile's 256 resident slots, so makeCredential never fills up
TIME_BUDGET = 45.0  # seconds; bounds the test's duration (nothing is asserted about time)

CHILD = f"""
import os, random, sys
from fido2 import cbor
from fido2.ctap2 import Ctap2
from authenticator import Authenticator, SqliteStore
from transports.inprocess import InProcessDevice

store = SqliteStore(sys.argv[1])
ctap = Ctap2(InProcessDevice(Authenticator(store, strict=True)))
rng = random.Random(int(sys.argv[2]))
known = [c.credential_id for c in store.credentials()]
print("READY", flush=True)
while True:
    if len(known) < {MAX_CREDENTIALS} and (not known or rng.random() < 0.35):
        response = ctap.make_credential(
            os.urandom(32),
            {{"id": "{RP_ID}", "name": "Crash"}},
            {{"id": os.urandom(16), "name": "user"}},
            [{{"type": "public-key", "alg": -7}}],
            options={{"rk": True}},
        )
        credential = response.auth_data.credential_data
        known.append(credential.credential_id)
        print("MC", credential.credential_id.hex(), response.auth_data.counter,
              cbor.encode(dict(credential.public_key)).hex(), flush=True)
    else:
        credential_id = rng.choice(known)
        response = ctap.get_assertion(
            "{RP_ID}", os.urandom(32), [{{"type": "public-key", "id": credential_id}}]
        )
        print("GA", response.credential["id"].hex(), response.auth_data.counter, flush=True)
"""


@dataclass
class Observed:
    """What the children returned, across every crash, in order."""

    public_keys: dict[bytes, bytes] = field(default_factory=dict)  # credential ID -> COSE key
    counters: dict[bytes, list[int]] = field(default_factory=dict)
    responses: int = 0

    def record(self, line: str) -> None:
        kind, *fields = line.split()
        if kind == "READY":
            return
        credential_id, counter = bytes.fromhex(fields[0]), int(fields[1])
        if kind == "MC":
            assert credential_id not in self.public_keys, "a credential ID was issued twice"
            self.public_keys[credential_id] = bytes.fromhex(fields[2])
        else:
            # A GA may name a credential whose MC response never left: the kill fell between
            # the store's commit and the print; the next child found it in the store.
            assert kind == "GA", line
        self.counters.setdefault(credential_id, []).append(counter)
        self.responses += 1


def _run_and_kill(path: Path, rng: random.Random, observed: Observed) -> None:
    child = subprocess.Popen(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", CHILD, str(path), str(rng.getrandbits(32))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    if rng.random() < 0.2:
        # Sometimes while starting up: opening the store, creating the device key and PKI.
        time.sleep(rng.uniform(0.0, 0.4))
    else:
        wanted = rng.randint(0, 40)  # responses to let through, then a random extra delay
        for _ in range(wanted + 1):  # + the READY line
            line = child.stdout.readline()
            if not line.endswith("\n"):
                break  # the child died by itself; its return code below says why
            observed.record(line)
        time.sleep(rng.uniform(0.0, 0.005))
    child.send_signal(signal.SIGKILL)
    rest, errors = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, f"the child failed on its own:\n{errors}"
    for line in rest.splitlines(keepends=True):
        if line.endswith("\n"):  # a line cut by the kill was never returned
            observed.record(line)


def test_sigkill_loses_no_returned_credential_and_no_counter_goes_back(tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    path = tmp_path / "crash.sqlite"
    observed = Observed()
    started = time.monotonic()
    kills = 0
    while kills < KILLS and time.monotonic() - started < TIME_BUDGET:
        _run_and_kill(path, rng, observed)
        kills += 1

    context = f"(seed {seed}, {kills} kills, {observed.responses} responses)"
    assert kills >= KILLS // 2, context
    assert observed.public_keys, f"no registration completed {context}"
    assert observed.responses > len(observed.public_keys), f"no assertion completed {context}"
    assert all(cid in observed.counters for cid in observed.public_keys)

    # Counters as returned: strictly increasing per credential, across every crash.
    for credential_id, counters in observed.counters.items():
        assert all(a < b for a, b in itertools.pairwise(counters)), (
            f"counter went backwards for {credential_id.hex()}: {counters} {context}"
        )

    # Every returned credential survived, with a counter at least the last one returned.
    store = SqliteStore(path)
    try:
        for credential_id, counters in observed.counters.items():
            stored = store.get(credential_id)
            assert stored is not None, f"lost {credential_id.hex()} {context}"
            assert stored.discoverable and stored.rp_id == RP_ID
            assert store.peek_sign_count(credential_id) >= counters[-1], context

        # And each still signs, with the key it was registered with, a higher counter: a power
        # cycle after the last crash, verified with python-fido2's COSE keys.
        ctap = Ctap2(InProcessDevice(Authenticator(store, strict=True)))
        for credential_id, counters in observed.counters.items():
            client_data_hash = os.urandom(32)
            response = ctap.get_assertion(
                RP_ID, client_data_hash, [{"type": "public-key", "id": credential_id}]
            )
            assert response.auth_data.counter > counters[-1], context
            if credential_id in observed.public_keys:  # its registration was returned
                cose = fido2_cbor.decode(observed.public_keys[credential_id])
                assert isinstance(cose, dict)
                public_key = CoseKey.parse(cose)
                public_key.verify(bytes(response.auth_data) + client_data_hash, response.signature)
    finally:
        store.close()
