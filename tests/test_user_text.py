"""User text reaches every renderer: text that looks like rich markup prints as written and
never ends a command (issue 24 item 8)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["train.epochs=1", "data.subset=200"]
NAME = "x[/]y[bold]"


def test_markup_in_a_recipe_name_prints_as_written(cli) -> None:
    for args in (("train", f"name={NAME}", *TINY),
                 ("sanity", f"name={NAME}", "data.subset=200", "--checks", "data,init-loss"),
                 ("report",)):
        res = cli(*args)
        assert res.exit_code == 0, (args, res.stderr[-2000:])
        assert NAME in res.stdout + res.stderr, args


def test_markup_in_an_arm_label_prints_as_written(cli, workdir: Path) -> None:
    (workdir / "spec.yaml").write_text(
        "baseline: digits\nmode: leave-one-out\nseeds: 1\n"
        "overrides: {train.epochs: 1, data.subset: 200}\n"
        'arms:\n  "no wd [/]": {opt.weight_decay: 0}\n')
    for extra in (["--dry-run"], []):
        res = cli("ablate", "--spec", "spec.yaml", *extra)
        assert res.exit_code == 0, res.stderr[-2000:]
        assert "no wd [/]" in res.stdout + res.stderr


def test_the_console_backstop_prints_bad_markup_literally() -> None:
    from cnnexp.console import SafeConsole

    con = SafeConsole(record=True, width=80)
    con.print("closing [/] with nothing open")
    con.print("[bold]fine[/bold]")
    assert con.export_text() == "closing [/] with nothing open\nfine\n"
