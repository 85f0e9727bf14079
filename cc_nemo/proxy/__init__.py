"""The running proxy: the aiohttp app and middlewares, the /v1/messages exchange, the stream
writer (commit rule), the upstream client, routing, pass-through, the log and the ledger.
May import settings/ and translate/; translation rules live in translate/, not here.
"""
