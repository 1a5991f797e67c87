"""Headless Chromium driven over the DevTools protocol on a pipe, with the standard library only.

``--remote-debugging-pipe`` makes Chromium read protocol commands from file
descriptor 3 and write answers and events to 4, each message a JSON object ended
by a NUL byte. That is all a test needs to open a page, wait for its load event
(images included) and read the page with JavaScript, in the browser users have,
without a driver or a downloaded browser.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import select
import subprocess
import tempfile
import time
import typing as t

from tests.utils import docs_tools

Message = t.Dict[str, t.Any]


class BrowserError(RuntimeError):
    pass


@dataclasses.dataclass
class PageLoad:
    """What loading one page showed: the value of the script run on it, and what failed to load."""

    url: str
    value: t.Any
    failed: t.List[str]  # "URL: net::ERR_..." for every request that did not load


class Chromium:
    def __init__(self, binary: t.Optional[str] = None, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-")
        commands_read, self._commands = _pipe_above_stdio()
        self._answers, answers_write = _pipe_above_stdio()

        def on_fds_3_and_4() -> None:
            os.dup2(commands_read, 3)
            os.dup2(answers_write, 4)

        args = [binary or docs_tools.chromium(), "--headless", "--remote-debugging-pipe", *docs_tools.CHROMIUM_ARGS,
                "--no-first-run", "--allow-file-access-from-files", f"--user-data-dir={self._profile.name}",
                "about:blank"]  # fmt: skip
        # close_fds would close 3 and 4 after preexec_fn set them up; every other descriptor
        # of ours is close-on-exec anyway. preexec_fn is safe here: no other thread forks.
        self._process = subprocess.Popen(
            args, preexec_fn=on_fds_3_and_4, close_fds=False, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(commands_read)
        os.close(answers_write)
        self._buffer = b""
        self._events: t.List[Message] = []
        self._next_id = 0
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime"):
            self.call(f"{domain}.enable", session=True)

    def close(self) -> None:
        with contextlib.suppress(BrowserError):
            self.call("Browser.close")
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._commands)
        os.close(self._answers)
        self._profile.cleanup()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self, url: str, script: str) -> PageLoad:
        """Open `url`, wait for its load event, then run `script` (an expression) on it."""
        self._events.clear()
        navigated = self.call("Page.navigate", {"url": url}, session=True)
        if navigated.get("errorText"):
            return PageLoad(url, None, [f"{url}: {navigated['errorText']}"])
        self.wait_for("Page.loadEventFired")
        requested = {
            e["params"]["requestId"]: e["params"]["request"]["url"] for e in self._seen("Network.requestWillBeSent")
        }
        failed = [
            f"{requested.get(e['params']['requestId'], '?')}: {e['params']['errorText']}"
            for e in self._seen("Network.loadingFailed")
        ]
        for event in self._seen("Network.responseReceived"):
            response = event["params"]["response"]
            if response.get("status", 0) >= 400:  # file:// answers 0; a served site may answer 404
                failed.append(f"{response['url']}: HTTP {response['status']}")
        evaluated = self.call("Runtime.evaluate", {"expression": script, "returnByValue": True}, session=True)
        if "exceptionDetails" in evaluated:
            raise BrowserError(f"script failed on {url}: {evaluated['exceptionDetails'].get('text')}")
        return PageLoad(url, evaluated["result"].get("value"), failed)

    # Protocol ------------------------------------------------------------------
    def call(self, method: str, params: t.Optional[Message] = None, session: bool = False) -> Message:
        self._next_id += 1
        message: Message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            answer = self._receive(deadline, f"answer to {method}")
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error'].get('message')}")
                return t.cast(Message, answer.get("result", {}))
            self._events.append(answer)

    def wait_for(self, event: str) -> Message:
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == event for e in self._events):
            self._events.append(self._receive(deadline, event))
        return next(e for e in self._events if e.get("method") == event)

    def _seen(self, event: str) -> t.List[Message]:
        return [e for e in self._events if e.get("method") == event]

    def _receive(self, deadline: float, waiting_for: str) -> Message:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._answers], [], [], remaining)[0]:
                raise BrowserError(f"chromium did not send the {waiting_for} in {self.timeout:.0f}s")
            chunk = os.read(self._answers, 1 << 20)
            if not chunk:
                raise BrowserError(f"chromium exited (status {self._process.poll()}) before the {waiting_for}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return t.cast(Message, json.loads(raw))


def _pipe_above_stdio() -> t.Tuple[int, int]:
    """A pipe whose ends are not 3 or 4, so the child's dup2 onto 3 and 4 cannot clobber one."""
    ends = []
    for fd in os.pipe():
        ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
        os.close(fd)
    return ends[0], ends[1]
