"""The usage ledger: one SQLite row per upstream exchange, shared by every proxy session on
the machine, read by `cc-proxy usage`, `cc-proxy statusline` and the exit summary
(docs/architecture.md, "The usage ledger").

Modules here import only the standard library (and platformdirs for the path), so the
status line, which Claude Code runs after every message, stays fast."""
