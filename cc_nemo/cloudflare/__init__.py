"""The Cloudflare REST calls: login verification and `models --remote`.
May import settings/; never the proxy or translation.
"""
