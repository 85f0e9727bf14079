"""The command line: the typer app and one module per command; user-facing messages.
May import settings/, cloudflare/ and launch/; never aiohttp at start-up (docs/architecture.md).
"""
