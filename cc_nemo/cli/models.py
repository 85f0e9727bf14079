"""`cc-proxy models`: the catalog table, user aliases (add/remove/default) and `--remote`."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated

import typer

from cc_nemo.cli.common import console, note
from cc_nemo.cli.model_options import SmallModelOption, SubagentModelOption, complete_model_alias
from cc_nemo.errors import UserError
from cc_nemo.settings.config import Config, load_config, save_config, spec_problem, validate_alias

if TYPE_CHECKING:
    from cc_nemo.cloudflare.models_remote import RemoteModel
    from cc_nemo.settings.catalog import Catalog, ModelSpec


def _complete_user_alias(incomplete: str) -> list[str]:
    try:
        aliases = load_config().user_models
    except Exception:
        return []
    return sorted(alias for alias in aliases if alias.startswith(incomplete))


models_app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,
    help="List the model catalog; add, remove or choose default models.",
)


@models_app.callback()
def models(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON array instead of a table.")
    ] = False,
    remote: Annotated[
        bool,
        typer.Option(
            "--remote",
            help="List the text-generation models your Cloudflare account can run.",
        ),
    ] = False,
) -> None:
    """List the model catalog (built-in and user-defined aliases)."""
    if ctx.invoked_subcommand is not None:
        if as_json or remote:
            raise UserError("--json and --remote go after `models`, without a subcommand")
        return
    config = load_config()
    from cc_nemo.settings.resolve import build_catalog

    catalog = build_catalog(config)
    if remote:
        _show_remote(config, catalog, as_json)
    elif as_json:
        _print_json([spec.as_json() for spec in catalog.models.values()])
    else:
        _show_catalog(config, catalog)


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _price(value: float | None) -> str:
    """$0.50, $0.051, $4.40: cents always, a third decimal only when the price has one."""
    if value is None:
        return "-"
    text = f"{value:.3f}"
    return "$" + (text[:-1] if text.endswith("0") else text)


def _yes(flag: bool) -> str:
    return "yes" if flag else "-"


def _default_alias(config: Config) -> str:
    from cc_nemo.settings.catalog import DEFAULT_MODEL_ALIAS
    from cc_nemo.settings.resolve import ENV_MODEL, model_choice

    return model_choice(None, ENV_MODEL, config.default_model).value or DEFAULT_MODEL_ALIAS


def _show_catalog(config: Config, catalog: Catalog) -> None:
    from rich.table import Table

    default = _default_alias(config)
    table = Table(title="cc-proxy models (prices in USD per million tokens)", title_justify="left")
    for name, justify in (
        ("Alias", "left"),
        ("Upstream model", "left"),
        ("Context", "right"),
        ("Max out", "right"),
        ("In", "right"),
        ("Out", "right"),
        ("Tools", "center"),
        ("Reasoning", "center"),
        ("Vision", "center"),
    ):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    notes = []
    for spec in catalog.models.values():
        alias = (
            spec.alias
            + (" *" if spec.user_defined else "")
            + (" (default)" if spec.alias == default else "")
        )
        table.add_row(
            alias,
            spec.model,
            f"{spec.context_window:,}",
            f"{spec.max_output_tokens:,}",
            _price(spec.input_price_per_mtok),
            _price(spec.output_price_per_mtok),
            _yes(spec.tools),
            _yes(spec.reasoning),
            _yes(spec.vision),
        )
        if spec.note:
            notes.append(f"{spec.alias}: {spec.note}")
    out = console()
    out.print(table)
    if any(spec.user_defined for spec in catalog.models.values()):
        out.print("* user-defined (config.toml; `cc-proxy models remove ALIAS` to drop one)")
    for line in notes:
        out.print(f"note: {line}")


def _show_remote(config: Config, catalog: Catalog, as_json: bool) -> None:
    from cc_nemo.cloudflare.models_remote import list_remote_models
    from cc_nemo.settings.credentials import get_secret
    from cc_nemo.settings.resolve import account_id, base_url

    account = account_id(config)
    if not account:
        raise UserError(
            "listing your models needs the Cloudflare account id: run `cc-proxy login` "
            "with your AI Gateway URL (or set CLOUDFLARE_ACCOUNT_ID)"
        )
    token, _ = get_secret("cloudflare_api_token")
    if not token and "api.cloudflare.com" in (base_url(config).value or ""):
        token, _ = get_secret("api_key")  # the openai provider on Workers AI's REST API
    if not token:
        raise UserError(
            "listing your models needs a Cloudflare API token with Workers AI Read: "
            "run `cc-proxy login` and give one (or set CLOUDFLARE_API_TOKEN)"
        )
    remote = list_remote_models(account, token, catalog)
    if as_json:
        _print_json([model.as_json() for model in remote])
        return
    _print_remote_table(remote, account)


def _print_remote_table(remote: list[RemoteModel], account: str) -> None:
    from rich.table import Table

    table = Table(
        title=f"Text-generation models of account {account} (USD per million tokens)",
        title_justify="left",
    )
    for name, justify in (
        ("Model", "left"),
        ("Alias", "left"),
        ("Context", "right"),
        ("In", "right"),
        ("Out", "right"),
        ("Tools", "center"),
        ("Reasoning", "center"),
        ("Vision", "center"),
    ):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for model in remote:
        table.add_row(
            model.model,
            model.alias or "-",
            f"{model.context_window:,}" if model.context_window else "?",
            _price(model.input_price_per_mtok),
            _price(model.output_price_per_mtok),
            _yes(model.tools),
            _yes(model.reasoning),
            _yes(model.vision),
        )
    out = console()
    out.print(table)
    cataloged = sum(1 for model in remote if model.alias)
    out.print(
        f"{len(remote)} models, {cataloged} in the catalog; add another with "
        "`cc-proxy models add ALIAS @cf/...`"
    )


@models_app.command("add")
def add(
    alias: Annotated[
        str, typer.Argument(metavar="ALIAS", help="Short name to use with `cc-proxy run ALIAS`.")
    ],
    model_id: Annotated[
        str, typer.Argument(metavar="MODEL_ID", help="Upstream model id, e.g. @cf/zai-org/glm-5.3.")
    ],
    like: Annotated[
        str | None,
        typer.Option(
            metavar="ALIAS",
            help="Copy limits, prices, capabilities and quirks from this alias first.",
            autocompletion=complete_model_alias,
        ),
    ] = None,
    context: Annotated[
        int | None, typer.Option(metavar="TOKENS", help="Context window in tokens.", min=1)
    ] = None,
    max_output: Annotated[
        int | None, typer.Option(metavar="TOKENS", help="Maximum output tokens.", min=1)
    ] = None,
    price_in: Annotated[
        float | None, typer.Option(metavar="USD", help="USD per million input tokens.", min=0)
    ] = None,
    price_out: Annotated[
        float | None, typer.Option(metavar="USD", help="USD per million output tokens.", min=0)
    ] = None,
    tools: Annotated[
        bool | None, typer.Option("--tools/--no-tools", help="Supports tool calls.")
    ] = None,
    reasoning: Annotated[
        bool | None, typer.Option("--reasoning/--no-reasoning", help="Emits reasoning (thinking).")
    ] = None,
    vision: Annotated[
        bool | None, typer.Option("--vision/--no-vision", help="Accepts images.")
    ] = None,
    note_text: Annotated[
        str | None, typer.Option("--note", metavar="TEXT", help="A remark shown in the table.")
    ] = None,
) -> None:
    """Add (or replace) a user-defined alias in config.toml."""
    from cc_nemo.settings.catalog import (
        BUILTIN_MODELS,
        DEFAULT_CONTEXT_WINDOW,
        DEFAULT_MAX_OUTPUT_TOKENS,
    )
    from cc_nemo.settings.catalog import ModelSpec as Spec
    from cc_nemo.settings.config import with_user_model
    from cc_nemo.settings.resolve import build_catalog, require_model

    validate_alias(alias)
    config = load_config()
    if like:
        base = replace(
            require_model(build_catalog(config), like), alias=alias, model=model_id, note=""
        )
    else:
        base = Spec(alias, model_id, DEFAULT_CONTEXT_WINDOW, DEFAULT_MAX_OUTPUT_TOKENS)
    spec = _with_overrides(
        base,
        context_window=context,
        max_output_tokens=max_output,
        input_price_per_mtok=price_in,
        output_price_per_mtok=price_out,
        tools=tools,
        reasoning=reasoning,
        vision=vision,
        note=note_text,
    )
    if (problem := spec_problem(spec)) is not None:
        raise UserError(f"cannot add {alias!r}: {problem}")
    replaced = alias in config.user_models
    save_config(with_user_model(config, spec))
    verb = "Replaced" if replaced else "Added"
    note(
        f"{verb} {alias} → {spec.model} (context {spec.context_window:,}, "
        f"max output {spec.max_output_tokens:,})"
    )
    if any(builtin.alias == alias for builtin in BUILTIN_MODELS):
        note(f"note: this overrides the built-in alias {alias!r} (remove it to restore)")


def _with_overrides(spec: ModelSpec, **values: object) -> ModelSpec:
    return replace(spec, **{key: value for key, value in values.items() if value is not None})  # type: ignore[arg-type]


@models_app.command("remove")
def remove(
    alias: Annotated[
        str,
        typer.Argument(
            metavar="ALIAS", help="A user-defined alias.", autocompletion=_complete_user_alias
        ),
    ],
) -> None:
    """Remove a user-defined alias from config.toml."""
    from cc_nemo.settings.catalog import BUILTIN_MODELS

    config = load_config()
    if alias not in config.user_models:
        if any(spec.alias == alias for spec in BUILTIN_MODELS):
            raise UserError(
                f"{alias!r} is built in; only aliases added with `models add` can be removed"
            )
        known = ", ".join(sorted(config.user_models)) or "none"
        raise UserError(f"no user-defined alias {alias!r} (user aliases: {known})")
    models = {name: spec for name, spec in config.user_models.items() if name != alias}
    fallbacks = config.fallbacks
    if not any(spec.alias == alias for spec in BUILTIN_MODELS):
        # Fallbacks naming a model that no longer exists would stop every later `run`.
        fallbacks = {
            owner: [name for name in names if name != alias]
            for owner, names in config.fallbacks.items()
            if owner != alias
        }
        fallbacks = {owner: names for owner, names in fallbacks.items() if names}
    save_config(replace(config, user_models=models, fallbacks=fallbacks))
    note(f"Removed {alias}")


@models_app.command("default")
def default(
    model: Annotated[
        str | None,
        typer.Argument(
            metavar="MODEL",
            help="Main model alias (or raw upstream id).",
            autocompletion=complete_model_alias,
        ),
    ] = None,
    small: SmallModelOption = None,
    subagent: SubagentModelOption = None,
    reset: Annotated[bool, typer.Option("--reset", help="Forget all three choices.")] = False,
) -> None:
    """Show or set the default, small and subagent models (stored in config.toml)."""
    from cc_nemo.settings.resolve import build_catalog, require_model

    config = load_config()
    if reset:
        config = replace(config, default_model=None, small_model=None, subagent_model=None)
    catalog = build_catalog(config)
    changes = {"default_model": model, "small_model": small, "subagent_model": subagent}
    for value in changes.values():
        if value is not None:
            require_model(catalog, value)  # an unknown alias fails here, before saving
    updated = replace(config, **{key: value for key, value in changes.items() if value is not None})
    if reset or updated != config:
        save_config(updated)
    out = console()
    out.print(f"default model:  {_default_alias(updated)}")
    out.print(f"small model:    {updated.small_model or 'same as the default model'}")
    out.print(f"subagent model: {updated.subagent_model or 'as Claude Code asks'}")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
