"""MkDocs hook: the CLI reference page is generated from the ``emorl`` argument parser.

``docs/cli.md`` holds the prose; the ``<!-- emorl-cli -->`` marker is replaced at build time by
the help of every sub-command, as ``emorl <command> --help`` prints it, so the page cannot fall
behind the code. Two changes keep every line within the site's code blocks (80 columns, see
``tests/test_docs_code.py``): the help wraps at 80 columns, and an option with a long list of
choices shows a metavar (``--preset PRESET``) instead of the list, which goes into its help
unless the help already names every choice.
"""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

MARKER = "<!-- emorl-cli -->"
#: Help text wraps at this width (the site's code blocks show 80 columns at 1280 px).
WIDTH = 80
#: A ``{a,b,...}`` list of choices longer than this is shown as a metavar instead.
MAX_CHOICES = 32


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, wrapping at spaces only (never inside ``--max-objects``)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        text = self._whitespace_matcher.sub(" ", text).strip()
        return textwrap.wrap(text, width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        text = self._whitespace_matcher.sub(" ", text).strip()
        return textwrap.fill(
            text, width, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False
        )


def _formatter(prog: str) -> argparse.HelpFormatter:
    return _Formatter(prog, width=WIDTH, max_help_position=32)


def _shorten_choices(parser: argparse.ArgumentParser) -> None:
    """A long list of choices, unbreakable in the usage line, becomes ``DEST`` plus help text."""
    for action in parser._actions:
        if action.choices is None or action.metavar is not None:
            continue
        if isinstance(action, argparse._SubParsersAction):
            continue
        choices = [str(choice) for choice in action.choices]
        if len("{" + ",".join(choices) + "}") <= MAX_CHOICES:
            continue
        action.metavar = action.dest.upper()
        if not all(choice in (action.help or "") for choice in choices):
            listed = "one of: " + ", ".join(choices)
            action.help = f"{action.help}; {listed}" if action.help else listed


def _help(parser: argparse.ArgumentParser) -> str:
    parser.formatter_class = _formatter
    _shorten_choices(parser)
    return parser.format_help().rstrip()


def cli_reference() -> str:
    """Markdown: the top-level help, then one section per sub-command."""
    from pyro_emorl.cli import build_parser

    parser = build_parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summaries = {action.dest: action.help for action in commands._choices_actions}
    lines = ["## emorl", "", "```text", _help(parser), "```", ""]
    for name, subparser in commands.choices.items():
        lines += [f"## emorl {name}", "", f"{summaries.get(name, '')}.", ""]
        lines += ["```text", _help(subparser), "```", ""]
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())
