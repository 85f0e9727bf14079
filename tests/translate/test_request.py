"""Anthropic request → OpenAI request, one behaviour per test (docs/wire.md, "Request translation")."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from cc_nemo.translate import InvalidRequest, translate_request, validate_request
from cc_nemo.translate.names import upstream_tool_name
from cc_nemo.translate.request import MIN_REPLY_TOKENS, ContextOverflow

from .support import PLAIN, builtin, spec_with, translate

FIXTURE = Path(__file__).parent / "fixtures" / "claude_code_2_1_330_read_turn.json"
VISION = replace(PLAIN, vision=True)


def request(messages: list[dict], **extra: Any) -> dict:
    return {"model": "claude-opus-5-5", "max_tokens": 1000, "messages": messages, **extra}


def upstream_messages(messages: list[dict], spec=PLAIN, **extra: Any) -> list[dict]:
    return translate(request(messages, **extra), spec).body["messages"]


def tool_use(call_id: str, name: str = "Bash", **arguments: Any) -> dict:
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


def tool_result(call_id: str, content: Any = "ok", **extra: Any) -> dict:
    return {"type": "tool_result", "tool_use_id": call_id, "content": content, **extra}


def call(call_id: str, name: str = "Bash", arguments: str = "{}") -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "request body must be a JSON object"),
        (
            {"max_tokens": 1, "messages": [{"role": "user", "content": "x"}]},
            "model: field required",
        ),
        ({"model": 5, "max_tokens": 1, "messages": []}, "model: must be a non-empty string"),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}]},
            "max_tokens: field required",
        ),
        ({"model": "m", "max_tokens": -1, "messages": []}, "max_tokens: must be an integer >= 0"),
        ({"model": "m", "max_tokens": True, "messages": []}, "max_tokens: must be an integer >= 0"),
        ({"model": "m", "max_tokens": 1}, "messages: field required"),
        ({"model": "m", "max_tokens": 1, "messages": {}}, "messages: must be a list"),
        ({"model": "m", "max_tokens": 1, "messages": []}, "messages: at least one message"),
        ({"model": "m", "max_tokens": 1, "messages": ["x"]}, "messages.0: must be an object"),
        (
            {"model": "m", "max_tokens": 1, "messages": [{"role": "bot", "content": "x"}]},
            "messages.0.role",
        ),
        (
            {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": 3}]},
            "messages.0.content",
        ),
    ],
)
def test_invalid_request_names_the_field(body: object, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message.replace("(", r"\(")):
        validate_request(body)


def test_max_tokens_zero_is_valid() -> None:
    body = request([{"role": "user", "content": "warm"}], max_tokens=0)
    assert validate_request(body) is body
    assert translate(body).body["max_tokens"] == 1


# --- system ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("system", "expected"),
    [
        ("Be brief.", "Be brief."),
        (
            "x-anthropic-billing-header: cc_version=2.1; cch=abc;\nBe brief.",
            "Be brief.",
        ),
        (
            [
                {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.330;"},
                {"type": "text", "text": "You are Claude.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Be brief."},
            ],
            "You are Claude.\n\nBe brief.",
        ),
    ],
)
def test_system_is_joined_and_the_billing_header_dropped(system: object, expected: str) -> None:
    messages = upstream_messages([{"role": "user", "content": "hi"}], system=system)
    assert messages[0] == {"role": "system", "content": expected}


def test_no_system_message_when_system_is_only_the_billing_header() -> None:
    messages = upstream_messages(
        [{"role": "user", "content": "hi"}],
        system=[{"type": "text", "text": "x-anthropic-billing-header: cc_version=1;"}],
    )
    assert messages == [{"role": "user", "content": "hi"}]


# --- mid-conversation system messages (docs/wire.md, "Claude Code's environment") --------------------------------


def test_system_message_after_user_turn_becomes_a_reminder_in_that_user_turn() -> None:
    messages = upstream_messages(
        [
            {"role": "user", "content": [{"type": "text", "text": "say hi"}]},
            {
                "role": "system",
                "output_config": {"effort": "medium"},
                "content": [{"type": "text", "text": "# Environment", "cache_control": {}}],
            },
        ]
    )
    assert messages == [
        {
            "role": "user",
            "content": "say hi\n\n<system-reminder>\n# Environment\n</system-reminder>",
        }
    ]


def test_last_system_message_after_assistant_is_user_text_at_the_end_not_hoisted() -> None:
    messages = upstream_messages(
        [
            {"role": "user", "content": "summary"},
            {"role": "assistant", "content": "ok"},
            {"role": "system", "content": "Today's date is 2026-11-22."},
        ],
        system="Base prompt.",
    )
    assert messages == [
        {"role": "system", "content": "Base prompt."},
        {"role": "user", "content": "summary"},
        {"role": "assistant", "content": "ok"},
        {
            "role": "user",
            "content": "<system-reminder>\nToday's date is 2026-11-22.\n</system-reminder>",
        },
    ]


def test_mid_conv_system_block_becomes_a_reminder_in_place() -> None:
    messages = upstream_messages(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "a"},
                    {"type": "mid_conv_system", "content": [{"type": "text", "text": "rules"}]},
                    {"type": "text", "text": "b"},
                ],
            }
        ]
    )
    assert messages == [
        {"role": "user", "content": "a\n\n<system-reminder>\nrules\n</system-reminder>\n\nb"}
    ]


def test_system_message_between_tool_call_and_result_does_not_separate_them() -> None:
    messages = upstream_messages(
        [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [tool_use("t1", command="ls")]},
            {"role": "system", "content": "deferred tools changed"},
            {"role": "user", "content": [tool_result("t1", "a.txt")]},
        ]
    )
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "user"]
    assert messages[2] == {"role": "tool", "tool_call_id": "t1", "content": "a.txt"}


# --- tool results (docs/wire.md, "Request translation") ------------------------------------------------------


def test_tool_result_with_text_keeps_text_after_tool_messages() -> None:
    messages = upstream_messages(
        [
            {"role": "user", "content": "list"},
            {"role": "assistant", "content": [tool_use("t1", command="ls")]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "also check this"},
                    tool_result("t1", "a.txt"),
                ],
            },
        ]
    )
    assert messages[1:] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [call("t1", arguments='{"command":"ls"}')],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "a.txt"},
        {"role": "user", "content": "also check this"},
    ]


def test_parallel_tool_results_out_of_order_are_matched_by_id_in_block_order() -> None:
    messages = upstream_messages(
        [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [tool_use("one"), tool_use("two")]},
            {"role": "user", "content": [tool_result("two", "2"), tool_result("one", "1")]},
        ]
    )
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "two", "content": "2"},
        {"role": "tool", "tool_call_id": "one", "content": "1"},
    ]


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (tool_result("t1", "plain"), "plain"),
        (tool_result("t1", [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]), "a\nb"),
        (tool_result("t1", "boom", is_error=True), "Error: boom"),
        (tool_result("t1", ""), "(no output)"),
        (tool_result("t1", []), "(no output)"),
        ({"type": "tool_result", "tool_use_id": "t1"}, "(no output)"),
        (tool_result("t1", "", is_error=True), "Error: (no output)"),
        (
            tool_result(
                "t1",
                [
                    {"type": "tool_reference", "tool_name": "WebFetch"},
                    {"type": "tool_reference", "tool_name": "NotebookEdit"},
                ],
            ),
            "[tool loaded: WebFetch]\n[tool loaded: NotebookEdit]",
        ),
        (
            tool_result(
                "t1",
                [
                    {
                        "type": "search_result",
                        "title": "Doc",
                        "source": "https://example.invalid/doc",
                        "content": [{"type": "text", "text": "found"}],
                    }
                ],
            ),
            "Doc — https://example.invalid/doc\nfound",
        ),
        (
            tool_result(
                "t1",
                [
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "doc body"},
                    }
                ],
            ),
            "doc body",
        ),
        (
            tool_result(
                "t1",
                [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AA"},
                    }
                ],
            ),
            "[image omitted]",
        ),
    ],
)
def test_tool_result_content_renders_as_text(result: dict, expected: str) -> None:
    messages = upstream_messages(
        [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [tool_use("t1")]},
            {"role": "user", "content": [result]},
        ]
    )
    assert messages[2] == {"role": "tool", "tool_call_id": "t1", "content": expected}


def test_tool_result_image_goes_to_the_user_message_for_a_vision_model() -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"},
    }
    messages = upstream_messages(
        [
            {"role": "user", "content": "look"},
            {"role": "assistant", "content": [tool_use("t1", name="Read")]},
            {
                "role": "user",
                "content": [tool_result("t1", [{"type": "text", "text": "screenshot"}, image])],
            },
        ],
        spec=VISION,
    )
    assert messages[2] == {
        "role": "tool",
        "tool_call_id": "t1",
        "content": "screenshot\n[image attached below]",
    }
    assert messages[3] == {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}],
    }


def test_unanswered_tool_call_gets_a_synthetic_result() -> None:
    messages = upstream_messages(
        [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [tool_use("t1"), tool_use("t2")]},
            {
                "role": "user",
                "content": [tool_result("t1", "done"), {"type": "text", "text": "stop"}],
            },
        ]
    )
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "t1", "content": "done"},
        {"role": "tool", "tool_call_id": "t2", "content": "(no result)"},
        {"role": "user", "content": "stop"},
    ]


def test_interrupted_tool_call_followed_by_new_prompt_is_paired() -> None:
    messages = upstream_messages(
        [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [tool_use("t1")]},
            {"role": "user", "content": "[Request interrupted by user]"},
        ]
    )
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "t1", "content": "(no result)"},
        {"role": "user", "content": "[Request interrupted by user]"},
    ]


def test_orphan_tool_result_becomes_user_text() -> None:
    messages = upstream_messages(
        [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": "no tools here"},
            {
                "role": "user",
                "content": [tool_result("ghost", "data"), {"type": "text", "text": "next"}],
            },
        ]
    )
    assert messages[2:] == [
        {"role": "user", "content": "[tool result for ghost]: data\n\nnext"},
    ]


def test_orphan_result_beside_real_results_goes_after_the_tool_messages() -> None:
    messages = upstream_messages(
        [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [tool_use("t1")]},
            {
                "role": "user",
                "content": [tool_result("ghost", "stale"), tool_result("t1", "fresh")],
            },
        ]
    )
    assert messages[1:] == [
        {"role": "assistant", "content": "", "tool_calls": [call("t1")]},
        {"role": "tool", "tool_call_id": "t1", "content": "fresh"},
        {"role": "user", "content": "[tool result for ghost]: stale"},
    ]


def test_every_tool_call_has_exactly_one_following_tool_message() -> None:
    request_body = json.loads(FIXTURE.read_text())
    messages = translate(request_body, builtin("nemotron")).body["messages"]
    for position, message in enumerate(messages):
        if message.get("tool_calls"):
            ids = [c["id"] for c in message["tool_calls"]]
            following = messages[position + 1 : position + 1 + len(ids)]
            assert sorted(m["tool_call_id"] for m in following) == sorted(ids)


# --- assistant turns ---------------------------------------------------------------------------


def test_assistant_texts_join_and_tool_arguments_are_compact_unicode_json() -> None:
    messages = upstream_messages(
        [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "secret plan", "signature": "fake-sig"},
                    {"type": "redacted_thinking", "data": "xx"},
                    {"type": "text", "text": "First."},
                    {"type": "text", "text": ""},
                    {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {}},
                    {"type": "web_search_tool_result", "tool_use_id": "s1", "content": []},
                    {"type": "text", "text": "Second."},
                    tool_use("t1", command="echo \"héllo\" | grep -e '$x'"),
                ],
            },
            {"role": "user", "content": [tool_result("t1")]},
        ]
    )
    assert messages[1] == {
        "role": "assistant",
        "content": "First.\n\nSecond.",
        "tool_calls": [call("t1", arguments='{"command":"echo \\"héllo\\" | grep -e \'$x\'"}')],
    }


def test_history_thinking_with_fake_signatures_is_never_forwarded() -> None:
    body = translate(
        request(
            [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "plan", "signature": "ccp1.abc"},
                        {"type": "text", "text": "done"},
                    ],
                },
                {"role": "user", "content": "more"},
            ]
        ),
        builtin("nemotron"),
    ).body
    assert "ccp1.abc" not in orjson.dumps(body).decode()
    assert "plan" not in orjson.dumps(body["messages"]).decode()


def test_reasoning_models_get_the_current_tool_loops_thinking_back() -> None:
    messages = upstream_messages(
        [
            {"role": "user", "content": "old question"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "old plan", "signature": ""},
                    {"type": "text", "text": "old answer"},
                ],
            },
            {"role": "user", "content": "new question"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "new plan", "signature": ""},
                    tool_use("t1"),
                ],
            },
            {"role": "user", "content": [tool_result("t1")]},
        ],
        spec=builtin("glm"),
    )
    assert "reasoning_content" not in messages[1]
    assert messages[3]["reasoning_content"] == "new plan"
    kimi = upstream_messages(
        [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": [{"type": "thinking", "thinking": "p", "signature": ""}, tool_use("t1")],
            },
            {"role": "user", "content": [tool_result("t1")]},
        ],
        spec=builtin("kimi"),
    )
    assert kimi[1]["reasoning"] == "p"


def test_tool_loop_reasoning_survives_system_reminders_next_to_tool_results() -> None:
    messages = upstream_messages(
        [
            {"role": "user", "content": "question"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "step 1", "signature": ""},
                    tool_use("t1"),
                ],
            },
            {
                "role": "user",
                "content": [
                    tool_result("t1"),
                    {"type": "text", "text": "<system-reminder>\nfile changed\n</system-reminder>"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "step 2", "signature": ""},
                    tool_use("t2"),
                ],
            },
            {"role": "user", "content": [tool_result("t2")]},
        ],
        spec=builtin("kimi"),
    )
    assert [m.get("reasoning") for m in messages if m["role"] == "assistant"] == [
        "step 1",
        "step 2",
    ]


def test_assistant_text_after_its_tool_call_is_merged_not_orphaning_the_result() -> None:
    messages = upstream_messages(
        [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [tool_use("t1")]},
            {"role": "assistant", "content": "while that runs..."},
            {"role": "user", "content": [tool_result("t1", "done")]},
        ]
    )
    assert messages[1:] == [
        {"role": "assistant", "content": "while that runs...", "tool_calls": [call("t1")]},
        {"role": "tool", "tool_call_id": "t1", "content": "done"},
    ]


def test_consecutive_same_role_turns_are_merged() -> None:
    messages = upstream_messages(
        [
            {"role": "user", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": "b"}]},
            {"role": "assistant", "content": "c"},
            {"role": "assistant", "content": [tool_use("t1")]},
            {"role": "user", "content": [tool_result("t1")]},
        ]
    )
    assert messages == [
        {"role": "user", "content": "a\n\nb"},
        {"role": "assistant", "content": "c", "tool_calls": [call("t1")]},
        {"role": "tool", "tool_call_id": "t1", "content": "ok"},
    ]


def test_trailing_assistant_prefill_is_dropped_and_remembered() -> None:
    translated = translate(
        request([{"role": "user", "content": "json please"}, {"role": "assistant", "content": "{"}])
    )
    assert translated.body["messages"] == [{"role": "user", "content": "json please"}]
    assert translated.context.prefill == "{"


# --- user content --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            VISION,
            [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}},
                {"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}},
            ],
        ),
        (PLAIN, "what is this\n\n[image omitted]\n\n[image omitted]"),
    ],
)
def test_images_become_image_url_parts_or_a_placeholder(spec, expected) -> None:
    messages = upstream_messages(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"},
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.invalid/a.png"},
                    },
                ],
            }
        ],
        spec=spec,
    )
    assert messages == [{"role": "user", "content": expected}]


def test_unknown_blocks_and_fields_are_dropped_not_rejected() -> None:
    translated = translate(
        request(
            [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "text",
                            "text": "hi",
                            "cache_control": {"type": "ephemeral"},
                            "citations": [],
                        },
                        {"type": "future_block", "payload": 1},
                        {"type": "container_upload", "file_id": "f"},
                        {
                            "type": "document",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": "JVBE",
                            },
                        },
                    ],
                }
            ],
            context_management={"edits": []},
            metadata={"user_id": "u"},
            safeguards={"x": 1},
            service_tier="auto",
            container="c",
            inference_geo="eu",
            cache_control={"type": "ephemeral"},
            mcp_servers=[],
            speed="fast",
        )
    )
    body = translated.body
    assert body["messages"] == [
        {
            "role": "user",
            "content": "hi\n\n[document omitted: this model cannot read PDF attachments]",
        }
    ]
    for dropped in (
        "context_management",
        "metadata",
        "safeguards",
        "service_tier",
        "cache_control",
    ):
        assert dropped not in body


# --- tools ------------------------------------------------------------------------------------

TOOLS = [
    {
        "name": "Bash",
        "description": "Run a command",
        "input_schema": {
            "$schema": "x",
            "type": "object",
            "properties": {"command": {"type": "string"}},
        },
    },
    {"name": "Quiet", "description": "", "input_schema": {"type": "object"}},
    {
        "name": "Deferred",
        "description": "later",
        "input_schema": {"type": "object"},
        "defer_loading": True,
        "cache_control": {"type": "ephemeral"},
        "strict": True,
        "input_examples": [],
    },
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
    {"type": "bash_20250124", "name": "bash"},
    {"type": "custom", "name": "Explicit", "input_schema": {"type": "object", "properties": {}}},
]


def test_custom_tools_become_functions_and_server_tools_are_dropped() -> None:
    body = translate(request([{"role": "user", "content": "hi"}], tools=TOOLS)).body
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "Bash",
                "description": "Run a command",
                "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
            },
        },
        {
            "type": "function",
            "function": {"name": "Quiet", "parameters": {"type": "object", "properties": {}}},
        },
        {
            "type": "function",
            "function": {
                "name": "Deferred",
                "description": "later",
                "parameters": {"type": "object", "properties": {}},
            },
        },
        {
            "type": "function",
            "function": {"name": "Explicit", "parameters": {"type": "object", "properties": {}}},
        },
    ]


def test_empty_tool_list_omits_tools() -> None:
    body = translate(request([{"role": "user", "content": "title"}], tools=[])).body
    assert "tools" not in body and "tool_choice" not in body


@pytest.mark.parametrize(
    ("choice", "spec", "expected_choice", "expected_parallel"),
    [
        ({"type": "auto"}, PLAIN, "auto", None),
        ({"type": "any"}, PLAIN, "required", None),
        ({"type": "any"}, builtin("nemotron"), "auto", None),
        (
            {"type": "tool", "name": "Bash"},
            PLAIN,
            {"type": "function", "function": {"name": "Bash"}},
            None,
        ),
        ({"type": "tool", "name": "Missing"}, PLAIN, "required", None),
        ({"type": "auto", "disable_parallel_tool_use": True}, PLAIN, "auto", False),
        (None, PLAIN, None, None),
    ],
)
def test_tool_choice_mapping(choice, spec, expected_choice, expected_parallel) -> None:
    extra = {"tool_choice": choice} if choice else {}
    body = translate(
        request([{"role": "user", "content": "hi"}], tools=TOOLS[:1], **extra), spec
    ).body
    assert body.get("tool_choice") == expected_choice
    assert body.get("parallel_tool_calls") == expected_parallel


def test_tool_choice_none_omits_tools_and_tool_choice() -> None:
    translated = translate(
        request([{"role": "user", "content": "hi"}], tools=TOOLS[:1], tool_choice={"type": "none"})
    )
    assert "tools" not in translated.body and "tool_choice" not in translated.body
    assert translated.context.offered_tools == ()


def test_forced_tool_and_parallel_flags_reach_the_context() -> None:
    ctx = translate(
        request(
            [{"role": "user", "content": "hi"}],
            tools=TOOLS[:1],
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
        )
    ).context
    assert ctx.forced_tool and ctx.disable_parallel_tool_use and ctx.offered_tools == ("Bash",)


def test_long_mcp_tool_names_are_shortened_everywhere_and_mapped_back() -> None:
    long_name = "mcp__" + "a_really_long_server_name_" * 3 + "__do_the_thing"
    short = upstream_tool_name(long_name)
    translated = translate(
        request(
            [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [tool_use("t1", name=long_name)]},
                {"role": "user", "content": [tool_result("t1")]},
            ],
            tools=[{"name": long_name, "input_schema": {"type": "object"}}],
            tool_choice={"type": "tool", "name": long_name},
        )
    )
    body = translated.body
    assert body["tools"][0]["function"]["name"] == short
    assert body["messages"][1]["tool_calls"][0]["function"]["name"] == short
    assert body["tool_choice"] == {"type": "function", "function": {"name": short}}
    assert translated.context.tool_name_map[short] == long_name
    assert translated.context.offered_tools == (long_name,)


def test_model_without_tool_support_refuses_tools_with_a_clear_message() -> None:
    with pytest.raises(InvalidRequest) as caught:
        translate(
            request([{"role": "user", "content": "hi"}], model="claude-x", tools=TOOLS[:1]),
            builtin("qwq"),
        )
    message = str(caught.value)
    assert "qwen/qwq-32b" in message and "does not support tool use" in message
    assert "nemotron" in message


def test_model_without_tool_support_still_answers_tool_free_requests() -> None:
    body = translate(request([{"role": "user", "content": "hi"}], tools=[]), builtin("r1")).body
    assert "tools" not in body


# --- reasoning controls (docs/wire.md, "Model quirks") ------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "thinking", "effort", "expected"),
    [
        (
            "nemotron",
            {"type": "adaptive"},
            "medium",
            {"chat_template_kwargs": {"enable_thinking": True}, "reasoning_effort": "medium"},
        ),
        (
            "nemotron",
            {"type": "enabled", "budget_tokens": 2000},
            None,
            {"chat_template_kwargs": {"enable_thinking": True}, "reasoning_effort": "low"},
        ),
        (
            "nemotron",
            {"type": "enabled", "budget_tokens": 8000},
            None,
            {"chat_template_kwargs": {"enable_thinking": True}, "reasoning_effort": "medium"},
        ),
        (
            "nemotron",
            {"type": "enabled", "budget_tokens": 31999},
            None,
            {"chat_template_kwargs": {"enable_thinking": True}, "reasoning_effort": "high"},
        ),
        (
            "nemotron",
            {"type": "adaptive"},
            "max",
            {"chat_template_kwargs": {"enable_thinking": True}, "reasoning_effort": "high"},
        ),
        (
            "nemotron",
            {"type": "disabled"},
            None,
            {"chat_template_kwargs": {"enable_thinking": False}},
        ),
        (
            "gemma4",
            {"type": "adaptive"},
            "medium",
            {"chat_template_kwargs": {"enable_thinking": True}, "reasoning_effort": "high"},
        ),
        (
            "gemma4",
            {"type": "disabled"},
            None,
            {"chat_template_kwargs": {"enable_thinking": False}, "reasoning_effort": "none"},
        ),
        (
            "kimi",
            {"type": "adaptive"},
            "low",
            {"chat_template_kwargs": {"thinking": True}, "reasoning_effort": "high"},
        ),
        ("kimi-code", {"type": "adaptive"}, "high", {}),
        ("kimi-code", {"type": "disabled"}, None, {}),
        ("glm", {"type": "disabled"}, None, {"chat_template_kwargs": {"enable_thinking": False}}),
        ("gpt-oss", {"type": "adaptive"}, "xhigh", {"reasoning_effort": "high"}),
        ("gpt-oss", {"type": "disabled"}, None, {}),
        ("gpt-oss", None, "low", {"reasoning_effort": "low"}),
        ("r1", {"type": "adaptive"}, "high", {}),
        ("llama", {"type": "adaptive"}, "high", {}),
        ("nemotron", None, None, {}),
    ],
)
def test_thinking_maps_to_the_models_own_controls(alias, thinking, effort, expected) -> None:
    extra: dict[str, Any] = {}
    if thinking:
        extra["thinking"] = thinking
    if effort:
        extra["output_config"] = {"effort": effort}
    body = translate(
        request([{"role": "user", "content": "hi"}], max_tokens=32000, **extra), builtin(alias)
    ).body
    controls = {k: body[k] for k in ("chat_template_kwargs", "reasoning_effort") if k in body}
    assert controls == expected


def test_never_sends_an_effort_level_the_model_does_not_list() -> None:
    for alias in ("nemotron", "gemma4", "kimi", "gpt-oss"):
        spec = builtin(alias)
        for effort in ("low", "medium", "high", "xhigh", "max"):
            for thinking in ({"type": "adaptive"}, {"type": "disabled"}, None):
                extra: dict[str, Any] = {"output_config": {"effort": effort}}
                if thinking:
                    extra["thinking"] = thinking
                body = translate(request([{"role": "user", "content": "x"}], **extra), spec).body
                if "reasoning_effort" in body:
                    assert body["reasoning_effort"] in spec.quirks.effort_levels


def test_output_format_becomes_json_schema_response_format() -> None:
    body = translate(
        request(
            [{"role": "user", "content": "title"}],
            output_config={
                "effort": "medium",
                "format": {
                    "type": "json_schema",
                    "schema": {
                        "type": "object",
                        "properties": {"title": {"type": "string"}},
                        "required": ["title"],
                        "additionalProperties": False,
                    },
                },
            },
        )
    ).body
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "response",
            "schema": {
                "type": "object",
                "properties": {"title": {"type": "string"}},
                "required": ["title"],
                "additionalProperties": False,
            },
        },
    }


# --- limits and sampling (docs/wire.md, "Request translation") ------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "requested", "expected"),
    [
        ("gemma4", 32000, 16384),
        ("nemotron", 128000, 128000),
        ("nemotron", 1000, 1000),
        ("llama", 32000, 8192),
    ],
)
def test_max_tokens_is_clamped_to_the_models_output_limit(alias, requested, expected) -> None:
    body = translate(
        request([{"role": "user", "content": "hi"}], max_tokens=requested), builtin(alias)
    ).body
    assert body["max_tokens"] == expected


def test_max_tokens_leaves_room_for_the_prompt_in_the_context_window() -> None:
    spec = replace(PLAIN, context_window=24_000, max_output_tokens=24_000)
    big = "word " * 12_000  # ~13k tokens estimated
    translated = translate(request([{"role": "user", "content": big}], max_tokens=16000), spec)
    estimated = translated.context.estimated_input_tokens
    assert 10_000 < estimated < 16_000
    margin = 1024 + estimated // 20
    assert translated.body["max_tokens"] == 24_000 - estimated - margin


_PROMPT_TOO_LONG = re.compile(r"^prompt is too long: (\d+) tokens > (\d+) maximum$")


def test_a_prompt_that_fills_the_window_is_refused_in_anthropics_overflow_wording() -> None:
    huge = "word " * 200_000
    with pytest.raises(ContextOverflow) as raised:
        translate(request([{"role": "user", "content": huge}]), builtin("llama"))
    match = _PROMPT_TOO_LONG.match(str(raised.value))
    assert match, str(raised.value)
    prompt, limit = int(match.group(1)), int(match.group(2))
    assert prompt > limit
    assert limit < builtin("llama").context_window


@pytest.mark.parametrize(
    ("room_over_floor", "requested", "refused"),
    [
        (-1, 32_000, True),  # one token short of the reply floor
        (0, 32_000, False),
        (0, 100, False),  # less room than the floor, but all that was asked for
        (-4_000, 200, True),
    ],
)
def test_output_floor_decides_between_a_reply_and_an_overflow(
    room_over_floor: int, requested: int, refused: bool
) -> None:
    prompt = [{"role": "user", "content": "word " * 8_000}]
    probe = translate(request(prompt, max_tokens=1), replace(PLAIN, context_window=10**6))
    estimated = probe.context.estimated_input_tokens
    margin = 1024 + estimated // 20
    floor = min(requested, MIN_REPLY_TOKENS)
    window = estimated + margin + floor + room_over_floor
    spec = replace(PLAIN, context_window=window, max_output_tokens=64_000)
    if refused:
        with pytest.raises(ContextOverflow):
            translate(request(prompt, max_tokens=requested), spec)
    else:
        body = translate(request(prompt, max_tokens=requested), spec).body
        assert body["max_tokens"] >= floor + room_over_floor


def test_sampling_fields_and_stop_sequences_pass_through() -> None:
    translated = translate(
        request(
            [{"role": "user", "content": "hi"}],
            temperature=0.2,
            top_p=0.9,
            top_k=40,
            stop_sequences=["END", "", "STOP"],
            stream=True,
        )
    )
    body = translated.body
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.2, 0.9, 40)
    assert body["stop"] == ["END", "STOP"]
    assert translated.context.stop_sequences == ("END", "STOP")
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_top_k_is_dropped_for_models_that_reject_it() -> None:
    body = translate(
        request([{"role": "user", "content": "hi"}], top_k=5), spec_with(accepts_top_k=False)
    ).body
    assert "top_k" not in body


def test_non_streaming_request_has_no_stream_options() -> None:
    body = translate(request([{"role": "user", "content": "hi"}], stream=False)).body
    assert "stream_options" not in body and not body.get("stream")


def test_context_carries_model_estimate_and_requested_name() -> None:
    spec = builtin("nemotron")
    translated = translate_request(
        request([{"role": "user", "content": "hi"}]), spec, upstream_model="up/model"
    )
    assert translated.body["model"] == "up/model"
    assert translated.context.requested_model == "claude-opus-5-5"
    assert translated.context.spec is spec
    assert translated.context.estimated_input_tokens >= 1
    assert translated.context.thinking_enabled is True  # Nemotron thinks unless told not to
    assert translated.context.max_tokens == translated.body["max_tokens"]


# --- the real client ------------------------------------------------------------------------


def test_real_claude_code_request_translates_cleanly() -> None:
    request_body = json.loads(FIXTURE.read_text())
    translated = translate(request_body, builtin("nemotron"))
    body = translated.body
    text = orjson.dumps(body).decode()
    assert "x-anthropic-billing-header" not in text
    assert "$schema" not in text and "cache_control" not in text
    assert body["messages"][0]["role"] == "system"
    assert [m["role"] for m in body["messages"][1:]] == ["user", "assistant", "tool"]
    assert body["messages"][1]["content"].count("<system-reminder>") >= 2
    assert body["messages"][3]["content"].startswith("1\tdef function_1")
    assert len(body["tools"]) == 21
    assert body["max_tokens"] == 128000
    assert body["chat_template_kwargs"] == {"enable_thinking": True}
