"""Every ```python block of the README and of the docs runs (blocks of one page share a namespace).

Tutorials that train read ``PYRO_EMORL_SMOKE`` (set here) to use tiny sizes. Every line of every
fenced code block fits the site's code column (80 characters).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_python_blocks_run(page, tmp_path, monkeypatch):
    blocks = BLOCK.findall(page.read_text())
    if not blocks:
        pytest.skip("no python blocks")
    monkeypatch.setenv("PYRO_EMORL_SMOKE", "1")
    monkeypatch.setenv("PYRO_EMORL_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for number, code in enumerate(blocks, 1):
        try:
            exec(compile(code, f"{page.name}[block {number}]", "exec"), namespace)
        except Exception as error:  # name the failing block
            raise AssertionError(f"{page.name}, python block {number} failed: {error!r}") from error


#: The widest line a code block of the site shows without scrolling.
CODE_WIDTH = 80


def _rendered(page: Path) -> str:
    """The page's Markdown as the site gets it (the CLI reference filled in by its hook)."""
    import runpy

    text = page.read_text()
    hook = runpy.run_path(str(ROOT / "docs" / "hooks" / "cli_reference.py"))
    return hook["on_page_markdown"](text, page=None)


def test_code_lines_fit_the_page() -> None:
    """No line of a fenced code block is longer than 80 characters: in a 1280 px window
    mkdocs-material's content column is about 688 px (61rem grid at 20 px, less two 12.1rem
    sidebars and two 1.2rem margins), and at 0.85 x 16 px with a 0.6 em advance (8.16 px per
    character) and 16 px of padding each side that holds 80 characters before it scrolls."""
    offenders = []
    for page in PAGES:
        inside = False
        for number, line in enumerate(_rendered(page).splitlines(), 1):
            if line.strip().startswith("```"):
                inside = not inside
            elif inside and len(line) > CODE_WIDTH:
                offenders.append(f"{page.relative_to(ROOT)}:{number} ({len(line)} characters)")
    assert not offenders, f"code lines over {CODE_WIDTH} characters:\n" + "\n".join(offenders)


def _make_figures() -> dict:
    import runpy

    return runpy.run_path(str(ROOT / "docs" / "scripts" / "make_figures.py"))


def test_results_page_matches_its_json_and_the_shipped_model() -> None:
    """docs/results.md shows what `make_figures.py results` computed, for the model that ships
    (after replacing the model, rerun `python docs/scripts/make_figures.py results`)."""
    import json

    import torch

    from pyro_emorl.pretrained import pretrained_path

    script = _make_figures()
    results = json.loads((ROOT / "docs" / "figures" / "results_tetrominoes.json").read_text())
    page = (ROOT / "docs" / "results.md").read_text()
    assert script["page_regions"](page) == script["render_sections"](results)
    for name in re.findall(r"\]\(figures/([\w.-]+)\)", page):
        assert (ROOT / "docs" / "figures" / name).is_file(), name
    checkpoint = torch.load(pretrained_path("tetrominoes"), map_location="cpu", weights_only=True)
    assert results["model"]["step"] == checkpoint["step"], "results of another model: rerun"
    assert results["model"]["train_minutes"] == script["_round"](
        checkpoint["train_seconds"] / 60, 4
    )
    for png in (ROOT / "docs" / "figures").glob("*.png"):
        assert png.stat().st_size < 200_000, png


def test_results_script_runs_small(tmp_path) -> None:
    """`make_figures.py results` end to end on a handful of images (the page into a copy)."""
    import json

    import torch

    page = tmp_path / "results.md"
    page.write_text((ROOT / "docs" / "results.md").read_text())
    threads = torch.get_num_threads()
    try:
        argv = ["results", "--images", "4", "--sweep-images", "2", "--threads", "1"]
        assert _make_figures()["main"]([*argv, "--out", str(tmp_path), "--page", str(page)]) == 0
    finally:
        torch.set_num_threads(threads)
    results = json.loads((tmp_path / "results_tetrominoes.json").read_text())
    assert results["table"]["generated"]["fg_ari"]["count"] == 4
    assert results["table"]["real"]["fg_ari"]["count"] == 10
    assert [r["num_steps"] for r in results["sweep_steps"]["rows"]] == [0, 1, 2, 3, 4, 5, 6]
    assert "| generated Tetrominoes, this model | 4 |" in page.read_text()
    pngs = sorted(tmp_path.glob("results_*.png"))
    assert len(pngs) == 9
    for png in pngs:
        assert png.stat().st_size < 200_000, png
