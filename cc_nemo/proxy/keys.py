"""Typed keys for the state the app and its requests carry (no string keys, no globals)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cc_nemo.proxy.exchange import MessagesRelay
from cc_nemo.proxy.memory import HeapTrimmer
from cc_nemo.proxy.record import Exchange
from cc_nemo.proxy.upstream import UpstreamClient
from cc_nemo.proxy.usage import UsageLedger
from cc_nemo.settings.runtime import ProxySettings

MESSAGES_PATH = "/v1/messages"

SETTINGS_KEY = web.AppKey("cc_nemo.settings", ProxySettings)
LEDGER_KEY = web.AppKey("cc_nemo.ledger", UsageLedger)
HEAP_TRIMMER_KEY = web.AppKey("cc_nemo.heap_trimmer", HeapTrimmer)
UPSTREAM_KEY = web.AppKey("cc_nemo.upstream", UpstreamClient)
RELAY_KEY = web.AppKey("cc_nemo.relay", MessagesRelay)

# Per-request state; typed keys where aiohttp has them (3.12+), plain strings before.
_RequestKey: Any = getattr(web, "RequestKey", None)
REQUEST_ID: Any = _RequestKey("cc_nemo.request_id", str) if _RequestKey else "cc_nemo.request_id"
EXCHANGE: Any = _RequestKey("cc_nemo.exchange", Exchange) if _RequestKey else "cc_nemo.exchange"
# The response whose status line went out, if any: after that an error can't be a new response.
SENT: Any = _RequestKey("cc_nemo.sent", web.StreamResponse) if _RequestKey else "cc_nemo.sent"
# Set once the request passed the Host guard and the token check: only those reach the ledger.
ADMITTED: Any = _RequestKey("cc_nemo.admitted", bool) if _RequestKey else "cc_nemo.admitted"
