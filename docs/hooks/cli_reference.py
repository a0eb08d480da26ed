"""MkDocs hook: the CLI reference page is generated from the ``emorl`` argument parser.

``docs/cli.md`` holds the prose; the ``<!-- emorl-cli -->`` marker is replaced at build time by
the help of every sub-command, exactly as ``emorl <command> --help`` prints it, so the page
cannot fall behind the code.
"""

from __future__ import annotations

import argparse
from typing import Any

MARKER = "<!-- emorl-cli -->"
#: Help text wraps at this width (the site's code blocks show about 100 columns).
WIDTH = 96


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(prog, width=WIDTH, max_help_position=32)


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
