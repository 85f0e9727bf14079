"""The model catalog: what each upstream model can do and how to talk to it.

Pure data. Figures and quirks are explained in docs/wire.md, "Model quirks"; behaviour that
was only reported, not verified live, is expressed as a per-model quirk so it can
be changed without touching the translator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

ToolChoiceAny = Literal["required", "auto"]

# AI Gateway's unified endpoint names Workers AI models `workers-ai/@cf/...`; other endpoints
# take the bare `@cf/...` id.
CLOUDFLARE_MODEL_PREFIX = "workers-ai/"


def bare_model_id(model: str) -> str:
    """The model id without AI Gateway's provider prefix."""
    return model.removeprefix(CLOUDFLARE_MODEL_PREFIX)


HistoryReasoningField = Literal["reasoning", "reasoning_content"]


@dataclass(frozen=True)
class ModelQuirks:
    """How one upstream model deviates from plain OpenAI Chat Completions."""

    # chat_template_kwargs key that switches thinking on/off (Nemotron, Gemma: "enable_thinking";
    # Kimi K2.6: "thinking"); None when the caller cannot switch it.
    thinking_switch: str | None = None
    # reasoning_effort values the model accepts; () means never send reasoning_effort.
    effort_levels: tuple[str, ...] = ()
    # Whether the model thinks when the request says nothing.
    thinks_by_default: bool = False
    # Anthropic tool_choice "any" becomes this; Nemotron crashed on "required" (docs/wire.md, "Model quirks").
    tool_choice_any: ToolChoiceAny = "required"
    # A reply that is only reasoning (no text, no tool call) is also emitted as a text block,
    # so the user never sees an empty answer (Nemotron streams everything as reasoning).
    reasoning_as_text_fallback: bool = False
    # Attach the current tool loop's thinking to assistant history under this field.
    history_reasoning_field: HistoryReasoningField | None = None
    # Content starts inside a think block and only "</think>" marks its end (R1-distill, QwQ).
    starts_in_think_block: bool = False
    # Forced tool calls leak as raw JSON in content (gpt-oss): convert them back to tool_use.
    salvage_leaked_tool_calls: bool = False
    # Whether the upstream accepts the non-standard top_k field.
    accepts_top_k: bool = True


@dataclass(frozen=True)
class ModelSpec:
    """One entry of the catalog: an alias and everything we know about its upstream model."""

    alias: str
    model: str
    context_window: int
    max_output_tokens: int
    input_price_per_mtok: float = 0.0
    output_price_per_mtok: float = 0.0
    cached_input_price_per_mtok: float | None = None
    tools: bool = True
    reasoning: bool = False
    vision: bool = False
    quirks: ModelQuirks = field(default_factory=ModelQuirks)
    user_defined: bool = False
    note: str = ""
    # What a person calls the model ("Nemotron 3 120B"); Claude Code's model picker shows it.
    title: str = ""

    @property
    def display_name(self) -> str:
        """The model's name as Claude Code's picker shows it: "Nemotron 3 120B · Workers AI"."""
        where = "Workers AI" if _is_workers_ai(self.model) else bare_model_id(self.model)
        return f"{self.title or self.alias} · {where}"

    def cost_usd(
        self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0
    ) -> float:
        """Estimated cost of one request at catalog prices."""
        cached_price = (
            self.cached_input_price_per_mtok
            if self.cached_input_price_per_mtok is not None
            else self.input_price_per_mtok
        )
        return (
            input_tokens * self.input_price_per_mtok
            + cached_input_tokens * cached_price
            + output_tokens * self.output_price_per_mtok
        ) / 1_000_000

    def as_json(self) -> dict[str, object]:
        """The public shape used by `cc-proxy models --json`."""
        return {
            "alias": self.alias,
            "model": self.model,
            "context_window": self.context_window,
            "max_output_tokens": self.max_output_tokens,
            "input_price_per_mtok": self.input_price_per_mtok,
            "output_price_per_mtok": self.output_price_per_mtok,
            "tools": self.tools,
            "reasoning": self.reasoning,
            "vision": self.vision,
            "user_defined": self.user_defined,
            "display_name": self.display_name,
        }


def _is_workers_ai(model: str) -> bool:
    return bare_model_id(model).startswith(("@cf/", "@hf/"))


def _cf(name: str) -> str:
    return f"workers-ai/@cf/{name}"


_NEMOTRON = ModelQuirks(
    thinking_switch="enable_thinking",
    effort_levels=("low", "medium", "high"),
    thinks_by_default=True,
    tool_choice_any="auto",
    reasoning_as_text_fallback=True,
)
_GEMMA4 = ModelQuirks(
    thinking_switch="enable_thinking", effort_levels=("none", "high"), accepts_top_k=True
)
_KIMI_26 = ModelQuirks(
    thinking_switch="thinking",
    effort_levels=("none", "high"),
    thinks_by_default=True,
    history_reasoning_field="reasoning",
    reasoning_as_text_fallback=True,
)
_KIMI_27 = ModelQuirks(
    thinks_by_default=True, history_reasoning_field="reasoning", reasoning_as_text_fallback=True
)
_GLM = ModelQuirks(
    thinking_switch="enable_thinking",
    thinks_by_default=True,
    history_reasoning_field="reasoning_content",
    reasoning_as_text_fallback=True,
)
_GPT_OSS = ModelQuirks(
    effort_levels=("low", "medium", "high"),
    thinks_by_default=True,
    salvage_leaked_tool_calls=True,
    reasoning_as_text_fallback=True,
)
_QWEN3 = ModelQuirks(thinking_switch="enable_thinking", thinks_by_default=True)
_FIXED_THINKER = ModelQuirks(
    thinks_by_default=True, starts_in_think_block=True, reasoning_as_text_fallback=True
)

BUILTIN_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("nemotron", _cf("nvidia/nemotron-3-120b-a12b"), 256_000, 256_000, 0.50, 1.50,
              reasoning=True, quirks=_NEMOTRON, title="Nemotron 3 120B"),
    ModelSpec("gemma4", _cf("google/gemma-4-26b-a4b-it"), 256_000, 16_384, 0.10, 0.30,
              reasoning=True, vision=True, quirks=_GEMMA4, title="Gemma 4 26B"),
    ModelSpec("llama", _cf("meta/llama-3.3-70b-instruct-fp8-fast"), 24_000, 8_192, 0.29, 2.25,
              note="24k context: too small for Claude Code's prompt and tools", title="Llama 3.3 70B"),
    ModelSpec("llama4-scout", _cf("meta/llama-4-scout-17b-16e-instruct"), 131_000, 16_384,
              0.27, 0.85, vision=True, title="Llama 4 Scout 17B"),
    ModelSpec("qwen3", _cf("qwen/qwen3-30b-a3b-fp8"), 32_768, 16_384, 0.051, 0.34,
              reasoning=True, quirks=_QWEN3, title="Qwen3 30B"),
    ModelSpec("qwq", _cf("qwen/qwq-32b"), 24_000, 8_192, 0.66, 1.00, tools=False,
              reasoning=True, quirks=_FIXED_THINKER, title="QwQ 32B"),
    ModelSpec("qwen-coder", _cf("qwen/qwen2.5-coder-32b-instruct"), 32_768, 8_192, 0.66, 1.00,
              tools=False, title="Qwen2.5 Coder 32B"),
    ModelSpec("gpt-oss", _cf("openai/gpt-oss-120b"), 128_000, 32_768, 0.35, 0.75,
              reasoning=True, quirks=_GPT_OSS, title="gpt-oss 120B"),
    ModelSpec("gpt-oss-20b", _cf("openai/gpt-oss-20b"), 128_000, 32_768, 0.20, 0.30,
              reasoning=True, quirks=_GPT_OSS, title="gpt-oss 20B"),
    ModelSpec("kimi", _cf("moonshotai/kimi-k2.6"), 262_144, 32_768, 0.95, 4.00,
              cached_input_price_per_mtok=0.16, reasoning=True, vision=True, quirks=_KIMI_26, title="Kimi K2.6"),
    ModelSpec("kimi-code", _cf("moonshotai/kimi-k2.7-code"), 262_144, 32_768, 0.95, 4.00,
              cached_input_price_per_mtok=0.19, reasoning=True, vision=True, quirks=_KIMI_27, title="Kimi K2.7 Code"),
    ModelSpec("glm-flash", _cf("zai-org/glm-4.7-flash"), 131_072, 32_768, 0.06, 0.40,
              reasoning=True, quirks=_GLM, title="GLM 4.7 Flash"),
    ModelSpec("glm", _cf("zai-org/glm-5.2"), 262_144, 32_768, 1.40, 4.40,
              cached_input_price_per_mtok=0.26, reasoning=True, quirks=_GLM, title="GLM 5.2"),
    ModelSpec("mistral-small", _cf("mistralai/mistral-small-3.1-24b-instruct"), 128_000, 8_192,
              0.35, 0.56, vision=True, title="Mistral Small 3.1 24B"),
    ModelSpec("r1", _cf("deepseek-ai/deepseek-r1-distill-qwen-32b"), 80_000, 16_384, 0.50, 4.88,
              tools=False, reasoning=True, quirks=_FIXED_THINKER, title="DeepSeek R1 Distill Qwen 32B"),
)  # fmt: skip

DEFAULT_MODEL_ALIAS = "nemotron"


class UnknownModelError(LookupError):
    """An alias that is neither built in nor user-defined."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(f"unknown model {name!r}; known aliases: {', '.join(self.known)}")


@dataclass(frozen=True)
class Catalog:
    """Built-in models plus the user's own aliases (user entries win on a clash)."""

    models: Mapping[str, ModelSpec]

    @classmethod
    def build(cls, user_models: Iterable[ModelSpec] = ()) -> Catalog:
        merged = {spec.alias: spec for spec in BUILTIN_MODELS}
        for spec in user_models:
            merged[spec.alias] = replace(spec, user_defined=True)
        return cls(merged)

    def aliases(self) -> list[str]:
        return list(self.models)

    def resolve(self, name: str) -> ModelSpec:
        """Find a spec by alias, or by its exact upstream model id (with or without the
        `workers-ai/` prefix), so `cc-proxy run @cf/...` works for cataloged models."""
        if name in self.models:
            return self.models[name]
        for spec in self.models.values():
            if name in (spec.model, bare_model_id(spec.model)):
                return spec
        raise UnknownModelError(name, self.models)


# Limits assumed for a model whose own are unknown (a raw upstream id, a user alias that
# states none): a common window for current open models, and a modest output budget.
DEFAULT_CONTEXT_WINDOW = 128_000
DEFAULT_MAX_OUTPUT_TOKENS = 16_384


def ad_hoc_spec(model_id: str) -> ModelSpec:
    """A conservative spec for an upstream id that is not in the catalog."""
    return ModelSpec(
        alias=model_id,
        model=model_id,
        context_window=DEFAULT_CONTEXT_WINDOW,
        max_output_tokens=DEFAULT_MAX_OUTPUT_TOKENS,
        note="not in the catalog: conservative limits assumed",
        user_defined=True,
    )
