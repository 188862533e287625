"""`alb-sg-monitor demo` on an 80-column, 24-row terminal (a pseudo-terminal): every redraw fits the
screen, and at the end of each story step every ALB's state is on it."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time

from tests.demo.test_demo import FAST, demo_env
from tests.support import procs
from tests.support.tinyworld import free_port

COLUMNS, ROWS = 80, 24
CLEAR = "\x1b[H\x1b[2J"
INGRESSES = ("shop/frontend", "blog/web", "payments/api", "checkout/storefront", "marketing/landing")
# Each story step as its STORY line starts, and the ALB (by Ingress) whose state it changes.
STEPS = [("The v2 controller starts", ("shop/frontend", "UNREACHABLE")),
         ("Someone follows the migration guide's", None),
         ("The network team puts subnet private-c", ("payments/api", "UNREACHABLE")),
         ("An engineer puts the shop rule back", ("shop/frontend", "ok")),
         ("Tidying up from the console", ("blog/web", "UNREACHABLE")),
         ("The marketing team takes the label off", None),
         ("End of the story.", None)]


def run_on_terminal(argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Runs `argv` with a pseudo-terminal of COLUMNS x ROWS as its stdin, stdout and stderr; returns
    its exit status and all it wrote (read as it comes, so the child never blocks on a full terminal)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 0.5)[0]:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every holder of the terminal's other end has closed it
                break
            if not data:
                break
            chunks.append(data)
        status = process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return status, b"".join(chunks).decode().replace("\r\n", "\n")


def states(frame: str) -> dict[str, str]:
    """Ingress -> the STATE its row shows, from the table on one screen."""
    found = {}
    for line in frame.splitlines():
        match = re.search(r"\s(ok|UNREACHABLE|unknown)$", line)
        ingress = next((i for i in INGRESSES if f" {i} " in line), None)
        if match and ingress:
            found[ingress] = match.group(1)
    return found


def test_the_live_view_fits_80_columns_and_always_shows_every_albs_state(tmp_path):
    env = {k: v for k, v in demo_env(**FAST).items() if k not in ("COLUMNS", "LINES")}  # the terminal's own size
    status, output = run_on_terminal([procs.EXE, "demo", "--listen", f"127.0.0.1:{free_port()}",
                                      "--interval", "250ms"], env, timeout=90)
    assert status == 0, output[-3000:]
    assert "Traceback" not in output
    intro, *frames = output.split(CLEAR)
    frames[-1], summary = frames[-1].split("\nWhat the monitor saw:")
    assert len(frames) > 10, output[-3000:]
    for text in (intro, summary):
        assert all(len(line) <= COLUMNS for line in text.splitlines()), text
    for frame in frames:
        lines = frame.rstrip("\n").split("\n")
        # One row is left for the cursor, so the header is never scrolled off the top.
        assert len(lines) <= ROWS - 1, frame
        assert all(len(line) <= COLUMNS for line in lines), frame
    # The frame where each step's STORY line first shows, and the last frame before the next one's.
    starts = [next(i for i, frame in enumerate(frames) if f"STORY     {text}" in frame) for text, _ in STEPS]
    assert starts == sorted(starts), starts
    ends = [start - 1 for start in starts[1:]] + [len(frames) - 1]
    for (text, change), start, end in zip(STEPS, starts, ends):
        assert set(states(frames[end])) == set(INGRESSES), (text, frames[end])
        if change is not None:
            ingress, state = change
            # Shown by the end of the step (or, on a slow machine, soon after), state and all.
            assert any(states(frame).get(ingress) == state for frame in frames[start:]), (text, state)
    # The findings panel says which Ingress each finding is about.
    assert any("CRITICAL ACCESS_REVOKED on Ingress shop/frontend" in frame for frame in frames)
    assert any("CRITICAL SHARED_LABEL_ON_FOREIGN_SOURCE on Ingress marketing/landing" in frame for frame in frames)
    # Story lines wrap at word boundaries: the wrapped text, joined, is the event's whole text.
    story = frames[starts[1]]
    event = story[story.index("STORY     Someone follows"):]
    words = " ".join(event.split())
    assert ("labels every tcp 0-65535 node rule elbv2.k8s.aws/targetGroupBinding=shared, including the rule from "
            "the marketing team's own ALB security group") in words, event
