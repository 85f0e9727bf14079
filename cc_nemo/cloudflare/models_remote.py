"""`cc-proxy models --remote`: the text-generation models the user's account can run.

Workers AI has no `GET /ai/v1/models` (docs/wire.md, "Model quirks"), so this uses the account's
model search endpoint (docs/wire.md, "Endpoints and headers") with the Cloudflare API token.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from cc_nemo.cloudflare.api import cf_api_base, one_line, request
from cc_nemo.errors import UserError
from cc_nemo.settings.catalog import Catalog, UnknownModelError
from cc_nemo.settings.credentials import redact

_MAX_PAGES = 50
_PER_PAGE = 100


@dataclass(frozen=True)
class RemoteModel:
    """One model from the account's catalog, with what its properties say about it."""

    model: str
    description: str = ""
    context_window: int | None = None
    input_price_per_mtok: float | None = None
    output_price_per_mtok: float | None = None
    tools: bool = False
    reasoning: bool = False
    vision: bool = False
    alias: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "alias": self.alias,
            "model": self.model,
            "context_window": self.context_window,
            "input_price_per_mtok": self.input_price_per_mtok,
            "output_price_per_mtok": self.output_price_per_mtok,
            "tools": self.tools,
            "reasoning": self.reasoning,
            "vision": self.vision,
            "in_catalog": self.alias is not None,
        }


def parse_model(item: Any, catalog: Catalog) -> RemoteModel | None:
    """Read one `result[]` entry of the search endpoint; None when it has no name."""
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        return None
    props: dict[str, Any] = {}
    for prop in item.get("properties") or []:
        if isinstance(prop, dict) and isinstance(prop.get("property_id"), str):
            props[prop["property_id"]] = prop.get("value")
    price_in, price_out = _prices(props.get("price"))
    name = item["name"]
    return RemoteModel(
        model=name,
        description=str(item.get("description") or ""),
        context_window=_int(props.get("context_window")),
        input_price_per_mtok=price_in,
        output_price_per_mtok=price_out,
        tools=_flag(props.get("function_calling")),
        reasoning=_flag(props.get("reasoning")),
        vision=_flag(props.get("vision")),
        alias=_catalog_alias(catalog, name),
    )


def _catalog_alias(catalog: Catalog, name: str) -> str | None:
    try:
        return catalog.resolve(name).alias
    except UnknownModelError:
        return None


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _prices(value: Any) -> tuple[float | None, float | None]:
    """Prices per million tokens from entries like {"unit": "per M input tokens", "price": 0.27}."""
    price_in = price_out = None
    for entry in value if isinstance(value, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("price"), (int, float)):
            continue
        unit = str(entry.get("unit", "")).lower()
        if "per m" not in unit:
            continue
        if "input" in unit and "cache" not in unit and price_in is None:
            price_in = float(entry["price"])
        elif "output" in unit and price_out is None:
            price_out = float(entry["price"])
    return price_in, price_out


def list_remote_models(
    account_id: str, api_token: str, catalog: Catalog, *, timeout: float = 30.0
) -> list[RemoteModel]:
    """All text-generation models of the account, sorted by name."""
    return asyncio.run(_fetch_all(account_id, api_token, catalog, timeout))


async def _fetch_all(
    account_id: str, api_token: str, catalog: Catalog, timeout: float
) -> list[RemoteModel]:
    url = f"{cf_api_base()}/accounts/{account_id}/ai/models/search"
    headers = {"Authorization": f"Bearer {api_token}"}
    found: dict[str, RemoteModel] = {}
    for page in range(1, _MAX_PAGES + 1):
        params = {"task": "Text Generation", "page": str(page), "per_page": str(_PER_PAGE)}
        reply = await request("GET", url, headers=headers, params=params, timeout=timeout)
        if not reply.ok:
            raise _listing_error(reply.status, reply.error_codes, reply.error_message, account_id)
        results = reply.body.get("result") if isinstance(reply.body, dict) else None
        if not isinstance(results, list):
            raise UserError("the Cloudflare API answered without a model list; try again later")
        new = [
            m
            for m in (parse_model(item, catalog) for item in results)
            if m and m.model not in found
        ]
        for model in new:
            found[model.model] = model
        # Stop on an empty or repeated page: the endpoint reportedly ignores per_page.
        if not new or _is_last_page(reply.body, len(found)):
            break
    return sorted(found.values(), key=lambda m: m.model)


def _is_last_page(body: dict[str, Any], seen: int) -> bool:
    info = body.get("result_info")
    if not isinstance(info, dict):
        return True
    total = info.get("total_count")
    return not isinstance(total, int) or seen >= total


def _listing_error(status: int, codes: tuple[int, ...], message: str, account_id: str) -> UserError:
    detail = f": {one_line(redact(message))}" if message else ""
    if status in (401, 403):
        return UserError(
            f"the Cloudflare API token was rejected (HTTP {status}{detail}); "
            "listing models needs a token with the Workers AI Read permission"
        )
    if status == 404 or 7003 in codes:
        return UserError(
            f"account {account_id} was not found (HTTP {status}{detail}); check the account id"
        )
    return UserError(f"listing models failed (HTTP {status}{detail}); try again later")
