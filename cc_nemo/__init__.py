"""cc-proxy: run Claude Code on Cloudflare Workers AI and other OpenAI-compatible models."""

__version__ = "0.1.0"
