"""cc-proxy: run Claude Code on Cloudflare Workers AI and other OpenAI-compatible models."""

__version__ = "0.2.0"
