"""Gemini's error answers map onto the adapter's exception classes (pure: no network)."""

from __future__ import annotations

import pytest

from rtcrypto.exchange.base import (
    AuthenticationError,
    ExchangeError,
    ExchangeUnavailableError,
    InsufficientFundsError,
    NonceError,
    OrderNotFoundError,
    OrderRejectedError,
    RateLimitError,
)
from rtcrypto.exchange.gemini_answers import error_from_response, redact


def body(reason: str, message: str = "details") -> dict[str, str]:
    return {"result": "error", "reason": reason, "message": message}


@pytest.mark.parametrize(
    ("status", "answer", "expected"),
    [
        (400, body("InvalidSignature"), AuthenticationError),
        (400, body("MissingApikeyHeader"), AuthenticationError),
        (400, body("MissingPayloadHeader"), AuthenticationError),
        (400, body("InvalidApiKey"), AuthenticationError),
        (403, body("MissingRole"), AuthenticationError),
        (403, "forbidden", AuthenticationError),
        (400, body("InvalidNonce"), NonceError),
        (429, body("RateLimit"), RateLimitError),
        (429, "Too Many Requests", RateLimitError),
        (400, body("RateLimited"), RateLimitError),
        (406, body("InsufficientFunds"), InsufficientFundsError),
        (406, "", InsufficientFundsError),
        (404, body("OrderNotFound"), OrderNotFoundError),
        (400, body("InvalidPrice"), OrderRejectedError),
        (400, body("InvalidQuantity"), OrderRejectedError),
        (400, body("InvalidSymbol"), OrderRejectedError),
        (400, body("InvalidSide"), OrderRejectedError),
        (400, body("ClientOrderIdTooLong"), OrderRejectedError),
        (500, body("System"), ExchangeUnavailableError),
        (502, "<html>Bad Gateway</html>", ExchangeUnavailableError),
        (503, body("Maintenance"), ExchangeUnavailableError),
        (400, body("SomethingNew"), ExchangeError),
        (404, "not found", ExchangeError),
    ],
)
def test_error_maps_to_the_class(status: int, answer: object, expected: type[Exception]) -> None:
    error = error_from_response(status, answer, "/v1/order/new")
    assert type(error) is expected
    assert error.status == status
    if isinstance(answer, dict):
        assert error.reason == answer["reason"]
        assert answer["message"] in str(error)
    assert "/v1/order/new" in str(error)


def test_nonce_error_is_an_authentication_error() -> None:
    error = error_from_response(400, body("InvalidNonce", "Nonce 5 <= 9"), "/v1/balances")
    assert isinstance(error, AuthenticationError)
    assert "Nonce 5 <= 9" in str(error)


def test_secrets_are_redacted_from_error_messages() -> None:
    secret = "the-api-secret-42"
    error = error_from_response(
        400, body("InvalidSignature", f"bad key {secret}"), "/v1/balances", (secret,)
    )
    assert secret not in str(error)
    assert "***" in str(error)
    assert redact("a b c", ("", "b")) == "a *** c"
