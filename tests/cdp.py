"""A small Chrome DevTools Protocol driver over aiohttp's WebSocket client: enough to load a page,
fill a file input, submit a form, read the DOM and take a screenshot in a real headless Chromium.
(No Playwright: the protocol is a few JSON messages, and aiohttp is already here.)"""

from __future__ import annotations

import asyncio
import base64
import re
import shutil
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-port=0", "--remote-allow-origins=*"]


class Browser:
    def __init__(self, proc: asyncio.subprocess.Process, session: aiohttp.ClientSession,
                 ws: aiohttp.ClientWebSocketResponse) -> None:
        self.proc, self.session, self.ws = proc, session, ws
        self._id = 0
        self.events: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, profile: Path) -> Browser:
        assert CHROMIUM is not None
        proc = await asyncio.create_subprocess_exec(CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank",
                                                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        assert proc.stderr is not None
        port = None
        async with asyncio.timeout(60):
            while port is None:
                line = (await proc.stderr.readline()).decode(errors="replace")
                if not line:
                    raise RuntimeError("chromium exited before listening")
                m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
                port = int(m.group(1)) if m else None
        session = aiohttp.ClientSession()
        async with session.get(f"http://127.0.0.1:{port}/json/list") as r:
            target = next(t for t in await r.json() if t["type"] == "page")
        ws = await session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024)
        browser = cls(proc, session, ws)
        await browser.send("Page.enable")
        return browser

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._id += 1
        my = self._id
        await self.ws.send_json({"id": my, "method": method, "params": params or {}})
        async with asyncio.timeout(60):
            while True:
                msg = await self.ws.receive_json()
                if msg.get("id") == my:
                    if "error" in msg:
                        raise RuntimeError(f"{method}: {msg['error']}")
                    return dict(msg.get("result", {}))
                self.events.append(msg)

    async def wait_event(self, method: str) -> dict[str, Any]:
        async with asyncio.timeout(60):
            while True:
                for i, e in enumerate(self.events):
                    if e.get("method") == method:
                        return self.events.pop(i)
                self.events.append(await self.ws.receive_json())

    async def goto(self, url: str) -> None:
        self.events.clear()
        await self.send("Page.navigate", {"url": url})
        await self.wait_event("Page.loadEventFired")

    async def evaluate(self, expression: str) -> Any:
        res = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return res["result"].get("value")

    async def set_file(self, selector: str, path: Path) -> None:
        root = await self.send("DOM.getDocument")
        node = await self.send("DOM.querySelector", {"nodeId": root["root"]["nodeId"], "selector": selector})
        await self.send("DOM.setFileInputFiles", {"files": [str(path)], "nodeId": node["nodeId"]})

    async def submit(self, selector: str = "form") -> None:
        self.events.clear()
        await self.evaluate(f"document.querySelector({selector!r}).submit()")
        await self.wait_event("Page.loadEventFired")

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.write_bytes(base64.b64decode(shot["data"]))

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
