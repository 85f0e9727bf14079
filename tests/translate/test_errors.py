"""Upstream errors become the Anthropic errors Claude Code recovers from (docs/wire.md, "Errors")."""

from __future__ import annotations

import orjson
import pytest

from cc_nemo.translate import (
    AnthropicError,
    connect_error,
    invalid_request,
    map_upstream_error,
    stream_error_from_chunk,
    timeout_error,
)


def cf_envelope(code: int, message: str) -> bytes:
    return orjson.dumps(
        {"result": None, "success": False, "errors": [{"code": code, "message": message}]}
    )


def gateway_error(code: int, message: str) -> bytes:
    return orjson.dumps({"success": False, "error": [{"code": code, "message": message}]})


@pytest.mark.parametrize(
    ("status", "body", "expected_status", "expected_type"),
    [
        (
            429,
            cf_envelope(3040, "Capacity temporarily exceeded, please try again."),
            529,
            "overloaded_error",
        ),
        (429, cf_envelope(3021, "Rate limited"), 429, "rate_limit_error"),
        (429, b'{"error":{"message":"slow down"}}', 429, "rate_limit_error"),
        (429, cf_envelope(3036, "daily free allocation"), 402, "billing_error"),
        (401, gateway_error(2009, "Unauthorized"), 401, "authentication_error"),
        (403, cf_envelope(10000, "Authentication error"), 401, "authentication_error"),
        (401, b"unauthorized", 401, "authentication_error"),
        (403, cf_envelope(5016, "model agreement required"), 403, "permission_error"),
        (404, cf_envelope(3042, "Invalid model"), 404, "not_found_error"),
        (404, cf_envelope(7003, "Could not route to /x"), 404, "not_found_error"),
        (405, cf_envelope(7001, "Method not supported"), 404, "not_found_error"),
        (400, gateway_error(2001, "no such gateway"), 404, "not_found_error"),
        (400, gateway_error(2008, "Invalid provider"), 404, "not_found_error"),
        (408, cf_envelope(3007, "timeout"), 504, "timeout_error"),
        (408, cf_envelope(3008, "aborted"), 504, "timeout_error"),
        (413, cf_envelope(3006, "Request is too large"), 413, "request_too_large"),
        (500, cf_envelope(7009, "Upstream service unavailable"), 500, "api_error"),
        (502, b"<html>bad gateway</html>", 500, "api_error"),
        (503, b"Service Unavailable", 529, "overloaded_error"),
        (504, b"Gateway Timeout", 504, "timeout_error"),
        (400, cf_envelope(8001, "Invalid input"), 400, "invalid_request_error"),
        (
            400,
            cf_envelope(5006, "AiError: Bad input: Error: oneOf at '/' not met"),
            400,
            "invalid_request_error",
        ),
        (
            422,
            b'{"object":"error","message":"bad","type":"BadRequestError"}',
            400,
            "invalid_request_error",
        ),
    ],
)
def test_upstream_status_and_code_map_to_anthropic_error(
    status: int, body: bytes, expected_status: int, expected_type: str
) -> None:
    error = map_upstream_error(status, body)
    assert (error.status, error.type) == (expected_status, expected_type)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (cf_envelope(7009, "Upstream service unavailable"), "Upstream service unavailable"),
        (gateway_error(2009, "gw says no"), "gw says no"),
        (b'{"error":{"message":"openai style","type":"x"}}', "openai style"),
        (b'{"error":"plain string error"}', "plain string error"),
        (b'{"message":"top-level message"}', "top-level message"),
        (b"not json at all", "not json at all"),
    ],
)
def test_error_message_is_parsed_in_cloudflare_order(body: bytes, expected: str) -> None:
    assert expected in map_upstream_error(400, body).message


def test_known_code_prefixes_message_with_workers_ai_code() -> None:
    error = map_upstream_error(429, cf_envelope(3040, "Capacity temporarily exceeded"))
    assert error.message == "Upstream (Workers AI 3040): Capacity temporarily exceeded"


def test_code_inside_binding_text_is_found() -> None:
    error = map_upstream_error(500, b'{"error":"3040: Capacity temporarily exceeded"}')
    assert (error.status, error.type) == (529, "overloaded_error")
    assert error.message.startswith("Upstream (Workers AI 3040): ")


def test_unknown_code_prefixes_message_with_status() -> None:
    assert map_upstream_error(418, b"teapot").message == "Upstream 418: teapot"


def test_rate_limit_passes_retry_after_on() -> None:
    error = map_upstream_error(429, b"{}", retry_after="7")
    assert error.retry_after == "7"


@pytest.mark.parametrize(
    ("status", "body", "retryable"),
    [
        (429, cf_envelope(3040, "capacity"), True),
        (429, cf_envelope(3021, "rate"), True),
        (500, b"boom", True),
        (503, b"busy", True),
        (429, cf_envelope(3036, "quota"), False),
        (400, b"bad", False),
        (401, b"no", False),
    ],
)
def test_only_capacity_rate_and_server_errors_are_retryable_by_the_proxy(
    status: int, body: bytes, retryable: bool
) -> None:
    assert map_upstream_error(status, body).retryable_upstream is retryable


@pytest.mark.parametrize(
    ("code", "which_token"),
    [(2009, "AI Gateway token"), (10000, "Cloudflare API token")],
)
def test_authentication_error_says_which_token_failed(code: int, which_token: str) -> None:
    assert which_token in map_upstream_error(401, gateway_error(code, "Unauthorized")).message


VLLM_OVERFLOW = (
    "This model's maximum context length is 262144 tokens. However, you requested 32000 "
    "output tokens and your prompt contains at least 270462 input tokens, for a total of at "
    "least 302462 tokens."
)
VLLM_OUTPUT_OVERFLOW = (
    "This model's maximum context length is 262144 tokens. However, you requested 32000 "
    "output tokens and your prompt contains at least 240000 input tokens, for a total of at "
    "least 272000 tokens."
)


@pytest.mark.parametrize(
    ("body", "kwargs", "expected"),
    [
        (
            cf_envelope(5006, VLLM_OVERFLOW),
            {},
            "prompt is too long: 270462 tokens > 262144 maximum",
        ),
        (
            cf_envelope(5006, VLLM_OUTPUT_OVERFLOW),
            {},
            "input length and `max_tokens` exceed context limit: 240000 + 32000 > 262144",
        ),
        (
            b'{"error":{"message":"Requested token count exceeds the model\'s maximum context '
            b"length of 131072 tokens. You requested a total of 140000 tokens: 139000 tokens "
            b'from the input messages and 1000 tokens for the completion."}}',
            {},
            "prompt is too long: 139000 tokens > 131072 maximum",
        ),
        (
            b'{"error":"too many tokens"}',
            {"estimated_input_tokens": 300_000, "context_window": 256_000},
            "prompt is too long: 300000 tokens > 256000 maximum",
        ),
        (
            b'{"error":"context window exceeded"}',
            {"estimated_input_tokens": 200_000, "context_window": 256_000, "max_tokens": 64_000},
            "input length and `max_tokens` exceed context limit: 200000 + 64000 > 256000",
        ),
        (
            b'{"error":"context length exceeded"}',
            {"estimated_input_tokens": 100_000, "context_window": 256_000, "max_tokens": 1_000},
            "prompt is too long: 256001 tokens > 256000 maximum",
        ),
    ],
)
def test_context_overflow_uses_anthropic_wording_so_claude_code_compacts(
    body: bytes, kwargs: dict, expected: str
) -> None:
    error = map_upstream_error(400, body, **kwargs)
    assert (error.status, error.type, error.message) == (400, "invalid_request_error", expected)


def test_context_overflow_is_never_a_server_error() -> None:
    error = map_upstream_error(413, b"prompt is too long for the context window")
    assert error.status == 400


def test_error_body_and_event_shapes() -> None:
    error = AnthropicError(529, "overloaded_error", "Overloaded")
    assert error.body("req_1") == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": "req_1",
    }
    assert error.event() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


def test_local_error_helpers() -> None:
    assert (connect_error("refused").status, connect_error("refused").type) == (
        529,
        "overloaded_error",
    )
    assert connect_error("refused").retryable_upstream
    assert (timeout_error("slow").status, timeout_error("slow").type) == (504, "timeout_error")
    assert (invalid_request("x").status, invalid_request("x").message) == (400, "x")


@pytest.mark.parametrize(
    ("chunk", "expected_type"),
    [
        ({"error": {"message": "boom", "type": "server_error"}}, "api_error"),
        ({"error": {"message": "3040: Capacity temporarily exceeded"}}, "overloaded_error"),
        ({"success": False, "errors": [{"code": 3040, "message": "cap"}]}, "overloaded_error"),
        ({"object": "error", "message": "bad", "code": 400}, "invalid_request_error"),
    ],
)
def test_error_payload_inside_a_stream_is_recognised(chunk: dict, expected_type: str) -> None:
    error = stream_error_from_chunk(chunk)
    assert error is not None and error.type == expected_type


def test_ordinary_chunk_is_not_an_error() -> None:
    assert (
        stream_error_from_chunk({"choices": [{"delta": {"content": "hi"}}], "error": None}) is None
    )
