"""The model choices `run`, `serve` and `models default` share, declared once."""

from __future__ import annotations

from typing import Annotated

import typer

MODEL_HELP = "Model alias or upstream id (default: the configured default model)."
SMALL_HELP = "Model for claude's side requests (session titles, haiku-class calls)."
SUBAGENT_HELP = "Model for subagents (Agent tool); default: the main model."


def complete_model(incomplete: str) -> list[str]:
    """Aliases for shell completion; the catalog is only loaded when completion asks."""
    from cc_nemo.cli.models import complete_model_alias

    return complete_model_alias(incomplete)


ModelArgument = Annotated[
    str | None,
    typer.Argument(
        metavar="MODEL", help=MODEL_HELP, autocompletion=complete_model, show_default=False
    ),
]
SmallModelOption = Annotated[
    str | None,
    typer.Option(
        "--small-model", "--small", metavar="MODEL", help=SMALL_HELP, autocompletion=complete_model
    ),
]
SubagentModelOption = Annotated[
    str | None,
    typer.Option(
        "--subagent-model",
        "--subagent",
        metavar="MODEL",
        help=SUBAGENT_HELP,
        autocompletion=complete_model,
    ),
]
