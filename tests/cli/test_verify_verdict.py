"""Which token `cc-proxy login` blames, from the code Cloudflare answered with."""

from __future__ import annotations

import pytest

from cc_nemo.cloudflare.api import Reply
from cc_nemo.cloudflare.verify import gateway_verdict
from cc_nemo.errors import UserError

MODEL = "workers-ai/@cf/nvidia/nemotron-3-120b-a12b"


def reply(status: int, *codes: int) -> Reply:
    return Reply(status=status, body={}, error_codes=codes, error_message="Authentication error")


@pytest.mark.parametrize(
    ("answer", "blamed"),
    [
        (reply(401, 2009), "AI Gateway token"),
        (reply(400, 10000), "Cloudflare API token"),  # the code alone names Workers AI auth
        (reply(403), "Cloudflare API token"),
    ],
)
def test_the_failing_token_is_named(answer: Reply, blamed: str) -> None:
    with pytest.raises(UserError, match=blamed):
        gateway_verdict(answer, MODEL, has_api_token=True)


def test_capacity_after_auth_counts_as_accepted_credentials() -> None:
    verdict = gateway_verdict(reply(429, 3040), MODEL, has_api_token=True)
    assert verdict.startswith("credentials accepted")
