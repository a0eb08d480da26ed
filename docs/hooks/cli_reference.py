"""MkDocs hook: the CLI reference page is generated from the ``emorl`` argument parser.

``docs/cli.md`` holds the prose; the ``<!-- emorl-cli -->`` marker is replaced at build time by
the help of every sub-command, as ``emorl <command> --help`` prints it, so the page cannot fall
behind the code. The help wraps at 80 columns, at spaces only, so every line fits the site's
code blocks (see ``tests/test_docs_code.py``); options with long lists of choices name them in
their help behind a metavar (``--preset NAME``), in the parser itself.
"""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

MARKER = "<!-- emorl-cli -->"
#: Help text wraps at this width (the site's code blocks show 80 columns at 1280 px).
WIDTH = 80


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


def _help(parser: argparse.ArgumentParser) -> str:
    parser.formatter_class = _formatter
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
