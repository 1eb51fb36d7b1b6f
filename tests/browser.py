"""Open pages in headless Chromium over the DevTools protocol (a test helper, not a dependency).

:func:`find_chromium` finds Debian's ``chromium`` (installing it with apt-get when missing and
``CI=true``); :class:`Chromium` starts it headless with an empty profile and no network
services, and :meth:`Chromium.check` loads one page and reports broken images, console errors,
uncaught exceptions and failed requests, saving a screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-port=0", "--window-size=1280,1600"]
_BROKEN_IMAGES = ("Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
                  ".map(i => (i.getAttribute('src') || '').slice(0, 120))")


def _installed_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


def find_chromium() -> str | None:
    """Path of a Chromium binary; on CI (``CI=true``) install Debian's package if missing.

    One install at a time, under a file lock: each pytest-xdist worker asks, and a second
    apt-get fails on dpkg's lock while the first runs (seen on a fresh clone: one worker's
    browser test skipped, "no chromium", while the other's install was still going).
    """
    if found := _installed_chromium():
        return found
    if os.environ.get("CI") != "true" or not shutil.which("apt-get"):
        return None
    with FileLock(Path(tempfile.gettempdir()) / "advlens-chromium-install.lock"):
        if found := _installed_chromium():  # another worker installed it meanwhile
            return found
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "chromium"]
        if subprocess.run(install, env=env, check=False, capture_output=True,
                          timeout=900).returncode != 0:  # a fresh machine has no package lists
            subprocess.run(["apt-get", "update", "-q"], env=env, check=False,
                           capture_output=True, timeout=600)
            subprocess.run(install, env=env, check=False, capture_output=True, timeout=900)
        return shutil.which("chromium")


@dataclass
class PageReport:
    """What loading one page showed."""

    url: str
    broken_images: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def ok(self) -> bool:
        return not (self.broken_images or self.console_errors or self.failed_requests)


class Chromium:
    """A headless Chromium with a fresh profile, driven over its DevTools websocket."""

    def __init__(self, binary: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="advlens-chromium-")
        self.proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={self.profile}",
                                      "about:blank"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not start (no DevToolsActivePort)")
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])

    def _page_socket(self) -> Any:
        import websocket

        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank",
                                          method="PUT")
        with urllib.request.urlopen(request, timeout=30) as response:
            target = json.load(response)
        return websocket.create_connection(target["webSocketDebuggerUrl"], timeout=60,
                                           suppress_origin=True)

    def check(self, url: str, screenshot: Path | None = None, timeout: float = 60) -> PageReport:
        """Load ``url``, wait for its load event, and report what went wrong."""
        ws = self._page_socket()
        report, ids = PageReport(url), iter(range(1, 1_000_000))
        pending: dict[int, dict[str, Any]] = {}

        def send(method: str, **params: Any) -> int:
            i = next(ids)
            ws.send(json.dumps({"id": i, "method": method, "params": params}))
            return i

        def wait_for(i: int | None = None, event: str | None = None) -> dict[str, Any]:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                msg = json.loads(ws.recv())
                method = msg.get("method", "")
                params = msg.get("params", {})
                if method == "Runtime.exceptionThrown":
                    report.console_errors.append(params["exceptionDetails"].get("text", "")
                                                 + " " + str(params["exceptionDetails"].get(
                                                     "exception", {}).get("description", "")))
                elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                    report.console_errors.append(" ".join(str(a.get("value", a.get(
                        "description", ""))) for a in params.get("args", [])))
                elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                    report.console_errors.append(params["entry"].get("text", ""))
                elif method == "Network.requestWillBeSent":
                    pending[params["requestId"]] = params["request"]
                elif method == "Network.loadingFailed":
                    url_failed = pending.get(params["requestId"], {}).get("url", "?")
                    report.failed_requests.append(f"{url_failed[:120]}: {params['errorText']}")
                if i is not None and msg.get("id") == i:
                    return msg
                if event is not None and method == event:
                    return msg
            raise TimeoutError(f"{url}: no {event or i} within {timeout} s")

        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                wait_for(send(f"{domain}.enable"))
            send("Page.navigate", url=url)
            wait_for(event="Page.loadEventFired")
            result = wait_for(send("Runtime.evaluate", expression=_BROKEN_IMAGES,
                                   returnByValue=True))
            report.broken_images = list(result["result"]["result"].get("value", []))
            if screenshot is not None:
                shot = wait_for(send("Page.captureScreenshot", format="png"))
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                screenshot.write_bytes(base64.b64decode(shot["result"]["data"]))
                report.screenshot = screenshot
        finally:
            ws.close()
        return report

    def close(self) -> None:
        """Stop the browser and delete its profile."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)
