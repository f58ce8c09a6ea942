"""Every argument of every command says what it is for in `--help` (issue 16: `generate --venue
--out --hours --seed`, `check-config path`, `simulate --port` had none)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from tradingd.cli.main import _parser, main


def _walk(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
    """(command path, action) for every action of `parser` and of its subparsers, recursively."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            # Each subcommand's line in its parent's help is a pseudo-action of its own.
            for choice in action._choices_actions:
                yield path, choice
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{path} {name}")
        else:
            yield path, action


def test_every_argument_of_every_command_has_help() -> None:
    actions = list(_walk(_parser(), "tradingd"))
    assert len(actions) > 80  # the walk reaches the nested commands (catalog search, data inspect)
    missing = [
        f"{path}: {'/'.join(action.option_strings) or action.dest}"
        for path, action in actions
        if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (["generate"], ["--venue VENUE  the venue whose market", "--seed SEED    the synthetic"]),
        (["check-config"], ["path        the TOML config to check"]),
        (["simulate"], ["--port PORT  the port to listen on"]),
    ],
)
def test_help_shows_it(command: list[str], shown: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for text in shown:
        assert " ".join(text.split()) in out
