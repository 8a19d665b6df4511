"""Headless Chromium driven over the Chrome DevTools Protocol: one page, a cookie, JavaScript, screenshots.

Chromium's command line alone cannot sign in (the Airflow UI authenticates with an HTTP-only ``_token``
cookie) nor click a button, so the tests talk to it over its DevTools websocket with the ``websockets``
package. Chromium runs in a process group of its own and is ended by its process id.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")


#: Headless Chromium without a sandbox, GPU or background traffic (the tests' loopback pages only).
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class BrowserError(RuntimeError):
    """Chromium did not start, or a DevTools command failed."""


class Chromium:
    """One headless Chromium page; use as a context manager."""

    def __init__(self, profile: Path, *, executable: Path = CHROMIUM, size: tuple[int, int] = (1400, 1000)):
        self.profile = profile
        self.executable = executable
        self.size = size
        self.process: subprocess.Popen | None = None
        self.socket: Any = None
        self._ids = itertools.count(1)

    def __enter__(self) -> Chromium:
        try:
            self.start()
        except BaseException:
            self.close()  # a half-started Chromium is ended too
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, timeout: float = 30) -> None:
        from websockets.sync.client import connect

        self.profile.mkdir(parents=True, exist_ok=True)
        (self.profile / "DevToolsActivePort").unlink(missing_ok=True)
        width, height = self.size
        command = [
            str(self.executable),
            *HEADLESS_FLAGS,
            "--hide-scrollbars",
            "--remote-debugging-port=0",  # Chromium picks a port and writes it to DevToolsActivePort
            f"--user-data-dir={self.profile}",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        with open(self.profile / "chromium.log", "wb") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
            )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise BrowserError(f"Chromium did not start: {self.log()}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            pages = [t for t in json.load(answer) if t["type"] == "page"]
        self.socket = connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=10)

    def log(self) -> str:
        path = self.profile / "chromium.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None

    # -- DevTools ----------------------------------------------------------------------------------

    def send(self, method: str, timeout: float = 60, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are dropped."""
        number = next(self._ids)
        self.socket.send(json.dumps({"id": number, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == number:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})

    def set_cookie(self, name: str, value: str, url: str, *, http_only: bool = True) -> None:
        """A cookie for ``url``'s host, as the server would have set it (path ``/``, SameSite Lax)."""
        done = self.send(
            "Network.setCookie", name=name, value=value, url=url, path="/", httpOnly=http_only, sameSite="Lax"
        )
        if not done.get("success", True):
            raise BrowserError(f"cookie {name} was refused for {url}")

    def open(self, url: str) -> None:
        """Navigate to ``url`` (returns once the navigation is committed, not when the page has rendered)."""
        answer = self.send("Page.navigate", url=url)
        if answer.get("errorText"):
            raise BrowserError(f"{url}: {answer['errorText']}")

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page (promises awaited)."""
        answer = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression[:200]}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, *, timeout: float = 60, interval: float = 0.25) -> Any:
        """Evaluate ``expression`` until it is truthy; return it. :class:`TimeoutError` shows the page."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.evaluate("document.body ? document.body.innerText.slice(0, 1500) : ''")
                raise TimeoutError(f"after {timeout:.0f} s still falsy: {expression}\npage text: {text}")
            time.sleep(interval)

    def click(self, selector: str, *, timeout: float = 20) -> None:
        """A real mouse click (pressed, released) in the middle of the first element matching ``selector``.

        Waits until the element stands still (an animation, such as an accordion section closing above
        it, would move it under the pointer). ``element.click()`` from JavaScript is not enough for every
        widget (Chakra's accordion ignores it).
        """
        where = (
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        deadline = time.monotonic() + timeout
        centre = None
        while True:
            now = self.evaluate(where)
            if now is not None and now == centre:
                break
            if time.monotonic() > deadline:
                raise BrowserError(f"{selector!r}: {'not found' if now is None else 'never stood still'}")
            centre = now
            time.sleep(0.3)
        for kind in ("mousePressed", "mouseReleased"):
            x, y = centre
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def screenshot(self, path: Path) -> bytes:
        """A PNG of the viewport, written to ``path``; returns its bytes."""
        data = base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data
