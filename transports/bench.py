"""``fidoemu bench``: what the emulator costs per CTAP command, against a lean pipeline that
does only the unavoidable work.

Theory of operation: a *row* compares two zero-argument callables, ours and a baseline. Both
run in alternating batches (ours first in even rounds, the baseline first in odd ones) with the
garbage collector paused, and each side's figure is the median per-operation time over the
rounds, so that machine noise (frequency scaling, other processes) falls on both sides alike.

The core rows drive ``InProcessDevice.call(CTAPHID.CBOR, ...)`` with the same request bytes a
python-fido2 client sends. The lean pipeline for each command does only what any authenticator
must do for it (CTAP 2.1 §6.1.2, §6.2.2):

* makeCredential: CBOR-decode the request, hash the rpId, generate a P-256 key, build the
  authenticator data with the COSE public key, sign it once with the (ready) attestation key
  for ``packed`` attestation (WebAuthn §8.2: one signature, by the attestation key; the new
  credential key signs nothing at registration), CBOR-encode the response with the x5c chain.
* getAssertion: CBOR-decode, hash the rpId, build the authenticator data, sign with a private
  key held as a ready key object, CBOR-encode the response.

Other modules contribute rows by naming a provider in ``ROW_PROVIDERS`` as
``"module:function"``; a provider takes the ``BenchSettings`` (or no argument) and returns
``Row``s or ``(name, ours_us, baseline_us)`` tuples. Providers are imported only when the
benchmark runs, so an optional transport costs nothing until then.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import importlib
import inspect
import os
import statistics
import struct
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor as fido2_cbor
from fido2.hid import CTAPHID

from authenticator import Authenticator, AuthenticatorConfig, MemoryStore, SqliteStore, Store
from authenticator.commands import (
    Command,
    GetAssertionKey,
    GetAssertionResponseKey,
    MakeCredentialKey,
    MakeCredentialResponseKey,
)
from transports.inprocess import InProcessDevice

ROW_PROVIDERS: Final[list[str]] = [
    "transports.bench:core_rows",
    "transports.webauthn.bench:bench_rows",
    "transports.ctaphid.bench:framer_rows",
]
"""Benchmark row providers, as ``"module:function"``; add yours here."""

BENCH_RP_ID: Final = "bench.fidoemu.example"
_P256: Final = ec.SECP256R1()
_ES256: Final = ec.ECDSA(hashes.SHA256())
_AT_UP: Final = 0x41  # authenticator data flags AT | UP (WebAuthn §6.1)
_UP: Final = 0x01


@dataclass(frozen=True, slots=True)
class BenchSettings:
    """How long to measure: ``rounds`` alternations of ``batch`` operations per side.

    Rows backed by a file store use ``sqlite_batch`` (each of their operations waits for fsync).
    """

    rounds: int = 31
    batch: int = 40
    sqlite_batch: int = 8
    sqlite: bool = True
    work_dir: Path | None = None  # where SQLite stores go (default: a temporary directory)


@dataclass(frozen=True, slots=True)
class Row:
    """One measured figure; ``baseline`` (same unit) makes it a comparison with a ratio."""

    name: str
    ours: float
    baseline: float | None = None
    unit: str = "µs/op"
    baseline_name: str = "lean"

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline <= 0:
            return None
        return self.ours / self.baseline


def compare(
    ours: Callable[[], object],
    baseline: Callable[[], object],
    *,
    rounds: int,
    batch: int,
) -> tuple[float, float]:
    """Median µs per call of ``ours`` and ``baseline``, measured in alternating batches."""
    if rounds < 1 or batch < 1:
        raise ValueError("rounds and batch must be positive")
    ours(), baseline()  # warm caches and lazy initialisation on both sides
    samples: tuple[list[float], list[float]] = ([], [])
    sides = (ours, baseline)
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for round_number in range(rounds):
            order = (0, 1) if round_number % 2 == 0 else (1, 0)
            for side in order:
                function = sides[side]
                started = time.perf_counter_ns()
                for _ in range(batch):
                    function()
                elapsed = time.perf_counter_ns() - started
                samples[side].append(elapsed / batch / 1000)
    finally:
        if was_enabled:
            gc.enable()
    return statistics.median(samples[0]), statistics.median(samples[1])


# -- the requests a client sends ------------------------------------------------------------


def make_credential_request(*, resident: bool, client_data_hash: bytes = bytes(32)) -> bytes:
    """A makeCredential message as python-fido2 encodes it (ES256, one fixed user)."""
    params: dict[int, Any] = {
        MakeCredentialKey.CLIENT_DATA_HASH: client_data_hash,
        MakeCredentialKey.RP: {"id": BENCH_RP_ID, "name": "Bench"},
        MakeCredentialKey.USER: {"id": b"bench-user", "name": "bench", "displayName": "Bench"},
        MakeCredentialKey.PUB_KEY_CRED_PARAMS: [{"alg": -7, "type": "public-key"}],
    }
    if resident:
        params[MakeCredentialKey.OPTIONS] = {"rk": True}
    return bytes([Command.MAKE_CREDENTIAL]) + fido2_cbor.encode(_int_keys(params))


def get_assertion_request(
    allow: Sequence[bytes] = (), *, client_data_hash: bytes = bytes(32)
) -> bytes:
    params: dict[int, Any] = {
        GetAssertionKey.RP_ID: BENCH_RP_ID,
        GetAssertionKey.CLIENT_DATA_HASH: client_data_hash,
    }
    if allow:
        params[GetAssertionKey.ALLOW_LIST] = [{"id": i, "type": "public-key"} for i in allow]
    return bytes([Command.GET_ASSERTION]) + fido2_cbor.encode(_int_keys(params))


def _int_keys(params: dict[int, Any]) -> dict[int, Any]:
    return {int(k): v for k, v in params.items()}


# -- the lean pipeline ----------------------------------------------------------------------


class LeanAuthenticator:
    """The unavoidable work of each command, with ready key objects and no checks or storage."""

    def __init__(
        self, attestation_key: ec.EllipticCurvePrivateKey, certificate: bytes, aaguid: bytes
    ) -> None:
        self._aaguid = aaguid
        self._attestation_key = attestation_key
        self._x5c = [certificate]
        self.assertion_key = ec.generate_private_key(_P256)
        self._credential_id = bytes(range(32))

    def make_credential(self, message: bytes) -> bytes:
        params = cbor2.loads(message[1:])
        client_data_hash = params[1]
        rp_id_hash = hashlib.sha256(params[2]["id"].encode()).digest()
        key = ec.generate_private_key(_P256)
        numbers = key.public_key().public_numbers()
        cose_key = {
            1: 2,
            3: -7,
            -1: 1,
            -2: numbers.x.to_bytes(32, "big"),
            -3: numbers.y.to_bytes(32, "big"),
        }
        credential_id = os.urandom(32)  # a resident credential's random ID
        auth_data = (
            rp_id_hash
            + struct.pack(">BI", _AT_UP, 0)
            + self._aaguid
            + struct.pack(">H", len(credential_id))
            + credential_id
            + cbor2.dumps(cose_key, canonical=True)
        )
        signature = self._attestation_key.sign(auth_data + client_data_hash, _ES256)
        response = {
            MakeCredentialResponseKey.FMT.value: "packed",
            MakeCredentialResponseKey.AUTH_DATA.value: auth_data,
            MakeCredentialResponseKey.ATT_STMT.value: {
                "alg": -7,
                "sig": signature,
                "x5c": self._x5c,
            },
        }
        return b"\x00" + cbor2.dumps(response, canonical=True)

    def get_assertion(self, message: bytes) -> bytes:
        params = cbor2.loads(message[1:])
        rp_id_hash = hashlib.sha256(params[1].encode()).digest()
        auth_data = rp_id_hash + struct.pack(">BI", _UP, 1)
        signature = self.assertion_key.sign(auth_data + params[2], _ES256)
        response = {
            GetAssertionResponseKey.CREDENTIAL.value: {
                "id": self._credential_id,
                "type": "public-key",
            },
            GetAssertionResponseKey.AUTH_DATA.value: auth_data,
            GetAssertionResponseKey.SIGNATURE.value: signature,
        }
        return b"\x00" + cbor2.dumps(response, canonical=True)


def lean_for(auth: Authenticator) -> LeanAuthenticator:
    """A lean pipeline holding ``auth``'s own batch attestation key and certificate."""
    batch = auth.context.attestation.batch(auth.config.aaguid)
    key = batch.key.private_key
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("packed batch attestation uses a P-256 key")
    certificate = batch.certificate.public_bytes(serialization.Encoding.DER)
    return LeanAuthenticator(key, certificate, auth.config.aaguid)


# -- the core rows --------------------------------------------------------------------------


def _check_ok(response: bytes) -> bytes:
    if not response or response[0] != 0:
        raise RuntimeError(f"benchmark command failed with status 0x{response[:1].hex()}")
    return response


def _credential_id(response: bytes) -> bytes:
    decoded = cbor2.loads(_check_ok(response)[1:])
    auth_data: bytes = decoded[MakeCredentialResponseKey.AUTH_DATA]
    length = int.from_bytes(auth_data[53:55], "big")
    return auth_data[55 : 55 + length]


def store_rows(label: str, store: Store, settings: BenchSettings, batch: int) -> list[Row]:
    """The three command rows on one store."""
    auth = Authenticator(store, config=AuthenticatorConfig())
    device = InProcessDevice(auth)
    cbor_command = CTAPHID.CBOR

    def call(message: bytes) -> Callable[[], bytes]:
        return functools.partial(device.call, cbor_command, message)

    lean = lean_for(auth)

    make_resident = make_credential_request(resident=True)
    make_wrapped = make_credential_request(resident=False)
    _check_ok(device.call(cbor_command, make_resident))
    wrapped_id = _credential_id(device.call(cbor_command, make_wrapped))
    discoverable = get_assertion_request()
    allowed = get_assertion_request([wrapped_id])
    _check_ok(device.call(cbor_command, discoverable))
    _check_ok(device.call(cbor_command, allowed))

    cases = [
        ("makeCredential (resident)", make_resident, lean.make_credential),
        ("getAssertion (discoverable)", discoverable, lean.get_assertion),
        ("getAssertion (allow list)", allowed, lean.get_assertion),
    ]
    rows = []
    for name, message, lean_command in cases:
        ours_us, lean_us = compare(
            call(message),
            functools.partial(lean_command, message),
            rounds=settings.rounds,
            batch=batch,
        )
        rows.append(Row(f"{name}, {label}", ours_us, lean_us))
    return rows


def core_rows(settings: BenchSettings) -> list[Row]:
    """makeCredential and getAssertion through ``InProcessDevice.call``, memory and SQLite."""
    rows = store_rows("memory", MemoryStore(), settings, settings.batch)
    if settings.sqlite:
        with tempfile.TemporaryDirectory(prefix="fidoemu-bench-", dir=settings.work_dir) as tmp:
            store = SqliteStore(Path(tmp) / "bench.sqlite")
            try:
                rows += store_rows("sqlite", store, settings, settings.sqlite_batch)
            finally:
                store.close()
    return rows


# -- running and reporting ------------------------------------------------------------------


RowLike = Row | tuple[str, float, float]
"""A provider may return ``Row``s or ``(name, ours µs, baseline µs)`` tuples."""


def load_provider(spec: str) -> Callable[..., Iterable[RowLike]]:
    module_name, _, function_name = spec.partition(":")
    provider: Callable[..., Iterable[RowLike]] = getattr(
        importlib.import_module(module_name), function_name
    )
    return provider


def _call_provider(
    provider: Callable[..., Iterable[RowLike]], settings: BenchSettings
) -> Iterable[RowLike]:
    """Providers take the settings, or nothing (a module with its own fixed sizes)."""
    if inspect.signature(provider).parameters:
        return provider(settings)
    return provider()


def _as_row(item: RowLike) -> Row:
    if isinstance(item, Row):
        return item
    name, ours, baseline = item
    return Row(name, float(ours), float(baseline))


def run(
    settings: BenchSettings,
    providers: Iterable[str | Callable[..., Iterable[RowLike]]] | None = None,
    *,
    progress: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Every provider's rows, in order; ``progress`` sees each row as soon as it is measured."""
    rows: list[Row] = []
    for entry in ROW_PROVIDERS if providers is None else providers:
        provider = load_provider(entry) if isinstance(entry, str) else entry
        for item in _call_provider(provider, settings):
            row = _as_row(item)
            rows.append(row)
            if progress is not None:
                progress(row)
    return rows


HEADER: Final = f"{'benchmark':<42} {'ours':>12} {'baseline':>12} {'ratio':>7}"


def format_row(row: Row) -> str:
    ours = f"{row.ours:,.1f} {row.unit}"
    if row.baseline is None:
        return f"{row.name:<42} {ours:>12}"
    ratio = row.ratio
    ratio_text = "n/a" if ratio is None else f"{ratio:.2f}"
    return f"{row.name:<42} {row.ours:>12,.1f} {row.baseline:>12,.1f} {ratio_text:>7}"


def report(rows: Iterable[Row], out: TextIO) -> None:
    for row in rows:
        print(format_row(row), file=out)
