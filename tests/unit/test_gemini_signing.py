"""Gemini private-API signing: Gemini's documented example, nonces, and the server-side verifier."""

from __future__ import annotations

import base64
import itertools
import json
import threading

import pytest

from rtcrypto.exchange.signing import (
    API_KEY_HEADER,
    PAYLOAD_HEADER,
    SIGNATURE_HEADER,
    NonceSource,
    SignedRequestError,
    decode_payload,
    encode_payload,
    private_headers,
    private_payload,
    sign,
    signed_headers,
    verify_private_request,
)

# Gemini REST docs, "Private API invocation": key, secret, payload, its base64 and signature.
DOC_KEY = "mykey"
DOC_SECRET = "1234abcd"
DOC_PAYLOAD_JSON = (
    '{\n    "request": "/v1/order/status",\n    "nonce": 123456,\n\n    "order_id": 18834\n}\n'
)
DOC_PAYLOAD_B64 = (
    "ewogICAgInJlcXVlc3QiOiAiL3YxL29yZGVyL3N0YXR1cyIsCiAgICAibm9uY2UiOiAxMjM0NTYsCgogICAgIm9yZGV"
    "yX2lkIjogMTg4MzQKfQo="
)
DOC_SIGNATURE = "337cc8b4ea692cfe65b4a85fcc9f042b2e3f702ac956fd098d600ab15705775017beae402be773ceee10719ff70d710f"

SECRET = "sandbox-secret-never-in-messages"


def test_documented_example_base64_and_signature() -> None:
    assert base64.b64encode(DOC_PAYLOAD_JSON.encode()).decode() == DOC_PAYLOAD_B64
    assert sign(DOC_PAYLOAD_B64, DOC_SECRET) == DOC_SIGNATURE


def test_documented_example_headers() -> None:
    headers = private_headers(DOC_KEY, DOC_SECRET, DOC_PAYLOAD_B64)
    assert headers == {
        "Content-Type": "text/plain",
        "Content-Length": "0",
        "Cache-Control": "no-cache",
        "X-GEMINI-APIKEY": DOC_KEY,
        "X-GEMINI-PAYLOAD": DOC_PAYLOAD_B64,
        "X-GEMINI-SIGNATURE": DOC_SIGNATURE,
    }


def test_documented_example_passes_the_verifier() -> None:
    headers = private_headers(DOC_KEY, DOC_SECRET, DOC_PAYLOAD_B64)
    verified = verify_private_request(
        headers, "/v1/order/status", {DOC_KEY: DOC_SECRET}.get, lambda key: None
    )
    assert verified.api_key == DOC_KEY
    assert verified.nonce == 123456
    assert verified.payload["order_id"] == 18834


def test_payload_puts_request_and_nonce_first_and_round_trips() -> None:
    payload = private_payload("/v1/order/new", 42, {"symbol": "btcusd", "amount": "0.01"})
    assert list(payload)[:2] == ["request", "nonce"]
    assert decode_payload(encode_payload(payload)) == payload
    with pytest.raises(ValueError, match="must not set"):
        private_payload("/v1/balances", 1, {"nonce": 2})


def test_nonce_increases_when_the_clock_stands_still_or_steps_back() -> None:
    ticks = iter([1_000, 1_000, 1_000, 999, 500, 2_000, 2_000])
    nonce = NonceSource(clock_ms=lambda: next(ticks))
    assert [nonce() for _ in range(7)] == [1_000, 1_001, 1_002, 1_003, 1_004, 2_000, 2_001]
    assert nonce.last == 2_001


def test_nonce_is_epoch_milliseconds() -> None:
    import time

    before = time.time_ns() // 1_000_000
    value = NonceSource()()
    assert before <= value <= time.time_ns() // 1_000_000 + 1


@pytest.mark.parametrize("stuck_clock", [False, True], ids=["real clock", "stuck clock"])
def test_nonce_strictly_increasing_across_threads(stuck_clock: bool) -> None:
    source = NonceSource(clock_ms=(lambda: 1_700_000_000_000) if stuck_clock else None)
    threads, per_thread = 8, 2_000
    results: list[list[int]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def take(into: list[int]) -> None:
        start.wait()
        for _ in range(per_thread):
            into.append(source())

    workers = [threading.Thread(target=take, args=(results[i],)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    every = list(itertools.chain.from_iterable(results))
    assert len(set(every)) == threads * per_thread  # no nonce handed out twice
    for sequence in results:  # each caller sees them rise
        assert all(a < b for a, b in itertools.pairwise(sequence))
    assert source.last == max(every)
    if stuck_clock:  # the guard alone: exactly consecutive integers
        assert sorted(every) == list(range(1_700_000_000_000, 1_700_000_000_000 + len(every)))


# --- the verifier (the simulator's side) ---------------------------------------------------------


def _verify(headers: dict[str, str], path: str = "/v1/balances", last: int | None = None) -> int:
    return verify_private_request(
        headers, path, {"key-1": SECRET}.get, lambda key: last if key == "key-1" else None
    ).nonce


def _good(nonce: int = 100, path: str = "/v1/balances") -> dict[str, str]:
    return signed_headers("key-1", SECRET, path, nonce, {"account": "primary"})


def _refusal(headers: dict[str, str], path: str = "/v1/balances", last: int | None = None) -> str:
    with pytest.raises(SignedRequestError) as caught:
        _verify(headers, path, last)
    assert SECRET not in str(caught.value)
    return caught.value.reason


def test_verifier_accepts_a_good_request() -> None:
    assert _verify(_good(100), last=99) == 100


def test_verifier_rejects_a_tampered_payload() -> None:
    headers = _good()
    tampered = json.loads(base64.b64decode(headers[PAYLOAD_HEADER]))
    tampered["account"] = "someone-else"
    headers[PAYLOAD_HEADER] = encode_payload(tampered)  # the old signature no longer fits
    assert _refusal(headers) == "InvalidSignature"


def test_verifier_rejects_a_tampered_signature() -> None:
    headers = _good()
    last_digit = headers[SIGNATURE_HEADER][-1]
    headers[SIGNATURE_HEADER] = headers[SIGNATURE_HEADER][:-1] + ("0" if last_digit != "0" else "1")
    assert _refusal(headers) == "InvalidSignature"


def test_verifier_rejects_a_wrong_secret_and_an_unknown_key() -> None:
    assert _refusal(signed_headers("key-1", "wrong", "/v1/balances", 5)) == "InvalidSignature"
    assert _refusal(signed_headers("key-2", SECRET, "/v1/balances", 5)) == "InvalidSignature"
    # an unknown key whose "secret" is empty must not pass either
    assert _refusal(signed_headers("key-2", "", "/v1/balances", 5)) == "InvalidSignature"


def test_verifier_rejects_a_payload_signed_for_another_endpoint() -> None:
    assert _refusal(_good(path="/v1/balances"), path="/v1/order/new") == "InvalidSignature"


@pytest.mark.parametrize("nonce", [99, 100])
def test_verifier_rejects_a_nonce_not_above_the_last(nonce: int) -> None:
    assert _refusal(_good(nonce), last=100) == "InvalidNonce"


def test_verifier_rejects_a_non_integer_nonce() -> None:
    payload_b64 = encode_payload({"request": "/v1/balances", "nonce": "soon"})
    assert _refusal(private_headers("key-1", SECRET, payload_b64)) == "InvalidNonce"


def test_verifier_rejects_a_signed_payload_that_is_not_json() -> None:
    payload_b64 = base64.b64encode(b"not json").decode()
    assert _refusal(private_headers("key-1", SECRET, payload_b64)) == "InvalidJson"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (API_KEY_HEADER, "MissingApikeyHeader"),
        (PAYLOAD_HEADER, "MissingPayloadHeader"),
        (SIGNATURE_HEADER, "MissingSignatureHeader"),
    ],
)
def test_verifier_names_a_missing_header(header: str, reason: str) -> None:
    headers = _good()
    del headers[header]
    assert _refusal(headers) == reason
