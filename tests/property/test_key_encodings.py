"""The spliced encodings of the hot path equal what the CBOR encoder makes: the COSE_Key in
authenticator data (CTAP2-canonical, CTAP 2.1 §8) and the sealed secrets of a stored key."""

from __future__ import annotations

import cbor2
from hypothesis import given
from hypothesis import strategies as st

from authenticator import cbor
from authenticator.credential import CredentialSecrets
from authenticator.keys import CoseAlgorithm, CredentialKey, Sealer, SeededEntropy

ALGORITHMS = [CoseAlgorithm.ES256, CoseAlgorithm.ES384, CoseAlgorithm.EDDSA, CoseAlgorithm.ED25519]


class _Recorder:
    """A sealer that keeps the plaintext it was given, to compare layouts."""

    def __init__(self) -> None:
        self.plaintexts: list[bytes] = []

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        self.plaintexts.append(plaintext)
        return plaintext


@given(seed=st.integers(min_value=0, max_value=2**32), algorithm=st.sampled_from(ALGORITHMS))
def test_encoded_cose_key_is_the_canonical_encoding(seed: int, algorithm: CoseAlgorithm) -> None:
    key = CredentialKey.generate(algorithm, SeededEntropy(seed))
    encoded = key.encoded_cose_public_key()
    assert encoded == cbor.encode(key.cose_public_key())
    assert cbor.decode(encoded) == key.cose_public_key()  # passes the strict decoder too


@given(
    seed=st.integers(min_value=0, max_value=2**32),
    algorithm=st.sampled_from(ALGORITHMS),
    extra=st.dictionaries(st.sampled_from(["cr", "crUv", "blob"]), st.binary(max_size=40)),
)
def test_sealed_secrets_match_the_encoder_and_open(
    seed: int, algorithm: CoseAlgorithm, extra: dict[str, bytes]
) -> None:
    key = CredentialKey.generate(algorithm, SeededEntropy(seed))
    recorder = _Recorder()
    CredentialSecrets(key, extra).seal(recorder, b"aad")  # type: ignore[arg-type]
    expected = {"alg": int(algorithm), "sk": key.private_bytes(), **extra}
    assert cbor2.loads(recorder.plaintexts[0]) == expected
    assert recorder.plaintexts[0] == cbor.encode_internal(expected)

    sealer = Sealer(bytes(range(32)), SeededEntropy(seed))
    opened = CredentialSecrets.open(
        sealer, CredentialSecrets(key, extra).seal(sealer, b"id"), b"id"
    )
    assert opened is not None
    assert opened.key.private_bytes() == key.private_bytes()
    assert opened.extra == extra
