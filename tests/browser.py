"""A page loaded in headless Chromium (Debian's ``chromium``, installed by ``make setup``),
driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: no port, no extra
package).  ``load(path)`` returns what the page logged -- console calls, uncaught exceptions,
the browser's own errors (a resource that failed to load) -- and the result of a script run
after the load event."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-pipe", "--window-size=1200,900"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _Pipe:
    def __init__(self, proc, write_fd, read_fd):
        self.proc, self.w, self.r, self.buf, self.next_id, self.events = proc, write_fd, read_fd, b"", 0, []

    def send(self, method, params=None, session=None, timeout=60.0):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        return self.wait(lambda m: m.get("id") == self.next_id, timeout)

    def wait(self, pred, timeout=60.0):
        import select

        end = time.monotonic() + timeout
        while True:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                m = json.loads(raw)
                if "method" in m:
                    self.events.append(m)
                if pred(m):
                    if "error" in m:
                        raise RuntimeError(f"DevTools: {m['error']}")
                    return m
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium exited")
            self.buf += chunk


def load(path: str, script: str, screenshot: str | None = None) -> dict:
    """Open ``path`` (a local file), wait for its load event, run ``script`` (an expression whose
    value is JSON-serialisable); returns {"value", "console", "exceptions", "log"}."""
    exe = chromium()
    if exe is None:
        raise RuntimeError("chromium not found (make setup installs Debian's chromium)")
    import fcntl

    # the pipes' ends far from 3 and 4, so that moving them there clobbers neither
    ends = []
    for fd in (*os.pipe(), *os.pipe()):
        ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
        os.close(fd)
    to_chrome_r, to_chrome_w, from_chrome_r, from_chrome_w = ends

    # Chromium reads commands on fd 3 and writes answers on fd 4. A shell moves the pipes there:
    # a preexec_fn would run Python in the forked child, where gRPC's fork hooks (Beam has run
    # in this process) restart a poller that then aborts the child (tests/faults: _bounded).
    move = f'exec "$@" 3<&{to_chrome_r} 4>&{from_chrome_w} {to_chrome_r}<&- {from_chrome_w}>&-'
    profile = tempfile.mkdtemp(prefix="chromium-")
    proc = subprocess.Popen(["bash", "-c", move, "bash", exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            pass_fds=(to_chrome_r, from_chrome_w), stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(profile, "stderr"), "wb"))
    os.close(to_chrome_r)
    os.close(from_chrome_w)
    pipe = _Pipe(proc, to_chrome_w, from_chrome_r)
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["result"]["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["result"]["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            pipe.send(f"{domain}.enable", session=session)
        pipe.send("Page.navigate", {"url": "file://" + os.path.abspath(path)}, session=session)
        pipe.wait(lambda m: m.get("method") == "Page.loadEventFired" and m.get("sessionId") == session)
        time.sleep(0.3)  # late console messages and errors
        value = pipe.send("Runtime.evaluate", {"expression": script, "returnByValue": True},
                          session=session)["result"]["result"].get("value")
        if screenshot:
            import base64

            shot = pipe.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                             session=session)["result"]["data"]
            with open(screenshot, "wb") as f:
                f.write(base64.b64decode(shot))
        ev = [e for e in pipe.events if e.get("sessionId") == session]
        return {
            "value": value,
            "console": [(e["params"]["type"], " ".join(str(a.get("value", a.get("description", "")))
                                                        for a in e["params"]["args"]))
                        for e in ev if e["method"] == "Runtime.consoleAPICalled"],
            "exceptions": [e["params"]["exceptionDetails"].get("exception", {}).get("description")
                           or e["params"]["exceptionDetails"]["text"]
                           for e in ev if e["method"] == "Runtime.exceptionThrown"],
            "log": [(e["params"]["entry"]["level"], e["params"]["entry"]["text"])
                    for e in ev if e["method"] == "Log.entryAdded"],
        }
    except (OSError, RuntimeError, TimeoutError) as e:
        with open(os.path.join(profile, "stderr"), errors="replace") as f:
            raise RuntimeError(f"{e}; Chromium said:\n{f.read()[-3000:]}") from None
    finally:
        os.close(to_chrome_w)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        os.close(from_chrome_r)
        shutil.rmtree(profile, ignore_errors=True)
