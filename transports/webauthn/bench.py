"""Benchmark: a full WebAuthn ceremony (options JSON in, response JSON out) through
``WebAuthnClient`` against the same ceremony through python-fido2's ``Fido2Client`` over
``InProcessDevice``, side by side in one run.

Both sides get the same options JSON text (py_webauthn's ``options_to_json``: ES256, a
discoverable credential, a fresh challenge each time) and return the response as a JSON-ready
dict (python-fido2: ``dict(response)``), over equal fresh authenticators. The figure that
matters is the ratio, measured in alternating batches by ``transports.bench.compare`` so that
machine noise falls on both sides alike.

Run: ``python -m transports.webauthn.bench``; ``fidoemu bench`` includes ``bench_rows``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from fido2.client import DefaultClientDataCollector, Fido2Client
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from authenticator import Authenticator
from transports.bench import BenchSettings, Row, compare, format_row
from transports.inprocess import InProcessDevice
from transports.webauthn.client import WebAuthnClient

ORIGIN = "https://bench.example"
RP_ID = "bench.example"


def registration_options() -> str:
    return options_to_json(
        generate_registration_options(
            rp_id=RP_ID,
            rp_name="Bench",
            user_name="bench",
            user_id=b"bench-user",
            supported_pub_key_algs=[COSEAlgorithmIdentifier.ECDSA_SHA_256],
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.DISCOURAGED,
            ),
        )
    )


def authentication_options() -> str:
    return options_to_json(
        generate_authentication_options(
            rp_id=RP_ID, user_verification=UserVerificationRequirement.DISCOURAGED
        )
    )


def _ours() -> tuple[Callable[[], Any], Callable[[], Any]]:
    client = WebAuthnClient(ORIGIN, Authenticator())
    create_json, get_json = registration_options(), authentication_options()
    client.create(create_json)
    return (lambda: client.create(create_json)), (lambda: client.get(get_json))


def _fido2() -> tuple[Callable[[], Any], Callable[[], Any]]:
    client = Fido2Client(InProcessDevice(Authenticator()), DefaultClientDataCollector(ORIGIN))
    create_json, get_json = registration_options(), authentication_options()

    def create() -> dict[str, Any]:
        return dict(client.make_credential(json.loads(create_json)))

    def get() -> dict[str, Any]:
        return dict(client.get_assertion(json.loads(get_json)).get_response(0))

    create()
    return create, get


def bench_rows(settings: BenchSettings | None = None) -> list[Row]:
    """``fidoemu bench`` rows: (name, ours, baseline) in µs per ceremony, baseline Fido2Client."""
    settings = settings or BenchSettings()
    batch = max(1, settings.batch // 4)
    ours_create, ours_get = _ours()
    fido2_create, fido2_get = _fido2()
    rows = []
    for name, ours, baseline in (
        ("WebAuthn registration (JSON in/out)", ours_create, fido2_create),
        ("WebAuthn authentication (JSON in/out)", ours_get, fido2_get),
    ):
        ours_us, baseline_us = compare(ours, baseline, rounds=settings.rounds, batch=batch)
        rows.append(Row(name, ours_us, baseline_us, baseline_name="Fido2Client"))
    return rows


def main() -> int:
    rows = bench_rows()
    print(f"{'ceremony':<42} {'ours µs':>12} {'fido2 µs':>12} {'speed-up':>9}")
    for row in rows:
        speedup = (row.baseline or 0.0) / row.ours if row.ours else 0.0
        print(f"{format_row(row)}  ({speedup:.1f}x faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
