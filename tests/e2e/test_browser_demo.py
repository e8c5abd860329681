"""End to end in headless Chromium (Debian's package): the demo passkey site, its real page
JavaScript, and the browser bridge answering navigator.credentials with a fidoemu
authenticator. Register, sign out, sign in with the discoverable passkey, and a denied touch
that the site shows as the browser's NotAllowedError."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from authenticator import Authenticator
from transports.browser import CHROMIUM_ARGS, CHROMIUM_PATH, attach
from transports.demo_rp import DemoServer
from transports.webauthn import ScriptedUser, Trace, deny
from transports.webauthn.checks import AuthenticatorData


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM_PATH, args=list(CHROMIUM_ARGS)
        )
        yield browser
        browser.close()


@pytest.fixture
def site() -> Iterator[DemoServer]:
    with DemoServer() as server:
        yield server


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def test_register_sign_out_sign_in_and_denied(
    page: Page,
    site: DemoServer,
    authenticator: Authenticator,
    fidoemu_trace: Trace,
    tmp_path: Path,
) -> None:
    user = ScriptedUser()
    bridge = attach(page, authenticator, user=user, trace=fidoemu_trace)
    page.goto(site.url)
    status = page.locator("#status")

    page.fill("#username", "alice")
    page.click("#register")
    expect(status).to_have_text("Passkey registered for alice.")
    [passkey] = site.rp.passkeys.values()
    assert passkey.username == "alice"
    stored = authenticator.store.get(passkey.credential_id)
    assert stored is not None and stored.discoverable  # a real passkey, on our authenticator

    page.click("#logout")
    expect(status).to_have_text("Signed out.")
    expect(page.locator("#who")).to_have_text("Not signed in.")

    page.click("#login")  # no username: the discoverable passkey answers
    expect(status).to_have_text("Welcome back, alice!")
    expect(page.locator("#who")).to_have_text("Signed in as alice.")
    assert passkey.sign_count == 1

    page.click("#logout")
    user.then(deny())
    page.click("#login")
    expect(status).to_have_class("error")
    expect(status).to_contain_text("NotAllowedError")
    expect(page.locator("#who")).to_have_text("Not signed in.")
    user.assert_done()
    page.screenshot(path=str(tmp_path / "denied.png"))
    assert (tmp_path / "denied.png").stat().st_size > 1000

    assert bridge.calls == [
        ("create", site.url),
        ("get", site.url),
        ("get", site.url),
    ]
    assert fidoemu_trace.commands().count("GET_ASSERTION") == 2


def test_page_sees_browser_shaped_credentials(
    page: Page, site: DemoServer, authenticator: Authenticator
) -> None:
    """The object the page gets behaves like a PublicKeyCredential."""
    attach(page, authenticator)
    page.goto(site.url)
    result = page.evaluate(
        """async () => {
        const credential = await navigator.credentials.create({ publicKey: {
          challenge: new Uint8Array(32), rp: { name: "Demo" },
          user: { id: new Uint8Array([1, 2, 3]), name: "bob", displayName: "Bob" },
          pubKeyCredParams: [{ type: "public-key", alg: -7 }] } });
        return {
          isCredential: credential instanceof PublicKeyCredential,
          isAttestation: credential.response instanceof AuthenticatorAttestationResponse,
          rawIdLength: credential.rawId.byteLength,
          id: credential.id,
          transports: credential.response.getTransports(),
          algorithm: credential.response.getPublicKeyAlgorithm(),
          authData: Array.from(new Uint8Array(credential.response.getAuthenticatorData())),
          json: credential.toJSON(),
        };
      }"""
    )
    assert result["isCredential"] and result["isAttestation"]
    assert result["json"]["id"] == result["id"]
    assert result["transports"] == ["usb"]
    assert result["algorithm"] == -7
    data = AuthenticatorData.parse(bytes(result["authData"]))
    assert data.credential_id is not None and len(data.credential_id) == result["rawIdLength"]
    assert data.user_present


def test_errors_keep_their_domexception_names(
    page: Page, site: DemoServer, authenticator: Authenticator
) -> None:
    attach(page, authenticator)
    page.goto(site.url)
    names = page.evaluate(
        """async () => {
        const names = [];
        const base = { challenge: new Uint8Array(32),
          user: { id: new Uint8Array([1]), name: "x", displayName: "X" },
          pubKeyCredParams: [{ type: "public-key", alg: -7 }] };
        for (const publicKey of [
          { ...base, rp: { id: "example.com", name: "Other site" } },
          { ...base, rp: { name: "Demo" }, pubKeyCredParams: [{ type: "x", alg: -7 }] },
        ]) {
          try { await navigator.credentials.create({ publicKey }); names.push("none"); }
          catch (error) { names.push(error instanceof DOMException ? error.name : "?"); }
        }
        const controller = new AbortController();
        controller.abort();
        try {
          await navigator.credentials.get({ publicKey: { challenge: new Uint8Array(16) },
            signal: controller.signal });
        } catch (error) { names.push(error.name); }
        try {
          await navigator.credentials.get({ publicKey: { challenge: new Uint8Array(16) } });
        } catch (error) { names.push(error.name); }
        return names;
      }"""
    )
    assert names == ["SecurityError", "NotSupportedError", "AbortError", "NotAllowedError"]


def test_attach_to_a_context_covers_open_and_later_pages(
    browser: Browser, site: DemoServer, authenticator: Authenticator
) -> None:
    """A BrowserContext: a page already open is patched, and so is every page opened later."""
    context = browser.new_context()
    try:
        opened = context.new_page()
        opened.set_default_timeout(15_000)
        opened.goto(site.url)  # before attach: patched by attach itself
        bridge = attach(context, authenticator)
        opened.fill("#username", "bob")
        opened.click("#register")
        expect(opened.locator("#status")).to_have_text("Passkey registered for bob.")

        later = context.new_page()  # after attach: the init script runs in it
        later.set_default_timeout(15_000)
        later.goto(site.url)
        later.click("#login")
        expect(later.locator("#status")).to_have_text("Welcome back, bob!")
        assert bridge.calls == [("create", site.url), ("get", site.url)]
    finally:
        context.close()


def test_attach_async_with_playwrights_async_api(
    site: DemoServer, authenticator: Authenticator
) -> None:
    """attach_async on the async API (in its own thread: the sync API's loop is this one's)."""
    import asyncio
    import threading

    from playwright.async_api import async_playwright
    from playwright.async_api import expect as async_expect

    from transports.browser import attach_async

    outcome: dict[str, object] = {}

    async def scenario() -> None:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM_PATH, args=list(CHROMIUM_ARGS)
            )
            try:
                page = await browser.new_page()
                page.set_default_timeout(15_000)
                await page.goto(site.url)  # an open document, patched by attach_async
                bridge = await attach_async(page, authenticator)
                await page.fill("#username", "carol")
                await page.click("#register")
                status = page.locator("#status")
                await async_expect(status).to_have_text("Passkey registered for carol.")
                await page.click("#logout")
                await page.click("#login")
                await async_expect(status).to_have_text("Welcome back, carol!")
                outcome["calls"] = bridge.calls
            finally:
                await browser.close()

    def run() -> None:
        try:
            asyncio.run(scenario())
        except BaseException as error:  # reported to the test thread below
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive()
    if "error" in outcome:
        raise AssertionError(f"async scenario failed: {outcome['error']!r}")
    assert outcome["calls"] == [("create", site.url), ("get", site.url)]
