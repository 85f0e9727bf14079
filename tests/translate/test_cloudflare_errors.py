"""One reader of Cloudflare's error envelopes, for the proxy's error mapping and for `login`."""

from __future__ import annotations

import pytest

from cc_nemo.translate.cloudflare_errors import ErrorEnvelope, parse_error_envelope


@pytest.mark.parametrize(
    ("body", "message", "codes", "known"),
    [
        ({"errors": [{"code": 10000, "message": "Authentication error"}]},
         "Authentication error", (10000,), 10000),
        ({"success": False, "error": [{"code": 2009, "message": "Unauthorized"}]},
         "Unauthorized", (2009,), 2009),
        ({"error": {"message": "3040: Capacity temporarily exceeded", "code": 429}},
         "3040: Capacity temporarily exceeded", (429, 3040), 3040),
        ({"error": "Rate limit exceeded"}, "Rate limit exceeded", (), None),
        ({"message": "model not found", "code": 7003}, "model not found", (7003,), 7003),
        ('{"detail": "5006: bad input"}', "5006: bad input", (5006,), 5006),
        (b"<html>502 Bad Gateway</html>", "<html>502 Bad Gateway</html>", (), None),
        ("3021: slow down", "3021: slow down", (3021,), 3021),
        ({"errors": [{"code": 9999, "message": "new"}]}, "new", (9999,), 9999),
        ({"errors": [{"code": 400, "message": "plain"}]}, "plain", (400,), None),
        ([1, 2], "", (), None),
        ("[1, 2]", "[1, 2]", (), None),
    ],
)  # fmt: skip
def test_every_envelope_shape_gives_its_message_and_codes(
    body: object, message: str, codes: tuple[int, ...], known: int | None
) -> None:
    envelope = parse_error_envelope(body)
    assert envelope.message == message
    assert envelope.codes == codes
    assert envelope.known_code() == known


def test_a_known_code_in_a_message_wins_over_an_http_status_in_the_envelope() -> None:
    assert ErrorEnvelope("x", (503,), (3040,)).known_code() == 3040
