"""`cnnexp recipes list` and `cnnexp recipes show`."""

from __future__ import annotations

import typer

from cnnexp.cli.app import Args, Json, guarded_command, recipes_app, split_args
from cnnexp.console import emit_json


@recipes_app.command("list")
@guarded_command
def recipes_list(json: Json = False) -> None:
    """List experiments and components by group (./recipes first, then built-in).

    Example: `cnnexp recipes list --json`
    """
    from cnnexp.recipe import RECIPE_FOLDERS, available

    found = {folder: available(folder) for folder in RECIPE_FOLDERS}
    if json:
        emit_json(found)
        return
    from rich.table import Table

    from cnnexp.console import SafeConsole as Console

    table = Table("group", "names", title="cnnexp recipes", title_justify="left")
    for folder, names in found.items():
        table.add_row(folder, ", ".join(names) or "-")
    Console().print(table)


@recipes_app.command("show")
@guarded_command
def recipes_show(args: Args = None, json: Json = False) -> None:
    """Print the composed, validated recipe as YAML.

    Examples: `cnnexp recipes show`, `cnnexp recipes show shapes arch=lenet5 opt.lr=0.01`
    """
    from cnnexp.recipe import load_recipe, to_yaml

    ref, overrides = split_args(args)
    recipe = load_recipe(ref, overrides)
    if json:
        emit_json(recipe.model_dump(mode="json"))
    else:
        typer.echo(to_yaml(recipe), nl=False)
