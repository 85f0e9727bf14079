"""The request bodies the benchmark sends: Claude-Code-shaped Anthropic requests and, as the
zero-proxy baseline, the very same conversations as OpenAI requests.

The ~113 KB body is a real Claude Code 2.1.330 request (system prompt, 21 tools with JSON
schemas, a short Read tool loop), kept as a test fixture. The ~2 MB variant appends Read turns
(assistant tool_use + a ~40 KB `cat -n` tool_result) as a long session does
(docs/wire.md, "Claude Code's environment"). The baseline body is what cc-proxy's own translator makes of the
Anthropic body, so both sides ask the mock for exactly the same thing.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "translate" / "fixtures" / "claude_code_2_1_330_read_turn.json"
MODEL_ALIAS = "nemotron"
READ_TURN_LINES = 500
LARGE_TARGET_BYTES = 2_000_000


@dataclass(frozen=True)
class BodyPair:
    """One conversation, as the client sends it to cc-proxy and as the baseline sends it."""

    name: str
    anthropic: bytes
    openai: bytes


def base_request() -> dict[str, Any]:
    """The real Claude Code request (~113 KB)."""
    if not FIXTURE.exists():
        raise SystemExit(f"bench: missing request fixture {FIXTURE}")
    return orjson.loads(FIXTURE.read_bytes())


def _read_result_text(turn: int) -> str:
    """A 500-line source file as Claude Code's Read tool returns it (`N<TAB>line`, as in the
    captured request). Source is mostly ASCII; every eighth file has a non-ASCII comment, so
    the proxy's UTF-8 paths get their share of the work."""
    lines = []
    for line in range(1, READ_TURN_LINES + 1):
        n = turn * READ_TURN_LINES + line
        lines.append(
            f"{line}\tdef function_{n}(alpha, beta):  "
            f'return {{"sum": alpha + beta, "id": {n}, "scale": {n % 97}}}  # case {n}'
        )
    if turn % 8 == 7:
        lines[READ_TURN_LINES // 2] += "  # naïve café — «non-ASCII»"
    return "\n".join(lines)


def grown_request(target_bytes: int = LARGE_TARGET_BYTES) -> dict[str, Any]:
    """The base request after enough Read turns to reach `target_bytes` of JSON."""
    request = base_request()
    messages = request["messages"]
    turn = 0
    while len(orjson.dumps(request)) < target_bytes:
        call_id = f"toolu_bench{turn:04d}"
        # The cache marker moves to the newest message, as Claude Code does.
        for message in messages:
            if isinstance(message.get("content"), list):
                for block in message["content"]:
                    block.pop("cache_control", None)
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": f"Reading part {turn} of the module."},
                    {
                        "type": "tool_use",
                        "id": call_id,
                        "name": "Read",
                        "input": {"file_path": f"/work/project/module_{turn}.py"},
                    },
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": call_id,
                        "content": _read_result_text(turn),
                        "cache_control": {"type": "ephemeral"},
                    }
                ],
            }
        )
        turn += 1
    return request


# The model the proxy serves in the bench: Nemotron with a window the ~2 MB history fits in
# (~700k tokens), so both sides translate the whole conversation instead of answering with
# an overflow error; nothing else about the model changes.
BENCH_ALIAS = "nemotron-bench"
BENCH_WINDOW = 4_000_000


def bench_spec(catalog: Any) -> Any:
    """Nemotron as the bench's config.toml defines it (see BENCH_ALIAS)."""
    from dataclasses import replace

    return replace(catalog.resolve(MODEL_ALIAS), alias=BENCH_ALIAS, context_window=BENCH_WINDOW)


def bench_config_toml() -> str:
    """The config.toml that defines BENCH_ALIAS for `cc-proxy serve`."""
    return (
        f"[models.{BENCH_ALIAS}]\n"
        'model = "@cf/nvidia/nemotron-3-120b-a12b"\n'
        f"context_window = {BENCH_WINDOW}\n"
        "max_output_tokens = 131072\n"
    )


def upstream_model() -> str:
    """The model id cc-proxy asks the (mock) upstream for; the reference asks for it too."""
    from cc_nemo.settings.catalog import Catalog
    from cc_nemo.settings.runtime import ProviderSettings

    spec = bench_spec(Catalog.build())
    return ProviderSettings("cloudflare", "http://127.0.0.1").upstream_model_id(spec.model)


def openai_equivalent(request: dict[str, Any]) -> dict[str, Any]:
    """What cc-proxy sends upstream for `request` (its own pure translator, no I/O)."""
    from cc_nemo.settings.catalog import Catalog
    from cc_nemo.translate.request import translate_request

    spec = bench_spec(Catalog.build())
    return translate_request(copy.deepcopy(request), spec, upstream_model=upstream_model()).body


def body_pair(name: str, request: dict[str, Any], *, stream: bool) -> BodyPair:
    """The Anthropic body with `stream` set, and its OpenAI equivalent."""
    request = {**request, "stream": stream}
    if not stream:
        # Claude Code's non-streaming fallback lowers max_tokens (docs/wire.md, "Claude Code's environment").
        request["max_tokens"] = min(int(request.get("max_tokens", 64_000)), 64_000)
    return BodyPair(name, orjson.dumps(request), orjson.dumps(openai_equivalent(request)))
