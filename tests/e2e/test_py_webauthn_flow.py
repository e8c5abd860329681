"""The worked example of docs/browser.md as tests: a py_webauthn relying party (the demo
site's server half) through its whole passkey flow with WebAuthnClient as the browser, and
the attacks a login must resist, with the fixtures of the fidoemu pytest plugin."""

from __future__ import annotations

import pytest
from webauthn.helpers.exceptions import InvalidAuthenticationResponse

from authenticator import Authenticator
from transports.demo_rp import DemoRelyingParty
from transports.webauthn import (
    InvalidStateError,
    NotAllowedError,
    WebAuthnClient,
    choose_account,
    deny,
)
from transports.webauthn.checks import assert_flags

ORIGIN = "http://localhost:8000"
pytestmark = pytest.mark.fidoemu(origin=ORIGIN)


@pytest.fixture
def site() -> DemoRelyingParty:
    return DemoRelyingParty(rp_id="localhost", origin=ORIGIN)


def register(site: DemoRelyingParty, browser: WebAuthnClient, name: str) -> None:
    flow, options = site.registration_options(name)
    assert site.finish_registration(flow, browser.create(options)) == name


def log_in(site: DemoRelyingParty, browser: WebAuthnClient) -> str:
    flow, options = site.authentication_options()
    return site.finish_authentication(flow, browser.get(options))


def test_register_and_sign_in(site: DemoRelyingParty, webauthn_client: WebAuthnClient) -> None:
    register(site, webauthn_client, "alice")
    assert log_in(site, webauthn_client) == "alice"
    assert log_in(site, webauthn_client) == "alice"
    [passkey] = site.passkeys.values()
    assert passkey.sign_count == 2


def test_two_accounts_on_one_key(
    site: DemoRelyingParty, webauthn_client: WebAuthnClient, fidoemu_user: object
) -> None:
    register(site, webauthn_client, "alice")
    register(site, webauthn_client, "bob")
    names = set()
    for index in (0, 1):
        webauthn_client.user.then(choose_account(index))
        names.add(log_in(site, webauthn_client))
    assert names == {"alice", "bob"}


def test_replayed_response_is_refused(
    site: DemoRelyingParty, webauthn_client: WebAuthnClient
) -> None:
    register(site, webauthn_client, "alice")
    flow, options = site.authentication_options()
    response = webauthn_client.get(options)
    site.finish_authentication(flow, response)
    with pytest.raises(ValueError, match="challenge"):
        site.finish_authentication(flow, response)


def test_cloned_key_is_refused(
    site: DemoRelyingParty, webauthn_client: WebAuthnClient, authenticator: Authenticator
) -> None:
    register(site, webauthn_client, "alice")
    log_in(site, webauthn_client)
    assert authenticator.faults is not None
    authenticator.faults.counter_regression = True
    with pytest.raises(InvalidAuthenticationResponse, match="sign count"):
        log_in(site, webauthn_client)
    authenticator.faults.clear()
    assert log_in(site, webauthn_client) == "alice"


def test_missing_user_handle_is_refused(
    site: DemoRelyingParty, webauthn_client: WebAuthnClient, authenticator: Authenticator
) -> None:
    register(site, webauthn_client, "alice")
    assert authenticator.faults is not None
    authenticator.faults.omit_user = True
    with pytest.raises(ValueError, match="userHandle"):
        log_in(site, webauthn_client)


def test_silent_authentication_is_refused(
    site: DemoRelyingParty, webauthn_client: WebAuthnClient, authenticator: Authenticator
) -> None:
    register(site, webauthn_client, "alice")
    assert authenticator.faults is not None
    authenticator.faults.user_present_off = True
    flow, options = site.authentication_options()
    response = webauthn_client.get(options)
    assert_flags(response, up=False)
    with pytest.raises(InvalidAuthenticationResponse, match="not present"):
        site.finish_authentication(flow, response)


def test_user_denies_and_duplicate_registration(
    site: DemoRelyingParty, webauthn_client: WebAuthnClient
) -> None:
    register(site, webauthn_client, "alice")
    webauthn_client.user.then(deny())
    _flow, options = site.authentication_options()
    with pytest.raises(NotAllowedError):
        webauthn_client.get(options)
    _flow, options = site.registration_options("alice")
    with pytest.raises(InvalidStateError):  # excludeCredentials names the existing passkey
        webauthn_client.create(options)
    assert len(site.passkeys) == 1


def test_passkey_from_another_site_is_useless(
    site: DemoRelyingParty, authenticator: Authenticator
) -> None:
    other = WebAuthnClient("https://login.example.com", authenticator)
    from webauthn import generate_registration_options, options_to_json
    from webauthn.helpers.structs import AuthenticatorSelectionCriteria, ResidentKeyRequirement

    other.create(
        options_to_json(
            generate_registration_options(
                rp_id="example.com",
                rp_name="Other",
                user_name="alice",
                authenticator_selection=AuthenticatorSelectionCriteria(
                    resident_key=ResidentKeyRequirement.REQUIRED
                ),
            )
        )
    )
    ours = WebAuthnClient(ORIGIN, authenticator)
    _flow, options = site.authentication_options()
    with pytest.raises(NotAllowedError):  # no passkey for "localhost" on the key
        ours.get(options)
