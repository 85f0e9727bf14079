"""The model choices `run`, `serve` and `models default` share, declared once."""

from __future__ import annotations

from typing import Annotated

import typer

MODEL_HELP = "Model alias or upstream id (default: the configured default model)."
SMALL_HELP = "Model for claude's side requests (session titles, haiku-class calls)."
SUBAGENT_HELP = "Model for subagents (Agent tool); default: the main model."


def complete_model_alias(incomplete: str) -> list[str]:
    """Shell completion for MODEL arguments: built-in and user aliases starting with `incomplete`
    (the config and catalog are loaded only when completion asks)."""
    from cc_nemo.settings.catalog import BUILTIN_MODELS

    try:
        from cc_nemo.settings.config import load_config
        from cc_nemo.settings.resolve import build_catalog

        aliases = build_catalog(load_config()).aliases()
    except Exception:  # a broken config must not break the user's shell
        aliases = [spec.alias for spec in BUILTIN_MODELS]
    return sorted(alias for alias in aliases if alias.startswith(incomplete))


ModelArgument = Annotated[
    str | None,
    typer.Argument(
        metavar="MODEL", help=MODEL_HELP, autocompletion=complete_model_alias, show_default=False
    ),
]
SmallModelOption = Annotated[
    str | None,
    typer.Option(
        "--small-model",
        "--small",
        metavar="MODEL",
        help=SMALL_HELP,
        autocompletion=complete_model_alias,
    ),
]
SubagentModelOption = Annotated[
    str | None,
    typer.Option(
        "--subagent-model",
        "--subagent",
        metavar="MODEL",
        help=SUBAGENT_HELP,
        autocompletion=complete_model_alias,
    ),
]
