"""Non-streamed completion → Anthropic Message (docs/wire.md, "Response translation")."""

from __future__ import annotations

from typing import Any

import pytest

from cc_nemo.translate import ErrorReply, translate_completion
from cc_nemo.translate.stream import synthetic_signature

from .support import ID_PATTERN, builtin, context, counter_ids, sdk_accumulate


def completion(
    message: dict, finish: str | None = "stop", usage: dict | None = None, **choice: Any
) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", **message},
                "finish_reason": finish,
                **choice,
            }
        ],
        "usage": usage,
    }


def translated(body: dict, ctx=None) -> dict:
    return translate_completion(
        body, ctx or context(tools=["Bash", "Read"]), message_id="msg_x", new_tool_id=counter_ids()
    )


def test_full_reply_with_reasoning_text_and_tool_calls() -> None:
    message = translated(
        completion(
            {
                "content": "I'll list the files.",
                "reasoning_content": "Need ls.",
                "tool_calls": [
                    {
                        "id": "functions.Bash:0",
                        "type": "function",
                        "function": {"name": "Bash", "arguments": '{"command":"ls"}'},
                    },
                    {
                        "id": "chatcmpl-tool-9",
                        "type": "function",
                        "function": {"name": "Read", "arguments": {"file_path": "/a"}},
                    },
                ],
            },
            finish="stop",
            usage={
                "prompt_tokens": 1200,
                "completion_tokens": 80,
                "prompt_tokens_details": {"cached_tokens": 1000},
            },
        )
    )
    assert message == {
        "id": "msg_x",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [
            {
                "type": "thinking",
                "thinking": "Need ls.",
                "signature": synthetic_signature("Need ls."),
            },
            {"type": "text", "text": "I'll list the files."},
            {
                "type": "tool_use",
                "id": "toolu_000000000000000000000001",
                "name": "Bash",
                "input": {"command": "ls"},
            },
            {
                "type": "tool_use",
                "id": "toolu_000000000000000000000002",
                "name": "Read",
                "input": {"file_path": "/a"},
            },
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 200,
            "output_tokens": 80,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 1000,
        },
    }
    assert all(ID_PATTERN.match(b["id"]) for b in message["content"] if b["type"] == "tool_use")


def test_plain_answer_ends_turn() -> None:
    message = translated(
        completion({"content": "Hello!"}, usage={"prompt_tokens": 10, "completion_tokens": 2})
    )
    assert message["content"] == [{"type": "text", "text": "Hello!"}]
    assert (message["stop_reason"], message["stop_sequence"]) == ("end_turn", None)
    assert message["usage"]["input_tokens"] == 10


def test_tool_calls_without_ids_and_null_content() -> None:
    message = translated(
        completion(
            {
                "content": None,
                "tool_calls": [{"function": {"name": "Bash", "arguments": {"command": "pwd"}}}],
            },
            finish="tool_calls",
        )
    )
    assert message["content"] == [
        {
            "type": "tool_use",
            "id": "toolu_000000000000000000000001",
            "name": "Bash",
            "input": {"command": "pwd"},
        }
    ]


def test_same_tool_twice_with_identical_ids_stays_two_calls() -> None:
    call = {
        "id": "functions.Read:0",
        "type": "function",
        "function": {"name": "Read", "arguments": '{"file_path":"/a"}'},
    }
    message = translated(
        completion(
            {
                "content": "",
                "tool_calls": [
                    call,
                    {**call, "function": {"name": "Read", "arguments": '{"file_path":"/b"}'}},
                ],
            }
        )
    )
    assert [b["input"] for b in message["content"]] == [{"file_path": "/a"}, {"file_path": "/b"}]


def test_think_tags_in_non_streamed_content_are_split() -> None:
    message = translated(completion({"content": "<think>plan</think>\n\nDone."}))
    assert [b["type"] for b in message["content"]] == ["thinking", "text"]
    assert message["content"][1]["text"] == "Done."


def test_leaked_tool_call_is_salvaged_in_a_non_streamed_reply() -> None:
    message = translated(
        completion({"content": '{"name": "Bash", "arguments": {"command": "ls"}}'}),
        context(builtin("gpt-oss"), tools=["Bash"]),
    )
    assert [(b["type"], b.get("input")) for b in message["content"]] == [
        ("tool_use", {"command": "ls"})
    ]
    assert message["stop_reason"] == "tool_use"


def test_stop_sequence_is_reported_from_vllm_stop_reason() -> None:
    message = translated(
        completion({"content": "x"}, stop_reason="###"), context(stop_sequences=["###"])
    )
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "###")


def test_length_becomes_max_tokens() -> None:
    assert (
        translated(completion({"content": "cut"}, finish="length"))["stop_reason"] == "max_tokens"
    )


def test_no_choices_is_an_empty_end_turn_message() -> None:
    message = translated({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 0}})
    assert (message["content"], message["stop_reason"]) == ([], "end_turn")


def test_workers_ai_envelope_is_unwrapped() -> None:
    body = {"success": True, "errors": [], "result": completion({"content": "inside"})}
    assert translated(body)["content"] == [{"type": "text", "text": "inside"}]


@pytest.mark.parametrize(
    ("body", "status", "error_type"),
    [
        ({"error": {"message": "model crashed", "type": "server_error"}}, 500, "api_error"),
        (
            {
                "success": False,
                "errors": [{"code": 3040, "message": "Capacity temporarily exceeded"}],
            },
            529,
            "overloaded_error",
        ),
        ({"object": "error", "message": "bad", "code": 400}, 400, "invalid_request_error"),
    ],
)
def test_error_body_with_200_status_raises_a_mapped_error(
    body: dict, status: int, error_type: str
) -> None:
    with pytest.raises(ErrorReply) as caught:
        translated(body)
    assert (caught.value.error.status, caught.value.error.type) == (status, error_type)


def test_non_streamed_message_is_what_the_sdk_would_accumulate_from_our_stream() -> None:
    from .support import run_chunks

    body = completion(
        {
            "content": "Text.",
            "reasoning": "Reason.",
            "tool_calls": [
                {"id": "a", "function": {"name": "Bash", "arguments": '{"command":"x"}'}}
            ],
        },
        usage={"prompt_tokens": 9, "completion_tokens": 4},
    )
    ctx = context(tools=["Bash"])
    message = translated(body, ctx)
    streamed = run_chunks(
        [
            {"choices": [{"index": 0, "delta": {"reasoning": "Reason."}}]},
            {"choices": [{"index": 0, "delta": {"content": "Text."}}]},
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {
                            "tool_calls": [
                                {
                                    "index": 0,
                                    "id": "a",
                                    "function": {"name": "Bash", "arguments": '{"command":"x"}'},
                                }
                            ]
                        },
                        "finish_reason": "stop",
                    }
                ]
            },
            {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}},
        ],
        ctx,
    )
    snapshot = sdk_accumulate(streamed)
    assert message["content"] == snapshot["content"]
    assert message["stop_reason"] == snapshot["stop_reason"]
