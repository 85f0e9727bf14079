"""Tool input schemas trimmed to the JSON Schema subset OpenAI-compatible servers accept (docs/wire.md, "Request translation")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Annotations and draft-2020 keywords that vLLM/Workers AI validators or grammar compilers
# reject or choke on; none of them changes which arguments a model should produce.
_DROPPED = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$anchor",
        "$dynamicAnchor",
        "$dynamicRef",
        "propertyNames",
        "examples",
        "contentEncoding",
        "contentMediaType",
        "unevaluatedProperties",
        "unevaluatedItems",
        "dependentSchemas",
        "dependentRequired",
    }
)
_SAFE_FORMATS = frozenset({"date-time", "date", "time", "email", "uuid"})
_SCHEMA_MAP_KEYS = ("properties", "patternProperties", "$defs", "definitions")
_SCHEMA_LIST_KEYS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_KEYS = ("not", "contains", "if", "then", "else")
_EXACT_FLOAT_INTS = 2**53


def sanitize_tool_schema(schema: object) -> dict[str, Any]:
    """A tool's `parameters`: always an object schema, cleaned recursively."""
    if not isinstance(schema, Mapping):
        return {"type": "object", "properties": {}}
    cleaned = sanitize_schema(schema)
    if cleaned.get("type") != "object":
        cleaned["type"] = "object"
    if not isinstance(cleaned.get("properties"), dict):
        cleaned["properties"] = {}
    return cleaned


def sanitize_schema(schema: Mapping) -> dict[str, Any]:
    """One schema node, with its sub-schemas, minus keywords upstream validators reject."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED:
            continue
        if key in _SCHEMA_MAP_KEYS:
            if isinstance(value, Mapping):
                out[key] = {
                    name: sanitize_schema(sub) if isinstance(sub, Mapping) else sub
                    for name, sub in value.items()
                }
        elif key in _SCHEMA_LIST_KEYS:
            if isinstance(value, list):
                out[key] = [sanitize_schema(s) if isinstance(s, Mapping) else s for s in value]
        elif key == "items":
            if isinstance(value, Mapping):
                out[key] = sanitize_schema(value)
            elif isinstance(value, list):
                out[key] = [sanitize_schema(s) if isinstance(s, Mapping) else s for s in value]
            elif isinstance(value, bool):
                out[key] = value
        elif key in _SCHEMA_KEYS:
            if isinstance(value, Mapping):
                out[key] = sanitize_schema(value)
        elif key == "additionalProperties":
            if isinstance(value, bool):
                out[key] = value
        elif key == "format":
            # Any JSON can stand here; a list or an object is not hashable.
            if isinstance(value, str) and value in _SAFE_FORMATS:
                out[key] = value
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            continue  # folded into minimum/maximum below
        else:
            out[key] = value
    if "const" in out:
        const = out.pop("const")
        out.setdefault("enum", [const])
    _fold_exclusive_bounds(schema, out)
    return out


def _fold_exclusive_bounds(schema: Mapping, out: dict[str, Any]) -> None:
    """Draft-2020 numeric exclusive bounds become inclusive ones (exact for integers)."""
    is_integer = schema.get("type") == "integer"
    for exclusive, inclusive, step, pick in (
        ("exclusiveMinimum", "minimum", 1, max),
        ("exclusiveMaximum", "maximum", -1, min),
    ):
        bound = schema.get(exclusive)
        if isinstance(bound, bool) or not isinstance(bound, int | float):
            continue  # draft-4 booleans only qualify minimum/maximum: drop them
        if is_integer and float(bound).is_integer() and abs(bound) < _EXACT_FLOAT_INTS:
            # Beyond 2**53 a float is no exact integer, and int(1e300) + 1 is more than the
            # 64 bits orjson can encode: such a bound stays as it is.
            bound = int(bound) + step
        current = out.get(inclusive)
        if isinstance(current, int | float) and not isinstance(current, bool):
            bound = pick(current, bound)
        out[inclusive] = bound
