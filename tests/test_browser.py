"""The built website, opened in a real browser: headless Chromium driven over the DevTools protocol.

tools/check_site.py reads the HTML files; this test loads the pages the way a reader does, from a
local HTTP server, and checks what only a browser can tell:

* MathJax typeset every formula (each Sphinx math element holds rendered MathJax output, no
  MathJax error nodes, no raw `$$` left in the text);
* every image loaded (naturalWidth > 0), and every notebook page shows at least one figure;
* no request left localhost (every request the page made, as the browser's network log saw it),
  and no local request failed;
* no uncaught JavaScript exception.

It also saves a screenshot of each page under _build/screenshots/ for a person to look at.

Run it after the site is built (CI does, after `make book-stored`):

    .venv/bin/python -m pytest -q tests/test_browser.py

It is skipped, with the reason, when no Chromium is installed or no site has been built, so that
`make test`, which runs before the site exists, is not affected. Settings (environment variables):
BERTLAB_SITE (default _build/html), BERTLAB_CHROMIUM (the browser binary; default: the first of
chromium, chromium-browser, google-chrome on PATH), BERTLAB_SCREENSHOTS (default _build/screenshots).

The browser is driven through Chromium's --remote-debugging-pipe (JSON messages over two file
descriptors), so the test needs neither chromedriver nor any package beyond the standard library.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import http.server
import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a real browser on every page of the built site

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("BERTLAB_SITE", ROOT / "_build" / "html"))
SCREENSHOTS = Path(os.environ.get("BERTLAB_SCREENSHOTS", ROOT / "_build" / "screenshots"))
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
]
# Uncaught exceptions that are known, harmless and not ours. Every page of the Jupyter Book 1 build
# carries sphinx-thebe's configuration <script> (`const THEBE_JS_URL = ...`) twice, and the second
# copy fails to redeclare the constant. Thebe (live code cells) is switched off in _config.yml, so
# nothing reads it. Any other exception fails the test.
KNOWN_EXCEPTIONS = ("Identifier 'THEBE_JS_URL' has already been declared",)
PAGE_TIMEOUT = 60.0  # seconds for one page to load, typeset and report
MAX_SCREENSHOT_HEIGHT = 12_000  # CSS pixels; longer pages are cut (the top is what a reader sees first)


def find_browser() -> str | None:
    explicit = os.environ.get("BERTLAB_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() or shutil.which(explicit) else None
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


def root_page() -> str:
    """The site path of _toc.yml's root page, where index.html redirects."""
    match = re.search(r"^root\s*:\s*['\"]?([^'\"#\s]+)", (ROOT / "_toc.yml").read_text("utf-8"), re.M)
    return re.sub(r"\.(md|ipynb)$", "", match.group(1) if match else "index") + ".html"


def pages() -> list[str]:
    """The landing page, the references page, and every notebook page: those _toc.yml lists and
    those the built site holds."""
    toc = (ROOT / "_toc.yml").read_text("utf-8")
    entries = re.findall(r"^\s*(?:-\s*)?(?:root|file)\s*:\s*['\"]?([^'\"#\s]+)", toc, re.M)
    entries = [re.sub(r"\.(md|ipynb)$", "", e) for e in entries]
    notebooks = {f"{e}.html" for e in entries if (ROOT / f"{e}.ipynb").is_file()}
    notebooks |= {p.relative_to(SITE).as_posix() for p in SITE.glob("notebooks/*.html")}
    return ["index.html", "book/references.html", *sorted(notebooks)]


# --- a minimal DevTools-protocol client over --remote-debugging-pipe ---------------------------


class DevToolsError(RuntimeError):
    pass


class Chromium:
    """Chromium reads JSON commands, each ended by a NUL byte, from fd 3 and writes replies and
    events the same way to fd 4. Commands for a tab carry that tab's `sessionId`."""

    def __init__(self, binary: str, profile: Path):
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        # The browser's ends, copied to numbers of 10 or more so that moving them onto 3 and 4
        # cannot overwrite one another; bash places them there and then becomes the browser (dash,
        # Debian's /bin/sh, cannot name descriptors above 9).
        child_in = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)
        for fd in (to_browser_r, from_browser_w):
            os.close(fd)
        launch = f'exec "$0" "$@" 3<&{child_in} 4>&{child_out}'

        self.log = profile / "chromium.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [shutil.which("bash") or "/bin/bash", "-c", launch, binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(child_in, child_out),
            )
        os.close(child_in)
        os.close(child_out)
        self._out = os.fdopen(to_browser_w, "wb", buffering=0)
        self._in = os.fdopen(from_browser_r, "rb", buffering=0)
        self._next_id = 0
        self._lock = threading.Lock()
        self._replies: dict[int, queue.Queue] = {}
        self.events: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = self._in.read(1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                self.events.put(None)  # the browser went away
                for q in list(self._replies.values()):
                    q.put({"error": {"message": "the browser closed the connection"}})
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" in message:
                    q = self._replies.get(message["id"])
                    if q is not None:
                        q.put(message)
                else:
                    self.events.put(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30.0):
        with self._lock:
            self._next_id += 1
            msg_id = self._next_id
            self._replies[msg_id] = q = queue.Queue()
        message = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._out.write(json.dumps(message).encode() + b"\0")
        try:
            reply = q.get(timeout=timeout)
        except queue.Empty:
            raise DevToolsError(f"{method}: no reply within {timeout:.0f} s") from None
        finally:
            self._replies.pop(msg_id, None)
        if "error" in reply:
            raise DevToolsError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except DevToolsError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self._out, self._in):
            try:
                f.close()
            except OSError:
                pass


# --- fixtures ----------------------------------------------------------------------------------


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def server():
    if not (SITE / "index.html").is_file():
        pytest.skip(f"no built site at {SITE} (run `make book-stored` or `make book` first)")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(SITE)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser(server, tmp_path_factory):
    binary = find_browser()
    if binary is None:
        pytest.skip("Chromium not found: install the Debian package `chromium` (or set BERTLAB_CHROMIUM)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    chromium = Chromium(binary, profile)
    try:
        chromium.send("Browser.getVersion", timeout=60)
    except DevToolsError as err:
        chromium.close()
        log = chromium.log.read_text("utf-8", errors="replace")[-2000:]
        pytest.fail(f"Chromium ({binary}) did not start: {err}\n{log}")
    yield chromium
    chromium.close()


# --- one page ----------------------------------------------------------------------------------

# Runs in the page once it has loaded: waits for MathJax's first typeset and for every image, then
# reports what it finds as a JSON string.
INSPECT = r"""
(async () => {
  const deadline = Date.now() + %(timeout_ms)d;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  document.querySelectorAll('img[loading="lazy"]').forEach((img) => { img.loading = "eager"; });
  const mathNodes = [...document.querySelectorAll(".math")];
  if (mathNodes.length) {
    while (!(window.MathJax && MathJax.startup && MathJax.startup.promise) && Date.now() < deadline) await sleep(50);
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  }
  await Promise.all([...document.images].map((img) => img.complete ? null :
    new Promise((r) => { img.addEventListener("load", r); img.addEventListener("error", r); })));
  // The page's text outside code blocks and outside rendered math: raw TeX would show up here.
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode: (n) => n.parentElement.closest("pre, code, script, style, mjx-container, .highlight")
      ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT });
  let text = "";
  while (walker.nextNode()) text += walker.currentNode.nodeValue;
  return JSON.stringify({
    href: location.href,
    title: document.title,
    mathjax: !!(window.MathJax && MathJax.version),
    mathjaxVersion: window.MathJax && MathJax.version || null,
    mathNodes: mathNodes.length,
    untypeset: mathNodes.filter((n) => !n.querySelector("mjx-container")).map((n) => n.textContent.slice(0, 80)),
    mjxContainers: document.querySelectorAll("mjx-container").length,
    mjxErrors: [...document.querySelectorAll("mjx-merror")].map((n) => n.textContent.slice(0, 80)),
    rawDisplayMath: text.includes("$$"),
    images: [...document.images].map((img) => ({src: img.currentSrc || img.src, width: img.naturalWidth})),
    outputFigures: document.querySelectorAll(".cell_output img, .output img").length,
    // Cells tagged `diagram` (MyST-NB gives each cell container the class tag_<tag>): their pictures.
    diagrams: [...document.querySelectorAll(".cell.tag_diagram")].map((d) =>
      [...d.querySelectorAll("img")].map((img) => img.naturalWidth)),
    bibliography: document.querySelectorAll('[role="doc-biblioentry"]').length,
    height: Math.ceil(document.documentElement.scrollHeight),
  });
})()
"""


def open_page(browser: Chromium, url: str, shot: Path, final_path: str) -> dict:
    """Load `url` in a fresh tab and wait until the page at `final_path` (the same page, or where it
    redirects) has loaded completely; return the page report with its network log and exceptions."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    try:
        for domain in ("Page", "Network", "Runtime"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)
        requests, failures, exceptions = [], [], []
        urls: dict[str, str] = {}  # requestId -> URL
        browser.send("Page.navigate", {"url": url}, session=session)

        deadline = time.monotonic() + PAGE_TIMEOUT
        loaded = False
        while time.monotonic() < deadline:
            try:
                event = browser.events.get(timeout=0.2)
            except queue.Empty:
                event = {}
            if event is None:
                raise DevToolsError("the browser exited")
            if event.get("sessionId") == session:
                method, params = event["method"], event.get("params", {})
                if method == "Network.requestWillBeSent":
                    requests.append(params["request"]["url"])
                    urls[params["requestId"]] = params["request"]["url"]
                elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
                    failures.append(f"HTTP {params['response']['status']} {params['response']['url']}")
                elif method == "Network.loadingFailed" and not params.get("canceled"):
                    failures.append(f"{params.get('errorText')} {urls.get(params['requestId'], '?')}")
                elif method == "Runtime.exceptionThrown":
                    details = params["exceptionDetails"]
                    exceptions.append(details.get("exception", {}).get("description") or details.get("text"))
                elif method == "Page.loadEventFired":
                    loaded = True
            if loaded and event == {}:  # loaded, and the event stream has gone quiet for a moment
                state = browser.send("Runtime.evaluate", {"expression": "location.pathname + ' ' + document.readyState"},
                                     session=session)["result"].get("value", "")
                if state.endswith(f"{final_path} complete"):
                    break
                loaded = False  # the redirect is on its way or still loading: wait for the next load event
        else:
            raise DevToolsError(f"{url}: no load event within {PAGE_TIMEOUT:.0f} s")

        result = browser.send(
            "Runtime.evaluate",
            {"expression": INSPECT % {"timeout_ms": int(PAGE_TIMEOUT * 1000)}, "awaitPromise": True,
             "returnByValue": True},
            session=session, timeout=PAGE_TIMEOUT + 5,
        )
        if "exceptionDetails" in result:
            raise DevToolsError(f"{url}: inspecting the page failed: {result['exceptionDetails']}")
        report = json.loads(result["result"]["value"])
        # Requests made while the page was being inspected (MathJax fonts, late images).
        while True:
            try:
                event = browser.events.get_nowait()
            except queue.Empty:
                break
            if event and event.get("sessionId") == session and event["method"] == "Network.requestWillBeSent":
                requests.append(event["params"]["request"]["url"])

        height = min(report["height"], MAX_SCREENSHOT_HEIGHT)
        png = browser.send(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True,
             "clip": {"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1}},
            session=session, timeout=PAGE_TIMEOUT,
        )["data"]
        shot.parent.mkdir(parents=True, exist_ok=True)
        shot.write_bytes(base64.b64decode(png))
        report.update(requests=requests, failures=failures, exceptions=exceptions, screenshot=str(shot))
        return report
    finally:
        browser.send("Target.closeTarget", {"targetId": target})


def diagram_cells(page: str) -> int:
    """How many code cells of the notebook behind `page` are tagged `diagram` (conceptual pictures)."""
    nb = ROOT / (page[: -len(".html")] + ".ipynb")
    if not nb.is_file():
        return 0
    return sum(1 for c in json.loads(nb.read_text("utf-8"))["cells"]
               if "diagram" in c.get("metadata", {}).get("tags", []))


def page_problems(page: str, report: dict, base: str) -> list[str]:
    problems = []
    external = [u for u in report["requests"] if not u.startswith((base, "data:", "blob:", "about:"))]
    problems += [f"request left localhost: {u}" for u in external]
    problems += [f"failed request: {f}" for f in report["failures"] if "favicon.ico" not in f]
    problems += [f"JavaScript exception: {e}" for e in report["exceptions"]
                 if not any(known in (e or "") for known in KNOWN_EXCEPTIONS)]
    problems += [f"image did not load: {i['src']}" for i in report["images"] if i["width"] <= 0]
    if report["mathNodes"]:
        if not report["mathjax"]:
            problems.append(f"{report['mathNodes']} math elements but MathJax did not load")
        problems += [f"formula not typeset: {t!r}" for t in report["untypeset"]]
        problems += [f"MathJax error: {t!r}" for t in report["mjxErrors"]]
    if report["rawDisplayMath"]:
        problems.append("raw `$$` left in the page text (a formula MyST did not parse)")
    if page == "index.html" and not report["href"].endswith(root_page()):
        problems.append(f"the landing page did not arrive at {root_page()} (it is at {report['href']})")
    if page.startswith("notebooks/"):
        if not report["mathNodes"] or not report["mjxContainers"]:
            problems.append("notebook page has no typeset formula")
        if not report["outputFigures"]:
            problems.append("notebook page shows no output figure")
        expected = diagram_cells(page)
        if len(report["diagrams"]) != expected:
            problems.append(f"{expected} cells tagged diagram in the notebook, {len(report['diagrams'])} on the page")
        problems += [f"diagram {k} shows no loaded picture" for k, widths in enumerate(report["diagrams"])
                     if not widths or min(widths) <= 0]
    if page == "book/references.html" and not report["bibliography"]:
        problems.append("the bibliography lists no entries")
    return problems


@pytest.mark.parametrize("page", pages())
def test_page_renders_in_a_browser(page, server, browser):
    if not (SITE / page).is_file():  # e.g. a chapter added to _toc.yml since the site was built
        pytest.skip(f"{page} is not in the built site at {SITE} (tools/check_site.py reports missing pages)")
    final = root_page() if page == "index.html" else page  # index.html redirects to the root page
    name = "landing" if page == "index.html" else page[: -len(".html")].replace("/", "__")
    report = open_page(browser, server + page, SCREENSHOTS / f"{name}.png", final_path=final)
    problems = page_problems(page, report, server)
    summary = (f"{page}: {report['mathNodes']} formulas, {report['mjxContainers']} typeset, "
               f"{len(report['images'])} images, {len(report['requests'])} requests; "
               f"screenshot {report['screenshot']}")
    print(summary)
    assert not problems, summary + "\n  - " + "\n  - ".join(problems)
