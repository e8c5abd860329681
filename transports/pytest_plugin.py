"""The ``fidoemu`` pytest plugin (entry point ``pytest11``): fixtures that give every test a
fresh strict authenticator, a WebAuthn client bound to it, scripted users, faults, a
deterministic mode, and a CTAP trace printed when the test fails.

Configuration, most specific first: the ``@pytest.mark.fidoemu(...)`` marker
(``origin``, ``profile``, ``attestation``, ``seed``, ``top_origin``), then the command-line
options ``--fidoemu-origin`` / ``--fidoemu-seed``, then the ini keys ``fidoemu_origin`` /
``fidoemu_seed``. Fixtures: ``authenticator``, ``webauthn_client``, ``fidoemu_user``,
``fidoemu_trace``, ``authenticator_factory``. See docs/harness.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator
from dataclasses import replace
from typing import Any, Final, Protocol

import pytest

from authenticator import PROFILES, Authenticator, AuthenticatorConfig, ManualClock, Store
from authenticator.faults import Faults
from authenticator.keys import Entropy, SeededEntropy
from transports.webauthn import ScriptedUser, Trace, WebAuthnClient

DEFAULT_ORIGIN: Final = "https://example.com"
_TRACE_KEY: Final = pytest.StashKey[Trace]()
MARKER: Final = "fidoemu"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fidoemu", "fidoemu virtual authenticators")
    group.addoption(
        "--fidoemu-origin",
        default=None,
        help=f"origin of the webauthn_client fixture (default {DEFAULT_ORIGIN})",
    )
    group.addoption(
        "--fidoemu-seed",
        default=None,
        help="deterministic mode: keys, credential IDs and signatures derive from this seed",
    )
    parser.addini("fidoemu_origin", "origin of the webauthn_client fixture", default="")
    parser.addini("fidoemu_seed", "deterministic-mode seed for fidoemu fixtures", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "fidoemu(origin=None, profile='security-key', attestation=None, seed=None, "
        "top_origin=None): configure the fidoemu authenticator and webauthn_client fixtures",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    trace = item.stash.get(_TRACE_KEY, None)
    if report.failed and trace is not None and len(trace):
        report.sections.append(("fidoemu CTAP trace", trace.format()))
    return report


def _settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker(MARKER)
    settings: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    config = request.config
    if settings.get("origin") is None:
        settings["origin"] = (
            config.getoption("--fidoemu-origin")
            or config.getini("fidoemu_origin")
            or DEFAULT_ORIGIN
        )
    if settings.get("seed") is None:
        seed = config.getoption("--fidoemu-seed") or config.getini("fidoemu_seed")
        if seed:
            settings["seed"] = seed
    return settings


def seeded_entropy(seed: object, name: str) -> SeededEntropy:
    """Deterministic entropy for one authenticator of one test: the same seed, test and
    authenticator give byte-identical keys, credential IDs and signatures on every run."""
    return SeededEntropy(hashlib.sha256(f"{seed}\x00{name}".encode()).digest())


class AuthenticatorFactory(Protocol):
    def __call__(
        self,
        profile: str | AuthenticatorConfig = ...,
        *,
        attestation: str | None = ...,
        seed: object = ...,
        store: Store | None = ...,
        faults: Faults | None = ...,
        **config: Any,
    ) -> Authenticator: ...


@pytest.fixture
def fidoemu_clock() -> ManualClock:
    """The clock every fixture authenticator of the test shares (moves only when told)."""
    return ManualClock()


@pytest.fixture
def authenticator_factory(
    request: pytest.FixtureRequest, fidoemu_clock: ManualClock
) -> AuthenticatorFactory:
    """Make more authenticators: ``authenticator_factory("platform", attestation="none",
    backup_eligible=True)``; keyword arguments override ``AuthenticatorConfig`` fields."""
    settings = _settings(request)
    made: list[int] = []

    def make(
        profile: str | AuthenticatorConfig = "security-key",
        *,
        attestation: str | None = None,
        seed: object = None,
        store: Store | None = None,
        faults: Faults | None = None,
        **config: Any,
    ) -> Authenticator:
        base = PROFILES[profile] if isinstance(profile, str) else profile
        if config:
            base = replace(base, **config)
        if seed is None:
            seed = settings.get("seed")
        entropy: Entropy | None = None
        if seed is not None:
            entropy = seeded_entropy(seed, f"{request.node.nodeid}#{len(made)}")
        made.append(1)
        return Authenticator(
            store,
            config=base,
            attestation=attestation,
            clock=fidoemu_clock,
            entropy=entropy,
            strict=True,
            faults=faults if faults is not None else Faults(),
        )

    return make


@pytest.fixture
def authenticator(
    request: pytest.FixtureRequest, authenticator_factory: AuthenticatorFactory
) -> Authenticator:
    """A fresh strict authenticator (the marker's profile/attestation/seed; faults all off,
    switchable through ``authenticator.faults``)."""
    settings = _settings(request)
    return authenticator_factory(
        settings.get("profile", "security-key"), attestation=settings.get("attestation")
    )


@pytest.fixture
def fidoemu_trace(request: pytest.FixtureRequest) -> Trace:
    """Every CTAP exchange of the test's clients; printed in the report when the test fails."""
    trace = Trace()
    request.node.stash[_TRACE_KEY] = trace
    return trace


@pytest.fixture
def fidoemu_user() -> ScriptedUser:
    """The person in front of ``webauthn_client``: queue actions with ``.then(...)``."""
    return ScriptedUser()


@pytest.fixture
def webauthn_client(
    request: pytest.FixtureRequest,
    authenticator: Authenticator,
    fidoemu_user: ScriptedUser,
    fidoemu_trace: Trace,
) -> WebAuthnClient:
    """A browser at the configured origin with ``authenticator`` attached."""
    settings = _settings(request)
    return WebAuthnClient(
        settings["origin"],
        authenticator,
        top_origin=settings.get("top_origin"),
        user=fidoemu_user,
        trace=fidoemu_trace,
    )


ClientFactory = Callable[..., WebAuthnClient]


@pytest.fixture
def webauthn_client_factory(fidoemu_user: ScriptedUser, fidoemu_trace: Trace) -> ClientFactory:
    """More browsers: ``webauthn_client_factory("https://other.example", auth1, auth2)``;
    they share the test's scripted user and trace."""

    def make(origin: str, *authenticators: Any, **kwargs: Any) -> WebAuthnClient:
        kwargs.setdefault("user", fidoemu_user)
        kwargs.setdefault("trace", fidoemu_trace)
        return WebAuthnClient(origin, list(authenticators), **kwargs)

    return make
