"""A small passkey website for end-to-end tests and demos: register a passkey, log out, log
in with it (discoverable, no username), built on py_webauthn and the standard library's HTTP
server. It is the relying party the browser bridge is tested against (docs/browser.md).

Theory of operation: one ``DemoRelyingParty`` keeps users, credentials and pending challenges
in memory. The page calls ``navigator.credentials.create/get`` with the JSON options the server
sends, posts ``credential.toJSON()`` back, and shows the outcome (or the browser's error name)
in ``#status``. Sessions are a random cookie. Not for production: no CSRF protection, no
persistence, one process.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from transports.demo_rp.page import PAGE

SESSION_COOKIE: Final = "demo_session"


@dataclass
class StoredPasskey:
    credential_id: bytes
    public_key: bytes = field(repr=False)
    sign_count: int
    username: str
    user_handle: bytes


@dataclass
class DemoRelyingParty:
    """The site's state and its WebAuthn logic, separate from HTTP so tests can call it."""

    rp_id: str = "localhost"
    rp_name: str = "fidoemu demo"
    origin: str = "http://localhost"
    users: dict[str, bytes] = field(default_factory=dict)  # username -> user handle
    passkeys: dict[bytes, StoredPasskey] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)  # session id -> username
    _challenges: dict[str, tuple[str, bytes, str]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def registration_options(self, username: str) -> tuple[str, str]:
        """(flow id, options JSON) for a new passkey of ``username``."""
        with self._lock:
            user_handle = self.users.setdefault(username, secrets.token_bytes(16))
            exclude = [
                PublicKeyCredentialDescriptor(id=p.credential_id)
                for p in self.passkeys.values()
                if p.username == username
            ]
        options = generate_registration_options(
            rp_id=self.rp_id,
            rp_name=self.rp_name,
            user_name=username,
            user_id=user_handle,
            exclude_credentials=exclude,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
        )
        return self._remember("register", options.challenge, username), options_to_json(options)

    def finish_registration(self, flow: str, credential: dict[str, Any]) -> str:
        kind, challenge, username = self._take(flow)
        if kind != "register":
            raise ValueError("not a registration flow")
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=self.rp_id,
            expected_origin=self.origin,
        )
        with self._lock:
            self.passkeys[verified.credential_id] = StoredPasskey(
                verified.credential_id,
                verified.credential_public_key,
                verified.sign_count,
                username,
                self.users[username],
            )
        return username

    def authentication_options(self) -> tuple[str, str]:
        options = generate_authentication_options(
            rp_id=self.rp_id, user_verification=UserVerificationRequirement.PREFERRED
        )
        return self._remember("login", options.challenge, ""), options_to_json(options)

    def finish_authentication(self, flow: str, credential: dict[str, Any]) -> str:
        kind, challenge, _ = self._take(flow)
        if kind != "login":
            raise ValueError("not a login flow")
        credential_id = base64url_to_bytes(str(credential.get("rawId", "")))
        passkey = self.passkeys.get(credential_id)
        if passkey is None:
            raise ValueError("unknown passkey")
        # WebAuthn §7.2 step 6: a discoverable login must name the passkey's user.
        user_handle = credential.get("response", {}).get("userHandle")
        if user_handle is None:
            raise ValueError("no userHandle: whose passkey is this?")
        if base64url_to_bytes(user_handle) != passkey.user_handle:
            raise ValueError("the passkey belongs to another user")
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=self.rp_id,
            expected_origin=self.origin,
            credential_public_key=passkey.public_key,
            credential_current_sign_count=passkey.sign_count,
        )
        passkey.sign_count = verified.new_sign_count
        return passkey.username

    def _remember(self, kind: str, challenge: bytes, username: str) -> str:
        flow = secrets.token_urlsafe(16)
        with self._lock:
            self._challenges[flow] = (kind, challenge, username)
        return flow

    def _take(self, flow: str) -> tuple[str, bytes, str]:
        with self._lock:
            found = self._challenges.pop(flow, None)
        if found is None:
            raise ValueError("unknown or used challenge")
        return found


class _Handler(BaseHTTPRequestHandler):
    server: DemoServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read the page, not the access log."""

    def do_GET(self) -> None:
        if self.path not in ("/", "/index.html"):
            self._send(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        body = PAGE.encode()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        rp = self.server.rp
        length = int(self.headers.get("Content-Length") or 0)
        try:
            payload = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("expected a JSON object")
            if self.path == "/register/options":
                username = str(payload.get("username") or "").strip()
                if not username:
                    raise ValueError("choose a username")
                flow, options = rp.registration_options(username)
                self._send(HTTPStatus.OK, {"flow": flow, "options": json.loads(options)})
            elif self.path == "/register/verify":
                username = rp.finish_registration(str(payload["flow"]), payload["credential"])
                self._send(HTTPStatus.OK, {"registered": username})
            elif self.path == "/login/options":
                flow, options = rp.authentication_options()
                self._send(HTTPStatus.OK, {"flow": flow, "options": json.loads(options)})
            elif self.path == "/login/verify":
                username = rp.finish_authentication(str(payload["flow"]), payload["credential"])
                session = secrets.token_urlsafe(16)
                rp.sessions[session] = username
                self._send(
                    HTTPStatus.OK,
                    {"user": username},
                    cookie=f"{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict",
                )
            elif self.path == "/logout":
                cookie = SimpleCookie(self.headers.get("Cookie") or "")
                if SESSION_COOKIE in cookie:
                    rp.sessions.pop(cookie[SESSION_COOKIE].value, None)
                self._send(
                    HTTPStatus.OK, {"user": None}, cookie=f"{SESSION_COOKIE}=; Path=/; Max-Age=0"
                )
            else:
                self._send(HTTPStatus.NOT_FOUND, {"error": "not found"})
        except (ValueError, KeyError, TypeError, WebAuthnException) as error:
            self._send(HTTPStatus.BAD_REQUEST, {"error": str(error) or type(error).__name__})

    def _send(self, status: HTTPStatus, body: dict[str, Any], cookie: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if cookie is not None:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        self.wfile.write(data)


class DemoServer(ThreadingHTTPServer):
    """The demo site on 127.0.0.1; browse it as http://localhost:PORT (a secure context)."""

    daemon_threads = True

    def __init__(self, port: int = 0, rp: DemoRelyingParty | None = None) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.port = self.server_address[1]
        self.url = f"http://localhost:{self.port}"
        self.rp = rp or DemoRelyingParty(origin=self.url)
        self.rp.origin = self.url
        self._thread: threading.Thread | None = None

    def start(self) -> DemoServer:
        self._thread = threading.Thread(target=self.serve_forever, name="demo-rp", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["DemoRelyingParty", "DemoServer", "StoredPasskey", "bytes_to_base64url"]
