"""The recovery escrow: a simulated HSM service (Apple's escrow HSM cluster [S12 sec3e341e75d],
Google's Cloud Key Vault and GPM PIN [S14c, S6]) that releases an account's domain secrets only
for the right recovery code, and only a limited number of wrong codes.

Theory of operation:

* **State.** The HSM's master key and each account's attempt counter live in the HSM's own
  database (``backend.hsm``), never in the cloud database. The cloud database holds one
  **escrow record** per account: the domain secrets, a random salt and
  ``scrypt(recovery code, salt)``, sealed under a key derived from the HSM's master key and
  bound to the account and its generation. Holding the cloud database (``backend.dump()``)
  gives nothing to guess against offline: no salt, no verifier, no secret.
* **Enroll** (the domain's first device, with a recovery code): write the record, arm the
  counter with the provider's ``recovery_attempts``.
* **Deposit** (a member device rotated the key epoch): the HSM re-seals the record with the new
  secrets, keeping the verifier. Member devices hold no escrow key, so a removed device can't
  open the escrow; it can only guess the code online like anyone else.
* **Recover.** Spend one attempt first (so concurrent guesses from several processes can't
  exceed the limit), then check the code against the verifier: right gives the attempt back
  and releases the secrets; wrong keeps it spent, and the last wrong one destroys the escrow
  (counter and record). Then only a domain reset is left.

The code itself reaches the simulated HSM; Apple's uses an SRP proof so the code never leaves
the device [S12]. That difference changes nothing a relying party or these tests can observe.
"""

from __future__ import annotations

import hmac

from authenticator import cbor
from authenticator.keys import Entropy
from transports.sync.backend import CloudBackend
from transports.sync.crypto import (
    SALT_SIZE,
    SCRYPT_N,
    SECRET_SIZE,
    CryptoError,
    DomainSecrets,
    open_escrow,
    recovery_verifier,
    seal_escrow,
)


class EscrowError(Exception):
    """The HSM refused to release the secrets; ``attempts_left`` is 0 once it has none."""

    def __init__(self, message: str, attempts_left: int) -> None:
        super().__init__(message)
        self.attempts_left = attempts_left


class EscrowService:
    """The HSM in front of the escrow records of every account in one cloud.

    ``scrypt_n`` is the verifier's cost for codes enrolled from now on (each record keeps its
    own): defence in depth should the HSM's key leak. Tests that make many guesses lower it."""

    def __init__(self, backend: CloudBackend, entropy: Entropy, scrypt_n: int = SCRYPT_N) -> None:
        self._backend = backend
        self._entropy = entropy
        self._key: bytes | None = None
        self.scrypt_n = scrypt_n

    def __repr__(self) -> str:
        return f"EscrowService({self._backend!r})"

    def _master_key(self) -> bytes:
        if self._key is None:
            self._key = self._backend.hsm.master_key(self._entropy.random_bytes(SECRET_SIZE))
        return self._key

    def record_aad(self, account: str) -> bytes:
        """What an escrow record is bound to: the account and its generation (a reset ends it)."""
        row = self._backend.get_account(account)
        return cbor.encode(["fidoemu escrow", account, 0 if row is None else row.generation])

    def _seal(
        self, account: str, salt: bytes, cost: int, verifier: bytes, secrets: DomainSecrets
    ) -> None:
        payload = cbor.encode(
            {"salt": salt, "n": cost, "verifier": verifier, "secrets": secrets.to_bytes()}
        )
        sealed = seal_escrow(self._master_key(), payload, self.record_aad(account), self._entropy)
        self._backend.put_escrow(account, sealed)

    def _open(self, account: str) -> tuple[bytes, int, bytes, DomainSecrets] | None:
        sealed = self._backend.escrow(account)
        if sealed is None:
            return None
        try:
            fields = cbor.loads_lenient(
                open_escrow(self._master_key(), sealed, self.record_aad(account))
            )
            return (
                bytes(fields["salt"]),
                int(fields["n"]),
                bytes(fields["verifier"]),
                DomainSecrets.from_bytes(bytes(fields["secrets"])),
            )
        except (CryptoError, KeyError, TypeError, ValueError):
            return None  # not sealed by this HSM (another cloud's, or tampered with)

    def enroll(
        self, account: str, recovery_code: str, secrets: DomainSecrets, attempts: int
    ) -> None:
        """Escrow ``secrets`` behind ``recovery_code`` with ``attempts`` wrong guesses allowed."""
        salt, cost = self._entropy.random_bytes(SALT_SIZE), self.scrypt_n
        self._seal(account, salt, cost, recovery_verifier(recovery_code, salt, cost), secrets)
        self._backend.hsm.set_attempts(account, attempts)

    def deposit(self, account: str, secrets: DomainSecrets) -> bool:
        """Replace the escrowed secrets after a key rotation; False if there is no escrow."""
        if self._backend.hsm.attempts(account) is None:
            return False
        opened = self._open(account)
        if opened is None:
            return False
        salt, cost, verifier, _ = opened
        self._seal(account, salt, cost, verifier, secrets)
        return True

    def recover(self, account: str, recovery_code: str) -> DomainSecrets:
        """The escrowed secrets for the right code; ``EscrowError`` otherwise."""
        left = self._backend.hsm.take_attempt(account)
        if left is None:
            raise EscrowError("no recovery escrow: reset the account", 0)
        opened = self._open(account)
        if opened is None:
            self.destroy(account)
            raise EscrowError("the escrow record is gone: reset the account", 0)
        salt, cost, verifier, secrets = opened
        if hmac.compare_digest(recovery_verifier(recovery_code, salt, cost), verifier):
            self._backend.hsm.return_attempt(account)
            return secrets
        if left == 0:
            self.destroy(account)  # Apple: "destroyed after the 10th" failure [S12]
        raise EscrowError(f"wrong recovery code; {left} attempts left", left)

    def attempts_left(self, account: str) -> int:
        return self._backend.hsm.attempts(account) or 0

    def destroy(self, account: str) -> None:
        """No recovery is possible any more (exhausted, or the domain was reset)."""
        self._backend.hsm.forget(account)
        self._backend.delete_escrow(account)
