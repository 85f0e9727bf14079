"""`cc-proxy run`: the socket, the claude process, its environment, signals and exit code.
May import settings/ and proxy/ (lazily: aiohttp only after claude is spawned).
"""
