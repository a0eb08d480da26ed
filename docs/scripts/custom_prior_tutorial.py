"""Run the custom-prior tutorial (``docs/tutorials/custom_priors.md``) at full size and fill in
its results.

Run from the repository root::

    python docs/scripts/custom_prior_tutorial.py --threads 1

It executes every ```python block of the page in order, in one namespace, in a fresh working
directory (as a reader does, and as ``tests/test_docs_code.py`` does in smoke mode), then runs
the page's ``emorl evaluate`` command on the fine-tuned checkpoint, with and without
``--import my_prior.py``. It copies the decomposition figures the page drew into
``docs/figures/custom_prior_*.png``, writes every number, the timings and the machine to
``docs/figures/custom_prior_tutorial.json``, and rewrites the page's marked regions
(``<!-- custom_prior:NAME:begin -->`` ... ``end``) from that JSON.

``--smoke`` runs the page at its docs-test size (seconds) into a temporary directory and leaves
the page and the figures alone: a check of this script.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "tutorials" / "custom_priors.md"
OUT = ROOT / "docs" / "figures"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
REGION = "<!-- custom_prior:{name}:{end} -->"


def cpu_model() -> str:
    """The processor's name as ``/proc/cpuinfo`` gives it (else the platform's)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Tee(io.TextIOBase):
    """Writes to stderr and keeps a copy (what a block prints, as a reader sees it)."""

    def __init__(self) -> None:
        self.copy = io.StringIO()

    def write(self, text: str) -> int:
        sys.__stderr__.write(text)
        return self.copy.write(text)

    def flush(self) -> None:
        sys.__stderr__.flush()


def run_page(
    page: Path, workdir: Path
) -> tuple[dict[str, Any], list[str], list[float], float, float]:
    """Execute the page's python blocks in ``workdir``; the namespace, what each block printed
    (stdout and stderr), the seconds of each block, the wall-clock and the CPU seconds of them
    all."""
    blocks = BLOCK.findall(page.read_text())
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    outputs, seconds = [], []
    previous = Path.cwd()
    os.chdir(workdir)
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        for number, code in enumerate(blocks, 1):
            began = time.perf_counter()
            tee = Tee()  # stdout is kept for the JSON alone
            with contextlib.redirect_stdout(tee), contextlib.redirect_stderr(tee):
                exec(compile(code, f"{page.name}[block {number}]", "exec"), namespace)
            outputs.append(tee.copy.getvalue())
            seconds.append(time.perf_counter() - began)
            print(f"block {number}: {seconds[-1]:.1f} s", file=sys.stderr)
    finally:
        os.chdir(previous)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return namespace, outputs, seconds, wall, cpu


def emorl(argv: list[str], workdir: Path, threads: int | None) -> dict[str, Any]:
    """Run ``emorl ARGV`` in ``workdir`` as a reader does; its output and seconds."""
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pyro_emorl.cli", *argv],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    shown = [shown_path(Path(a), workdir) if Path(a).is_absolute() else a for a in argv]
    return {
        "argv": shown,
        "returncode": done.returncode,
        "stdout": done.stdout.rstrip("\n"),
        "stderr": done.stderr.rstrip("\n"),
        "seconds": round(time.perf_counter() - began, 1),
    }


def shown_path(path: Path, workdir: Path) -> str:
    """``path`` as the page shows it: relative to the working directory, or with ``~``."""
    path = (workdir / path).resolve()  # a relative path is the page's, in workdir
    for base, prefix in ((workdir.resolve(), ""), (Path.home().resolve(), "~/")):
        if path.is_relative_to(base):
            return prefix + str(path.relative_to(base))
    return str(path)


def collect(namespace: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """The page's numbers from its namespace."""
    results = namespace["results"]
    return {
        "rows": {
            label: {k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}
            for label, row in namespace["rows"].items()
        },
        "nu": {"start": namespace["mine"].prior_options["df"], "end": round(namespace["nu"], 4)},
        "budget_s": namespace["BUDGET_S"],
        "lr": namespace["default"].training.lr,
        "num_train": namespace["NUM_TRAIN"],
        "eval_images": namespace["EVAL_IMAGES"],
        "checkpoints": {
            name: shown_path(result.checkpoint, workdir) for name, result in results.items()
        },
        "data": shown_path(namespace["data"].path, workdir),
    }


def render(results: dict[str, Any]) -> dict[str, str]:
    """The Markdown of each marked region of the page, from the results JSON alone."""
    env = results["environment"]
    threads = f"{env['threads']} torch thread" + ("" if env["threads"] == 1 else "s")
    minutes = (env["page_seconds"] + env["cli_seconds"]) / 60
    budget = results["budget_s"]
    cost = (
        f"**Cost: about {minutes:.0f} minutes on a laptop-class CPU**, two fine-tuning runs of "
        f"{budget:.0f} s each included. Measured: {env['page_seconds'] / 60:.1f} minutes for "
        f"the Python blocks and {env['cli_seconds']:.0f} s for the two `emorl evaluate` "
        f"commands, on an {env['cpu']} with {threads}, torch {env['torch']} (with one "
        "thread or other work on the cores it takes longer). The docs tests run the page in "
        "seconds with `PYRO_EMORL_SMOKE=1` (a few images, two steps). The numbers and figures "
        f"below come from `{results['command']}`, which runs this page's code and fills them "
        "in."
    )
    header = "| prior | fine-tuning steps | FG-ARI | MSE | KL (nats) |"
    lines = [header, "|---|---:|---:|---:|---:|"]
    for label, row in results["rows"].items():
        steps = f"{row['steps']:,}" if "steps" in row else "0"
        name, _, how = label.partition(", ")
        name = {"shipped": "reversed++ (shipped)", "default": "reversed++"}.get(name, name)
        lines.append(
            f"| {name}, {how} | {steps} | {row['fg_ari']:.3f} ± {row['fg_ari_std']:.3f} | "
            f"{row['mse']:.5f} | {row['kl']:.1f} |"
        )
    images = results["eval_images"]
    standard_error = max(row["fg_ari_std"] for row in results["rows"].values()) / images**0.5
    nu, steps = results["nu"], results["rows"]["student_t, fine-tuned"]["steps"]
    moved = "rose" if nu["end"] > nu["start"] else "fell"
    bound = nu["start"] * math.exp(results["lr"] * steps)
    table = "\n".join(lines) + (
        f"\n\nHeld-out: the first {images} test scenes, I = 1, mean ± standard deviation over "
        f"scenes (the standard error of a mean FG-ARI is about {standard_error:.3f}). Each run "
        f"had {budget:.0f} s of training steps of 8 images. `ν` {moved} from {nu['start']:.1f} "
        f"to {nu['end']:.3f}: Adam moves `log ν` by about its learning rate "
        f"({results['lr']:g}) per step at most, so {steps} steps could take it no further than "
        f"{bound:.2f}; a parameter meant to travel further in a short run needs a learning rate "
        "of its own or a rescaled parametrisation."
    )
    runs = results["cli"]
    good, refused = runs["with_import"], runs["without_import"]
    checkpoint = results["checkpoints"]["student_t"]
    cli = (
        "```bash\n"
        f"emorl evaluate --import my_prior.py \\\n    {checkpoint} \\\n"
        f"    --data {results['data']}\n"
        "```\n\n"
        "```text\n" + good["stdout"] + "\n```\n\n"
        f"({good['seconds']:.0f} s.) The step in the checkpoint's name is the one your run's "
        "budget ended at (`results['student_t'].checkpoint`), the data file is `data.path`. "
        "The scenes are the table's; the numbers differ a little from its last row because "
        "the command draws other sampling noise (it evaluates in batches of 8). Without "
        "`--import`, the checkpoint is refused in one line (wrapped here), before anything is "
        "loaded:\n\n"
        "```text\n" + wrap(refused["stderr"]) + "\n```"
    )
    return {"cost": cost, "table": table, "cli": cli}


def fill(text: str, sections: dict[str, str], outputs: list[str] | None = None) -> str:
    """``text`` with each marked region replaced; an ``output`` region (there may be several)
    gets what the python block just above it printed, as a text block."""
    for name, body in sections.items():
        begin, end = REGION.format(name=name, end="begin"), REGION.format(name=name, end="end")
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
        if not pattern.search(text):
            raise ValueError(f"the page has no {begin} ... {end} region")
        filled = f"{begin}\n{body}\n{end}"
        text = pattern.sub(lambda _, filled=filled: filled, text, count=1)
    if outputs is None:
        return text
    begin, end = REGION.format(name="output", end="begin"), REGION.format(name="output", end="end")
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)

    def output(match: re.Match[str]) -> str:
        block = len(BLOCK.findall(text[: match.start()]))  # the python blocks above
        printed = wrap(outputs[block - 1].rstrip("\n"))
        return f"{begin}\n```text\n{printed}\n```\n{end}"

    return pattern.sub(output, text)


def wrap(text: str, width: int = 80) -> str:
    """Lines longer than a code block of the site (80 columns) wrapped, words kept whole, the
    continuation lines indented."""
    import textwrap

    lines = []
    for line in text.splitlines():
        lines += textwrap.wrap(
            line, width=width, subsequent_indent="    ", break_on_hyphens=False
        ) or [""]
    return "\n".join(lines)


def command(words: list[str]) -> str:
    """The command line as the page shows it (without ``--workdir``, which changes nothing)."""
    shown, skip = [], False
    for word in words:
        if skip or word == "--workdir" or word.startswith("--workdir="):
            skip = word == "--workdir"
            continue
        shown.append(word)
    return " ".join(["python docs/scripts/custom_prior_tutorial.py", *shown])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, help="torch threads (default torch's)")
    parser.add_argument("--workdir", type=Path, help="working directory (default: temporary)")
    parser.add_argument("--out", type=Path, default=OUT, help="figures and JSON directory")
    parser.add_argument("--page", type=Path, default=PAGE, help="the page to run and fill in")
    parser.add_argument("--no-page", action="store_true", help="leave the page alone")
    parser.add_argument("--smoke", action="store_true", help="docs-test size; writes nothing")
    parser.add_argument(
        "--from-json",
        action="store_true",
        help="only fill the page in from OUT/custom_prior_tutorial.json (runs nothing)",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        results = json.loads((args.out / "custom_prior_tutorial.json").read_text())
        page = fill(args.page.read_text(), render(results), results.get("outputs"))
        args.page.write_text(page)
        return 0

    if args.smoke:
        os.environ["PYRO_EMORL_SMOKE"] = "1"
    else:
        os.environ.pop("PYRO_EMORL_SMOKE", None)
    if args.threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    # Everything the page imports, up front: a library file edited while the page runs (it
    # takes minutes) cannot then break it halfway.
    import pyro_emorl.cli  # noqa: F401
    import pyro_emorl.train.heldout  # noqa: F401
    import pyro_emorl.viz  # noqa: F401

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="custom_prior_"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"working in {workdir}", file=sys.stderr)

    namespace, outputs, seconds, wall, cpu = run_page(args.page, workdir)
    results = collect(namespace, workdir)
    checkpoint = results["checkpoints"]["student_t"]
    data = str(namespace["data"].path)
    evaluate = ["evaluate", checkpoint, "--data", data, "--no-progress"]
    results["cli"] = {
        "with_import": emorl(
            [*evaluate[:1], "--import", "my_prior.py", *evaluate[1:]], workdir, args.threads
        ),
        "without_import": emorl(evaluate, workdir, args.threads),
    }
    for run in results["cli"].values():
        print(f"emorl {' '.join(run['argv'])}: {run['returncode']}", file=sys.stderr)
    if results["cli"]["with_import"]["returncode"] != 0:
        raise SystemExit(results["cli"]["with_import"]["stderr"])
    if results["cli"]["without_import"]["returncode"] != 2:
        raise SystemExit("emorl evaluate without --import was not refused")
    results["environment"] = {
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "page_seconds": round(wall, 1),
        "page_cpu_seconds": round(cpu, 1),
        "block_seconds": [round(s, 1) for s in seconds],
        "cli_seconds": round(sum(r["seconds"] for r in results["cli"].values()), 1),
    }
    results["outputs"] = outputs
    results["command"] = command(sys.argv[1:] if argv is None else argv)
    print(json.dumps(results, indent=2))
    if args.smoke:
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    for png in sorted((workdir / "figures").glob("custom_prior_*.png")):
        shutil.copyfile(png, args.out / png.name)
        print(f"{args.out / png.name} ({png.stat().st_size / 1024:.0f} KB)", file=sys.stderr)
    (args.out / "custom_prior_tutorial.json").write_text(
        json.dumps(results, indent=2, ensure_ascii=False) + "\n"
    )
    if not args.no_page:
        args.page.write_text(fill(args.page.read_text(), render(results), outputs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
