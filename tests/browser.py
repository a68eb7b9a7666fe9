"""A headless Chromium driven over the DevTools protocol, for the browser tests of the report pages.

No browser is downloaded and no Python package is needed: the system's Chromium (Debian's
``chromium``) is started with ``--remote-debugging-pipe``, which speaks the DevTools protocol as
NUL-terminated JSON messages on file descriptors 3 (commands) and 4 (replies and events). Every wait
is bounded in time.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional
from urllib.parse import unquote, urlparse

CANDIDATES = ("chromium", "chromium-browser", "/usr/bin/chromium")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--mute-audio", "--disable-extensions", "--remote-debugging-pipe")


def find_chromium() -> Optional[str]:
    """The Chromium executable (``$CHROMIUM`` first, then ``chromium`` / ``chromium-browser`` on PATH,
    then ``/usr/bin/chromium``), or None."""
    env = os.environ.get("CHROMIUM")
    for name in ((env,) if env else ()) + CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserError(RuntimeError):
    """The browser did not answer in time, exited, or returned a protocol error."""


class Chromium:
    """One headless Chromium process; ``send`` runs a DevTools command and returns its result.

    Events that arrive while waiting are kept in :attr:`events` as ``(method, params, session id)``.
    """

    def __init__(self, executable: str, timeout: float = 30.0) -> None:
        self.timeout = float(timeout)
        self.profile = tempfile.mkdtemp(prefix="captum-lmac-chromium-")
        cmd_r, self._cmd_w = os.pipe()  # we write commands, the browser reads them on fd 3
        self._out_r, out_w = os.pipe()  # the browser writes on fd 4, we read

        def child_fds() -> None:  # runs in the child before exec: put the pipe ends on fds 3 and 4
            a = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(out_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self._log = open(Path(self.profile) / "stderr.log", "wb")
        self.proc = subprocess.Popen([executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
                                     preexec_fn=child_fds, pass_fds=(3, 4))
        os.close(cmd_r)
        os.close(out_w)
        self._buf = b""
        self._id = 0
        self.events: List[tuple] = []
        self.version = self.send("Browser.getVersion")

    # --- protocol ---------------------------------------------------------------------------------
    def _read(self, deadline: float) -> Dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no answer from Chromium within {self.timeout:.0f} s")
            ready, _, _ = select.select([self._out_r], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._out_r, 1 << 16)
            if not chunk:
                raise BrowserError(f"Chromium exited (status {self.proc.poll()}); see {self._log.name}")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: Optional[Dict[str, Any]] = None, session: Optional[str] = None,
             timeout: Optional[float] = None) -> Dict[str, Any]:
        """Run one DevTools command (on a page session if given) and return its result."""
        self._id += 1
        mid = self._id
        msg: Dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._cmd_w, data):]
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._read(deadline)
            if reply.get("id") == mid:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append((reply["method"], reply.get("params", {}), reply.get("sessionId")))

    def wait_event(self, method: str, session: Optional[str] = None, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Wait for an event (one already received counts) and return its parameters."""
        for m, p, s in self.events:
            if m == method and (session is None or s == session):
                return p
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._read(deadline)
            if "method" in reply:
                self.events.append((reply["method"], reply.get("params", {}), reply.get("sessionId")))
                if reply["method"] == method and (session is None or reply.get("sessionId") == session):
                    return reply.get("params", {})

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.send("Browser.close", timeout=5)
                except (BrowserError, OSError):
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        finally:
            for fd in (self._cmd_w, self._out_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._log.close()
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --- what a page shows ------------------------------------------------------------------------------

_INSPECT = r"""
(async () => {
  const wait = (el, names, ms) => new Promise(resolve => {
    let done = false;
    const finish = what => { if (!done) { done = true; resolve(what); } };
    for (const n of names) el.addEventListener(n, () => finish(n), {once: true});
    setTimeout(() => finish('timeout'), ms);
  });
  const images = [];
  for (const img of Array.from(document.images)) {
    img.scrollIntoView();
    if (!img.complete) await wait(img, ['load', 'error'], %(ms)d);
    images.push({src: img.getAttribute('src'), url: img.currentSrc || img.src, complete: img.complete,
                 width: img.naturalWidth, height: img.naturalHeight});
  }
  const audio = [];
  for (const a of Array.from(document.querySelectorAll('audio'))) {
    let outcome = 'ready';
    if (a.readyState < 4 && !a.error) {
      a.preload = 'auto';
      const done = wait(a, ['canplaythrough', 'error'], %(ms)d);
      a.load();
      outcome = await done;
    }
    audio.push({src: a.getAttribute('src'), url: a.currentSrc, duration: a.duration, readyState: a.readyState,
                error: a.error ? a.error.code : null, outcome: outcome});
  }
  const table = document.getElementById('summary-table');
  let methods = null;
  if (table) {
    methods = [];
    for (const tr of Array.from(table.rows)) {
      const c = tr.cells[0];
      if (c && c.tagName === 'TD') methods.push(c.textContent.replace('\u26a0', '').trim());  // a flagged row: 'lmac ⚠'
    }
  }
  return {images, audio, methods, title: document.title};
})()
"""


@dataclass
class PageReport:
    """What a page did in the browser."""

    url: str
    title: str
    images: List[Dict[str, Any]]
    audio: List[Dict[str, Any]]
    summary_methods: Optional[List[str]]
    errors: List[str] = field(default_factory=list)
    requests: List[str] = field(default_factory=list)


def url_path(url: str) -> Path:
    """The local path of a ``file://`` URL."""
    return Path(unquote(urlparse(url).path))


def _console_text(params: Dict[str, Any]) -> str:
    parts = []
    for a in params.get("args", []):
        parts.append(str(a.get("value", a.get("description", ""))))
    return " ".join(parts)


def inspect_page(browser: Chromium, page: Path, timeout: float = 60.0, per_element_ms: int = 10000) -> PageReport:
    """Open ``page`` from disk in a new tab, wait for it to load, bring every image into view and
    load every player fully; return what loaded, the console errors and every URL requested."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    sid = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    try:
        for domain in ("Runtime", "Log", "Network", "Page"):
            browser.send(f"{domain}.enable", session=sid)
        url = Path(page).resolve().as_uri()
        nav = browser.send("Page.navigate", {"url": url}, session=sid)
        if nav.get("errorText"):
            raise BrowserError(f"{url}: {nav['errorText']}")
        browser.wait_event("Page.loadEventFired", sid, timeout=timeout)
        res = browser.send("Runtime.evaluate", {"expression": _INSPECT % {"ms": per_element_ms}, "awaitPromise": True,
                                                "returnByValue": True}, session=sid, timeout=timeout)
        if "exceptionDetails" in res:
            raise BrowserError(f"inspection script failed: {res['exceptionDetails']}")
        value = res["result"]["value"]
        browser.send("Runtime.evaluate", {"expression": "1"}, session=sid)  # flush pending console events
        errors, requests = [], []
        for method, params, s in browser.events:
            if s != sid:
                continue
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(f"console.{params['type']}: {_console_text(params)}")
            elif method == "Runtime.exceptionThrown":
                d = params.get("exceptionDetails", {})
                errors.append(f"exception: {d.get('text', '')} {d.get('exception', {}).get('description', '')}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                e = params["entry"]
                errors.append(f"log: {e.get('text', '')} {e.get('url', '')}")
            elif method == "Network.loadingFailed" and not params.get("canceled"):
                errors.append(f"network: {params.get('errorText', '')} ({params.get('type', '')})")
            elif method == "Network.requestWillBeSent":
                requests.append(params.get("request", {}).get("url", ""))
        return PageReport(url=url, title=value["title"], images=value["images"], audio=value["audio"],
                          summary_methods=value["methods"], errors=errors, requests=requests)
    finally:
        browser.send("Target.closeTarget", {"targetId": target})
        browser.events = [ev for ev in browser.events if ev[2] != sid]
