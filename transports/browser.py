"""The browser bridge: a real page's ``navigator.credentials.create/get`` answered by fidoemu
authenticators, through Playwright's ``expose_binding`` (WebAuthn L3 §5.1.3, §5.1.4).

Theory of operation: ``attach(page_or_context, authenticator)`` exposes two bindings and adds
an init script to every document. The script replaces ``navigator.credentials.create/get``
for ``publicKey`` requests: it serializes the options to the W3C JSON form (ArrayBuffers as
base64url), calls the binding, and turns the answer back into a ``PublicKeyCredential``-like
object (its prototype is the browser's, so ``instanceof`` holds; ``toJSON()``,
``getClientExtensionResults()``, ``response.getTransports()`` and friends work) or throws the
``DOMException`` whose name ``WebAuthnClient`` raised. On the Python side the binding runs a
``WebAuthnClient`` for the calling frame's origin (and the top frame's, for iframes), so RP ID
checks, client data and errors are exactly those of the in-process client. Other credential
types (passwords, federated) still go to the browser.

Use Playwright's sync API with ``attach``; ``attach_async`` is the same for the async API.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from transports.webauthn import ScriptedUser, Trace, WebAuthnClient, WebAuthnError
from transports.webauthn.client import Attachable

log = logging.getLogger("fidoemu.browser")

CREATE_BINDING: Final = "__fidoemuCreate"
GET_BINDING: Final = "__fidoemuGet"

INIT_SCRIPT: Final = r"""
(() => {
  if (window.__fidoemuInstalled) { return; }
  window.__fidoemuInstalled = true;
  const CREATE = "@CREATE@", GET = "@GET@";
  const isBuffer = (v) => v instanceof ArrayBuffer || ArrayBuffer.isView(v);
  const encode = (v) => {
    const bytes = v instanceof ArrayBuffer ? new Uint8Array(v)
      : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    let text = "";
    for (const b of bytes) { text += String.fromCharCode(b); }
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };
  const decode = (text) => {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(base64 + "===".slice((base64.length + 3) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0)).buffer;
  };
  const toJSON = (value) => {
    if (isBuffer(value)) { return encode(value); }
    if (Array.isArray(value)) { return value.map(toJSON); }
    if (value && typeof value === "object") {
      const out = {};
      for (const [key, inner] of Object.entries(value)) {
        if (inner !== undefined) { out[key] = toJSON(inner); }
      }
      return out;
    }
    return value;
  };
  const failure = (error) => (error.name === "TypeError"
    ? new TypeError(error.message) : new DOMException(error.message, error.name));
  const prototypeOf = (name) => (window[name] ? window[name].prototype : Object.prototype);
  const credential = (json) => {
    const r = json.response;
    const registration = "attestationObject" in r;
    const response = registration ? {
      clientDataJSON: decode(r.clientDataJSON),
      attestationObject: decode(r.attestationObject),
      getTransports: () => [...(r.transports || [])],
      getAuthenticatorData: () => decode(r.authenticatorData),
      getPublicKey: () => (r.publicKey ? decode(r.publicKey) : null),
      getPublicKeyAlgorithm: () => r.publicKeyAlgorithm,
    } : {
      clientDataJSON: decode(r.clientDataJSON),
      authenticatorData: decode(r.authenticatorData),
      signature: decode(r.signature),
      userHandle: r.userHandle ? decode(r.userHandle) : null,
    };
    Object.setPrototypeOf(response, prototypeOf(registration
      ? "AuthenticatorAttestationResponse" : "AuthenticatorAssertionResponse"));
    const result = {
      id: json.id,
      rawId: decode(json.rawId),
      type: json.type,
      authenticatorAttachment: json.authenticatorAttachment,
      response,
      getClientExtensionResults: () => JSON.parse(JSON.stringify(json.clientExtensionResults)),
      toJSON: () => JSON.parse(JSON.stringify(json)),
    };
    Object.setPrototypeOf(result, prototypeOf("PublicKeyCredential"));
    return result;
  };
  if (!navigator.credentials) {
    Object.defineProperty(navigator, "credentials", { value: {}, configurable: true });
  }
  const container = navigator.credentials;
  const call = (binding, original) => async function (options) {
    if (!options || !options.publicKey) {
      if (original) { return original.call(container, options); }
      throw new TypeError("fidoemu: only publicKey credentials are emulated");
    }
    const signal = options.signal;
    if (signal && signal.aborted) {
      throw new DOMException("The operation was aborted.", "AbortError");
    }
    const answer = await window[binding](toJSON(options.publicKey), options.mediation || null);
    if (signal && signal.aborted) {
      throw new DOMException("The operation was aborted.", "AbortError");
    }
    if (answer.error) { throw failure(answer.error); }
    return credential(answer.credential);
  };
  container.create = call(CREATE, container.create);
  container.get = call(GET, container.get);
})();
""".replace("@CREATE@", CREATE_BINDING).replace("@GET@", GET_BINDING)


class _Frame(Protocol):
    @property
    def url(self) -> str: ...


def origin_of(url: str) -> str:
    """The serialized origin of a URL (scheme://host[:port])."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return "null"  # an opaque origin (about:blank, data:)
    return f"{parts.scheme}://{parts.netloc}"


class BrowserBridge:
    """The Python side of the bindings: one ``WebAuthnClient`` per (origin, top origin), all
    sharing the attached authenticators, the scripted user and the trace."""

    def __init__(
        self,
        authenticators: Sequence[Attachable],
        *,
        user: ScriptedUser | None = None,
        trace: Trace | None = None,
    ) -> None:
        self.authenticators = list(authenticators)
        self.user = user or ScriptedUser()
        self.trace = trace
        self.calls: list[tuple[str, str]] = []  # (ceremony, origin), for tests
        self._clients: dict[tuple[str, str | None], WebAuthnClient] = {}

    def client(self, origin: str, top_origin: str | None = None) -> WebAuthnClient:
        key = (origin, top_origin if top_origin != origin else None)
        client = self._clients.get(key)
        if client is None:
            client = WebAuthnClient(
                origin, self.authenticators, top_origin=key[1], user=self.user, trace=self.trace
            )
            self._clients[key] = client
        return client

    def create(self, source: dict[str, Any], options: Any, mediation: Any = None) -> dict[str, Any]:
        return self._ceremony("create", source, options)

    def get(self, source: dict[str, Any], options: Any, mediation: Any = None) -> dict[str, Any]:
        return self._ceremony("get", source, options)

    def _ceremony(self, kind: str, source: dict[str, Any], options: Any) -> dict[str, Any]:
        frame: _Frame = source["frame"]
        origin = origin_of(frame.url)
        page = source.get("page")
        top_origin = origin_of(page.main_frame.url) if page is not None else None
        self.calls.append((kind, origin))
        try:
            client = self.client(origin, top_origin)
            result = client.create(options) if kind == "create" else client.get(options)
        except WebAuthnError as error:
            if self.trace is not None:
                self.trace.note(f"browser {kind} at {origin}: {error.name}: {error.message}")
            return {"error": error.to_json()}
        except Exception as error:  # a bug must not hang the page: report it, keep serving
            log.exception("fidoemu browser bridge: %s failed", kind)
            return {"error": {"name": "UnknownError", "message": f"fidoemu: {error!r}"}}
        return {"credential": result}


def _open_frames(target: Any) -> list[Any]:
    """The frames of the documents already open: a page's, or every page's of a context."""
    pages = getattr(target, "pages", None)
    if pages is not None:
        return [frame for page in pages for frame in page.frames]
    return list(getattr(target, "frames", ()))


def _bridge(
    authenticator: Attachable | Sequence[Attachable],
    user: ScriptedUser | None,
    trace: Trace | None,
) -> BrowserBridge:
    if isinstance(authenticator, Sequence):
        return BrowserBridge(list(authenticator), user=user, trace=trace)
    return BrowserBridge([authenticator], user=user, trace=trace)


def attach(
    target: Any,
    authenticator: Attachable | Sequence[Attachable],
    *,
    user: ScriptedUser | None = None,
    trace: Trace | None = None,
) -> BrowserBridge:
    """Route a Playwright (sync API) ``Page`` or ``BrowserContext``'s WebAuthn calls to
    ``authenticator`` (one or several). Documents already open in a page are patched too."""
    bridge = _bridge(authenticator, user, trace)
    target.expose_binding(CREATE_BINDING, bridge.create)
    target.expose_binding(GET_BINDING, bridge.get)
    target.add_init_script(INIT_SCRIPT)
    for frame in _open_frames(target):
        frame.evaluate(INIT_SCRIPT)
    return bridge


async def attach_async(
    target: Any,
    authenticator: Attachable | Sequence[Attachable],
    *,
    user: ScriptedUser | None = None,
    trace: Trace | None = None,
) -> BrowserBridge:
    """``attach`` for Playwright's async API."""
    bridge = _bridge(authenticator, user, trace)
    await target.expose_binding(CREATE_BINDING, bridge.create)
    await target.expose_binding(GET_BINDING, bridge.get)
    await target.add_init_script(INIT_SCRIPT)
    for frame in _open_frames(target):
        await frame.evaluate(INIT_SCRIPT)
    return bridge


CHROMIUM_ARGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""Flags for Debian's Chromium in containers and CI (no sandbox, no network chatter)."""
CHROMIUM_PATH: Final = "/usr/bin/chromium"
