"""Checks of the built documentation site (run by CI after ``mkdocs build``).

    python docs/scripts/check_site.py SITE_DIR

Fails (exit status 1, one line per problem) when a page shows a raw Sphinx role (``:func:`` and
the like: mkdocstrings does not render them), loads a script or stylesheet from another host (the
site must work offline), when an API page misses a name of its package's ``__all__``, or when the
command-line page misses the help of a sub-command of ``emorl``.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path

ROLE = re.compile(r":(?:func|class|mod|meth|data|attr|obj):`")
#: A script or stylesheet from another host.
EXTERNAL = re.compile(
    r"<script[^>]*\ssrc=\"(?:https?:)?//[^\"]*\"|<link[^>]*rel=\"stylesheet\"[^>]*href=\"(?:https?:)?//[^\"]*\""
)
#: API page of each package whose ``__all__`` must be documented there.
API_PAGES = {
    "pyro_emorl": "api/core/index.html",
    "pyro_emorl.infer": "api/infer/index.html",
    "pyro_emorl.nn": "api/nn/index.html",
    "pyro_emorl.metrics": "api/metrics/index.html",
    "pyro_emorl.evaluation": "api/evaluation/index.html",
    "pyro_emorl.viz": "api/viz/index.html",
    "pyro_emorl.data": "api/data/index.html",
    "pyro_emorl.train": "api/train/index.html",
    "pyro_emorl.pretrained": "api/core/index.html",
    "pyro_emorl.models": "api/models/index.html",
    "pyro_emorl.io": "api/io/index.html",
}


def problems(site: Path) -> list[str]:
    found = []
    for page in sorted(site.rglob("*.html")):
        html = page.read_text(encoding="utf-8")
        name = page.relative_to(site)
        if ROLE.search(html):
            found.append(f"{name}: raw Sphinx role {ROLE.search(html).group(0)!r}")
        for tag in EXTERNAL.findall(html):
            found.append(f"{name}: loads from another host: {tag[:100]}")
    every_api_page = "".join(p.read_text(encoding="utf-8") for p in (site / "api").rglob("*.html"))
    for package, page in API_PAGES.items():
        # The top-level package re-exports names whose home is a subpackage's page.
        html = every_api_page if package == "pyro_emorl" else (site / page).read_text("utf-8")
        module = importlib.import_module(package)
        for public in module.__all__:
            if inspect.ismodule(getattr(module, public)) or public.startswith("__"):
                continue  # a subpackage has a page of its own
            anchor = rf"id=\"pyro_emorl\.(?:[\w.]+\.)?{re.escape(public)}\""
            if not re.search(anchor, html):
                found.append(f"{page}: {package}.{public} is not documented")
    cli_page = (site / "cli/index.html").read_text(encoding="utf-8")
    for command in _emorl_commands():
        if f"usage: emorl {command} " not in cli_page:
            found.append(f"cli/index.html: the help of `emorl {command}` is missing")
    return found


def _emorl_commands() -> list[str]:
    import argparse

    from pyro_emorl.cli import build_parser

    (commands,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(commands.choices)


def main() -> int:
    site = Path(sys.argv[1])
    found = problems(site)
    for line in found:
        print(line)
    print(f"{len(found)} problems in {site}")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
