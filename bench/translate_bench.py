"""Time translate_request on a ~2 MB Claude-Code-shaped request (target: well under 20 ms).

Usage: python bench/translate_bench.py [--runs N] [--mb SIZE]

The system prompt and the 21 tool schemas come from a request captured from the real Claude
Code 2.1.330 client (tests/translate/fixtures); the history is grown with Read tool turns of
500-line `cat -n` files (~40 KB each, as the client sends them) until the body reaches SIZE.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import orjson

from cc_nemo.settings.catalog import Catalog
from cc_nemo.translate import StreamTranslator, estimate_tokens, translate_request

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bodies

FIXTURE = (
    Path(__file__).resolve().parent.parent
    / "tests"
    / "translate"
    / "fixtures"
    / "claude_code_2_1_330_read_turn.json"
)


def read_result(turn: int) -> str:
    lines = (
        f"{n:>6}\t    value_{n} = transform(records[{n}], scale={turn}, label='row_{n}')  # t{turn}"
        for n in range(1, 501)
    )
    return "\n".join(lines)


def build_request(target_bytes: int) -> dict:
    request = orjson.loads(FIXTURE.read_bytes())
    request["messages"] = request["messages"][:2]
    turn = 0
    while len(orjson.dumps(request)) < target_bytes:
        turn += 1
        call_id = f"toolu_{turn:024d}"
        request["messages"].append(
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": f"Read part {turn} next.", "signature": ""},
                    {"type": "text", "text": f"Reading module {turn}."},
                    {
                        "type": "tool_use",
                        "id": call_id,
                        "name": "Read",
                        "input": {"file_path": f"/repo/src/module_{turn}.py"},
                    },
                ],
            }
        )
        request["messages"].append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call_id, "content": read_result(turn)}
                ],
            }
        )
    request["messages"].append({"role": "system", "content": "Today's date is 2026-11-22."})
    return request


def median_ms(function, runs: int) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--mb", type=float, default=2.0)
    args = parser.parse_args()

    # Nemotron with a window the 2 MB history fits in (bodies.py): past the real window the
    # request is an overflow error, not a translation to time.
    spec = bodies.bench_spec(Catalog.build())
    request = build_request(int(args.mb * 1_000_000))
    body = orjson.dumps(request)
    print(
        f"request: {len(body) / 1e6:.2f} MB, {len(request['messages'])} messages, "
        f"{len(request['tools'])} tools"
    )
    # translate_request must not mutate its input; use a fresh copy once to prove it.
    before = copy.deepcopy(request)
    translated = translate_request(request, spec, upstream_model=spec.model)
    assert request == before, "translate_request mutated its input"
    print(
        f"upstream body: {len(orjson.dumps(translated.body)) / 1e6:.2f} MB, "
        f"{len(translated.body['messages'])} messages, "
        f"estimated input {translated.context.estimated_input_tokens:,} tokens"
    )
    print(
        f"orjson.loads of the body:     {median_ms(lambda: orjson.loads(body), args.runs):7.2f} ms"
    )
    print(
        f"estimate_tokens:              {median_ms(lambda: estimate_tokens(request), args.runs):7.2f} ms"
    )
    print(
        "translate_request:            "
        f"{median_ms(lambda: translate_request(request, spec, upstream_model=spec.model), args.runs):7.2f} ms"
    )
    upstream = translated.body
    print(
        f"orjson.dumps of upstream body:{median_ms(lambda: orjson.dumps(upstream), args.runs):7.2f} ms"
    )

    chunks = [{"choices": [{"index": 0, "delta": {"content": "word "}}]}] * 2000

    def stream_2000_chunks() -> None:
        stream = StreamTranslator(
            translated.context, message_id="msg_b", new_tool_id=lambda: "toolu_b"
        )
        stream.start()
        for chunk in chunks:
            stream.feed(chunk)
        stream.finish(saw_done=True)

    print(
        f"stream, 2000 text chunks:     {median_ms(stream_2000_chunks, max(args.runs // 5, 5)):7.2f} ms"
    )


if __name__ == "__main__":
    main()
