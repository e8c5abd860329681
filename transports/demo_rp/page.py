"""The demo site's single page: a username field, Register / Log in / Log out buttons, and a
status line that shows the outcome or the browser's error name (WebAuthn L3 §5.1.9-§5.1.11:
``parseCreationOptionsFromJSON``/``parseRequestOptionsFromJSON`` and ``toJSON()``)."""

from __future__ import annotations

from typing import Final

PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>fidoemu demo relying party</title>
<style>
  body { font-family: sans-serif; max-width: 36em; margin: 3em auto; }
  button { margin-right: .5em; padding: .4em 1em; }
  #status { margin-top: 1.5em; padding: .6em; border-radius: 4px; background: #eef; }
  #status.error { background: #fdd; color: #900; }
  #status.ok { background: #dfd; color: #060; }
</style>
</head>
<body>
<h1>fidoemu demo</h1>
<p id="who">Not signed in.</p>
<p>
  <label>Username <input id="username" autocomplete="username webauthn"></label>
</p>
<p>
  <button id="register">Register a passkey</button>
  <button id="login">Sign in with a passkey</button>
  <button id="logout">Sign out</button>
</p>
<div id="status">Ready.</div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const b64 = {
  decode(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(base64 + "===".slice((base64.length + 3) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0)).buffer;
  },
};
function creationOptions(json) {
  if (PublicKeyCredential.parseCreationOptionsFromJSON) {
    return PublicKeyCredential.parseCreationOptionsFromJSON(json);
  }
  return { ...json, challenge: b64.decode(json.challenge),
    user: { ...json.user, id: b64.decode(json.user.id) },
    excludeCredentials: (json.excludeCredentials || []).map(
      (c) => ({ ...c, id: b64.decode(c.id) })) };
}
function requestOptions(json) {
  if (PublicKeyCredential.parseRequestOptionsFromJSON) {
    return PublicKeyCredential.parseRequestOptionsFromJSON(json);
  }
  return { ...json, challenge: b64.decode(json.challenge),
    allowCredentials: (json.allowCredentials || []).map(
      (c) => ({ ...c, id: b64.decode(c.id) })) };
}
async function post(path, body) {
  const response = await fetch(path, { method: "POST", body: JSON.stringify(body || {}),
    headers: { "Content-Type": "application/json" } });
  const data = await response.json();
  if (!response.ok) { throw new Error(data.error || response.statusText); }
  return data;
}
function show(text, kind) {
  const status = $("status");
  status.textContent = text;
  status.className = kind || "";
}
function failure(error) {
  // DOMExceptions carry the browser's name (NotAllowedError, InvalidStateError, ...).
  show((error.name && error.name !== "Error" ? error.name + ": " : "") + error.message, "error");
}
$("register").addEventListener("click", async () => {
  try {
    const begin = await post("/register/options", { username: $("username").value });
    show("Touch your security key...");
    const credential = await navigator.credentials.create(
      { publicKey: creationOptions(begin.options) });
    const done = await post("/register/verify",
      { flow: begin.flow, credential: credential.toJSON() });
    show("Passkey registered for " + done.registered + ".", "ok");
  } catch (error) { failure(error); }
});
$("login").addEventListener("click", async () => {
  try {
    const begin = await post("/login/options");
    show("Touch your security key...");
    const credential = await navigator.credentials.get(
      { publicKey: requestOptions(begin.options) });
    const done = await post("/login/verify",
      { flow: begin.flow, credential: credential.toJSON() });
    $("who").textContent = "Signed in as " + done.user + ".";
    show("Welcome back, " + done.user + "!", "ok");
  } catch (error) { failure(error); }
});
$("logout").addEventListener("click", async () => {
  try {
    await post("/logout");
    $("who").textContent = "Not signed in.";
    show("Signed out.");
  } catch (error) { failure(error); }
});
</script>
</body>
</html>
"""
