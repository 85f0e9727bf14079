"""`cc-proxy login`'s credential check: one cheap request, and a message naming the bad token.

Cloudflare answers an AI Gateway auth failure with code 2009 (`cf-aig-authorization`)
and a Workers AI auth failure with code 10000 (`Authorization`), which is how we tell
the user which of the two tokens to fix.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from cc_nemo.cloudflare.api import Reply, one_line, request
from cc_nemo.errors import UserError
from cc_nemo.settings.catalog import ModelSpec
from cc_nemo.settings.credentials import redact
from cc_nemo.settings.runtime import ProviderSettings
from cc_nemo.translate.cloudflare_errors import (
    CAPACITY,
    CLOUDFLARE_AUTH,
    COULD_NOT_ROUTE,
    DAILY_QUOTA,
    GATEWAY_AUTH,
    NO_SUCH_GATEWAY,
    PERMISSION_CODES,
    RATE_LIMIT,
)

# Answers that prove the credentials were accepted even though the test did not complete:
# capacity and rate limits, and account or model restrictions checked after auth.
_ACCEPTED_DESPITE_ERROR = (
    {CAPACITY, RATE_LIMIT, DAILY_QUOTA, 3042, 5006, 8001, 5007} | PERMISSION_CODES
) - {3023}
_SKIP_HINT = "; fix it and log in again, or skip this check with --no-verify"
# AI Gateway's "Invalid provider": a model id without a `provider/` prefix on `/compat`.
_INVALID_PROVIDER = 2008


def verify_credentials(provider: ProviderSettings, model: ModelSpec, timeout: float = 60.0) -> str:
    """Make one cheap upstream request; return a one-line note, or raise UserError."""
    if provider.kind == "cloudflare":
        return asyncio.run(_verify_gateway(provider, model, timeout))
    return asyncio.run(_verify_listing(provider, timeout))


async def _verify_gateway(provider: ProviderSettings, model: ModelSpec, timeout: float) -> str:
    model_id = provider.upstream_model_id(model.model)
    body = {
        "model": model_id,
        "messages": [{"role": "user", "content": "Reply with OK."}],
        "max_tokens": 1,
        "stream": False,
    }
    reply = await request(
        "POST",
        provider.chat_completions_url,
        headers=provider.headers,
        json_body=body,
        timeout=timeout,
    )
    return gateway_verdict(reply, model_id, has_api_token="Authorization" in provider.headers)


def gateway_verdict(reply: Reply, model_id: str, *, has_api_token: bool) -> str:
    """Map the test completion's answer to a note, or a UserError naming the failing token."""
    detail = _detail(reply)
    if reply.ok:
        return f"credentials verified: {model_id} answered"
    codes = set(reply.error_codes)
    if GATEWAY_AUTH in codes:
        raise UserError(
            f"the AI Gateway token was rejected (cf-aig-authorization, code 2009{detail}); "
            "create one under AI Gateway → your gateway → Settings → Authentication" + _SKIP_HINT
        )
    if NO_SUCH_GATEWAY in codes:
        raise UserError(
            f"no such AI Gateway (code 2001{detail}): check the gateway name" + _SKIP_HINT
        )
    if _INVALID_PROVIDER in codes:
        raise UserError(
            f"AI Gateway found no provider in the model id {model_id!r} (code 2008{detail}): "
            "the compat endpoint wants workers-ai/@cf/… ids, the workers-ai endpoint bare "
            "@cf/… ones (--endpoint)" + _SKIP_HINT
        )
    if COULD_NOT_ROUTE in codes or reply.status == 404:
        raise UserError(
            f"the gateway URL could not be routed (HTTP {reply.status}{detail}): "
            "check the account id and gateway name" + _SKIP_HINT
        )
    workers_ai_refused = reply.status in (401, 403) or CLOUDFLARE_AUTH in codes
    if workers_ai_refused and not codes & _ACCEPTED_DESPITE_ERROR:
        if has_api_token:
            raise UserError(
                f"the Cloudflare API token was rejected by Workers AI (Authorization, "
                f"HTTP {reply.status}{detail}); it needs the Workers AI Read and Edit permissions"
                + _SKIP_HINT
            )
        raise UserError(
            f"Workers AI refused the request (HTTP {reply.status}{detail}): this gateway has no "
            "stored Workers AI key, so also give a Cloudflare API token with Workers AI permissions"
            + _SKIP_HINT
        )
    if codes & _ACCEPTED_DESPITE_ERROR or reply.status == 429:
        return (
            f"credentials accepted, but the test request to {model_id} did not complete "
            f"(HTTP {reply.status}{detail})"
        )
    raise UserError(f"the test request failed (HTTP {reply.status}{detail})" + _SKIP_HINT)


async def _verify_listing(provider: ProviderSettings, timeout: float) -> str:
    base = provider.base_url.rstrip("/")
    headers = dict(provider.headers)
    if provider.kind == "anthropic":
        url = f"{base}/models" if base.endswith("/v1") else f"{base}/v1/models"
        headers["anthropic-version"] = "2023-06-01"
    else:
        url = f"{base}/models"
    reply = await request("GET", url, headers=headers, timeout=timeout)
    return listing_verdict(reply, url, has_key=bool(provider.headers))


def listing_verdict(reply: Reply, url: str, *, has_key: bool) -> str:
    """Map the answer of `GET {base}/models` to a note, or a UserError about the API key."""
    host = urlsplit(url).netloc
    detail = _detail(reply)
    if reply.ok:
        data = reply.body.get("data") if isinstance(reply.body, dict) else None
        count = f" ({len(data)} models listed)" if isinstance(data, list) else ""
        return f"credentials verified: {host} answered{count}"
    if reply.status in (401, 403):
        if has_key:
            raise UserError(
                f"the API key was rejected by {host} (HTTP {reply.status}{detail})" + _SKIP_HINT
            )
        raise UserError(
            f"{host} wants an API key (HTTP {reply.status}{detail}); "
            "log in again and give one (--api-key-stdin)"
        )
    if reply.status in (404, 405):
        # Some servers (Workers AI's REST API among them) have no model listing.
        return f"not verified: {url} is not available here (HTTP {reply.status}); saved unchecked"
    raise UserError(f"the test request to {url} failed (HTTP {reply.status}{detail})" + _SKIP_HINT)


def _detail(reply: Reply) -> str:
    """`: message` from the error body, redacted and on one line ('' when there is none)."""
    return f": {one_line(redact(reply.error_message))}" if reply.error_message else ""
