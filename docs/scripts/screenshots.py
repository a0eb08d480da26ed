"""Full-page screenshots of the built documentation site, to look at how pages render.

Run from the repository root, after ``mkdocs build``::

    mkdocs build --strict --site-dir /tmp/site
    python docs/scripts/screenshots.py /tmp/site /tmp/shots
    python docs/scripts/screenshots.py /tmp/site /tmp/shots results/ tutorials/geco/

The site is served on a free localhost port, each page is opened in headless Chromium
(``/usr/bin/chromium``; Debian: ``apt-get install chromium``) at 1280 px width, MathJax is given
time to typeset, and the whole page is written to ``OUT/<page>.png`` (``results/`` becomes
``results.png``, ``tutorials/geco/`` ``tutorials_geco.png``). Chromium is driven over its
DevTools pipe (``--remote-debugging-pipe``), so nothing beyond the standard library is needed.

Each page is also checked, since hidden scrollbars do not show in a screenshot: a warning line
names equations MathJax left as raw TeX, images that did not load, code blocks and tables
wider than their column (they scroll sideways), and requests to other hosts: the browser
resolves no host but localhost, so the shots show the site as it works offline. ``--all``
shoots every page of the site; the exit status is 1 when a page has a warning.

This is a tool for people reviewing the site; CI does not run it (CI has no browser).
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

#: The pages shot when none are named: the Results page, tutorials with equations and figures,
#: and an API reference page.
PAGES = [
    "results/",
    "tutorials/pyro_programs/",
    "tutorials/geco/",
    "tutorials/custom_priors/",
    "api/metrics/",
]
CHROMIUM = "/usr/bin/chromium"
WIDTH = 1280
#: The tallest window (Chromium refuses much larger ones); a taller page is still captured whole.
MAX_HEIGHT = 16_000
#: What the page shows wrongly, as a list of strings (run in the page after MathJax).
CHECKS = """(() => {
  const found = [];
  const text = (e) => e.textContent.trim().replace(/\\s+/g, " ").slice(0, 60);
  for (const e of document.querySelectorAll(".arithmatex"))
    if (!e.querySelector("mjx-container")) found.push("raw TeX: " + text(e));
  for (const e of document.querySelectorAll("article img"))
    if (!e.complete || e.naturalWidth === 0) found.push("image not loaded: " + e.src);
  // mkdocs-material wraps a table in a sideways-scrolling .md-typeset__scrollwrap
  const wide = "article pre > code, article .md-typeset__scrollwrap, article table";
  for (const e of document.querySelectorAll(wide))
    if (e.scrollWidth > e.clientWidth + 1)
      found.push(`${e.tagName === "CODE" ? "code block" : "table"} scrolls ` +
                 `(${e.scrollWidth} > ${e.clientWidth} px): ${text(e)}`);
  return found;
})()"""


class _Browser:
    """A headless Chromium controlled over the DevTools protocol on a pipe (fds 3 and 4)."""

    def __init__(self, executable: str, timeout: float) -> None:
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="screenshots-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        arguments = [
            executable,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-extensions",
            "--remote-debugging-pipe",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # offline
            f"--user-data-dir={self._profile.name}",
            f"--window-size={WIDTH},900",
            "about:blank",
        ]

        def child_pipes() -> None:  # Chromium reads fd 3 and writes fd 4
            reads, writes = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(reads, 3)
            os.dup2(writes, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self._process = subprocess.Popen(
            arguments,
            preexec_fn=child_pipes,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        #: The URLs the page requested since the last navigation.
        self.requests: list[str] = []
        self._session: str | None = None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        attached = self.call("Target.attachToTarget", targetId=target, flatten=True)
        self._session = attached["sessionId"]
        self.call("Page.enable")
        self.call("Network.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command (to the page once attached) and return its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self._session is not None and not method.startswith("Target."):
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def wait_for_event(self, method: str) -> None:
        """Read messages until the page sends the event ``method``."""
        while self._read().get("method") != method:
            pass

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._from_browser], [], [], remaining)[0]:
                raise TimeoutError(f"Chromium did not answer within {self.timeout} s")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        reply = json.loads(message)
        if reply.get("method") == "Network.requestWillBeSent":
            self.requests.append(reply["params"]["request"]["url"])
        return reply

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        return result["result"].get("value")

    def screenshot(self, url: str, path: Path) -> tuple[int, list[str]]:
        """Open ``url``, wait for it and MathJax, write the whole page to ``path``; its height
        and what the page shows wrongly (see `CHECKS`)."""
        self.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=900,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        self.requests = []
        self.call("Page.navigate", url=url)
        self.wait_for_event("Page.loadEventFired")
        self.evaluate(
            "(async () => { if (window.MathJax && MathJax.startup) "
            "await MathJax.startup.promise; await document.fonts.ready; })()"
        )
        warnings = self.evaluate(CHECKS)
        local = url.split("/", 3)[:3]
        for request in self.requests:
            if request.split("/", 3)[:3] != local and not request.startswith("data:"):
                warnings.append(f"request to another host: {request}")
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        height = min(height, MAX_HEIGHT)
        self.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=height,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        time.sleep(0.5)  # let the page lay out at its full height
        shot = self.call(
            "Page.captureScreenshot", format="png", captureBeyondViewport=True, fromSurface=True
        )
        png = base64.b64decode(shot["data"])
        path.write_bytes(png)
        return struct.unpack(">I", png[20:24])[0], warnings  # the height in the PNG header

    def close(self) -> None:
        """Quit Chromium and remove its profile."""
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        self._profile.cleanup()


def _serve(site: Path) -> http.server.ThreadingHTTPServer:
    """Serve ``site`` on a free localhost port, in a background thread."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def site_pages(site: Path) -> list[str]:
    """Every page of the built site ``site``, as paths relative to it (``results/``)."""
    pages = []
    for index in sorted(site.rglob("index.html")):
        folder = index.parent.relative_to(site).as_posix()
        pages.append("" if folder == "." else f"{folder}/")
    return pages


def shoot(
    site: Path, out: Path, pages: list[str], chromium: str = CHROMIUM, timeout: float = 60.0
) -> dict[Path, list[str]]:
    """Write a full-page PNG of each of ``pages`` (paths relative to the site) of the built
    site ``site`` into ``out``; each PNG's path with the warnings of its page."""
    executable = shutil.which(chromium)
    if executable is None:
        raise FileNotFoundError(
            f"{chromium} not found: install Chromium (Debian: apt-get install chromium)"
        )
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"{site}/index.html not found: run mkdocs build first")
    out.mkdir(parents=True, exist_ok=True)
    browser = _Browser(executable, timeout)  # before the server's thread: Chromium is forked
    server = _serve(site)
    port = server.server_address[1]
    written = {}
    try:
        for page in pages:
            name = page.strip("/").replace("/", "_") or "index"
            path = out / f"{name}.png"
            url = f"http://127.0.0.1:{port}/{page.lstrip('/')}"
            height, warnings = browser.screenshot(url, path)
            print(f"{path} ({WIDTH} x {height})")
            for warning in warnings:
                print(f"  warning: {warning}")
            written[path] = warnings
    finally:
        browser.close()
        server.shutdown()
    return written


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the built site (mkdocs build --site-dir)")
    parser.add_argument("out", type=Path, help="folder for the PNGs")
    parser.add_argument("pages", nargs="*", default=PAGES, help="pages, e.g. results/")
    parser.add_argument("--all", action="store_true", help="every page of the site")
    parser.add_argument("--chromium", default=CHROMIUM, help="the browser (default %(default)s)")
    arguments = parser.parse_args(argv)
    pages = site_pages(arguments.site) if arguments.all else arguments.pages
    try:
        written = shoot(arguments.site, arguments.out, pages, arguments.chromium)
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 1
    warned = sum(1 for warnings in written.values() if warnings)
    print(f"{len(written)} pages, {warned} with warnings")
    return 1 if warned else 0


if __name__ == "__main__":
    sys.exit(main())
