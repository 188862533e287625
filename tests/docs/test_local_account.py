"""docs/daemon.md's "Try it against a local account" runs as written: every command of the section
is run here, in the order and in the terminals it names, and each `curl` shows the lines the doc shows.

Only the ports differ: the doc's 5000 and 9917 become free ports, so runs side by side never collide.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "daemon.md"
HEADING = "## Try it against a local account"
BLOCK = re.compile(r"^```(?P<lang>[a-z]*)\n(?P<body>.*?)^```", re.M | re.S)


def section_blocks() -> list[tuple[str, str]]:
    text = DOC.read_text()
    start = text.index(HEADING + "\n")
    end = text.find("\n## ", start + len(HEADING))
    return [(m["lang"], m["body"]) for m in BLOCK.finditer(text[start:end if end > 0 else None])]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Terminal:
    """One bash that reads commands from a pipe, as a terminal the reader types into keeps its
    variables and functions from one step to the next."""

    def __init__(self, env: dict[str, str]) -> None:
        self.shell = subprocess.Popen(["bash"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)

    def run(self, commands: str) -> tuple[str, int]:
        marker = f"__done_{uuid.uuid4().hex}__"
        assert self.shell.stdin and self.shell.stdout
        self.shell.stdin.write(f"{commands}\necho \"{marker}$?\"\n")
        self.shell.stdin.flush()
        lines = []
        for line in self.shell.stdout:
            if line.startswith(marker):
                return "".join(lines), int(line[len(marker):])
            lines.append(line)
        raise AssertionError(f"the shell ended while running {commands!r}:\n{''.join(lines)}")

    def close(self) -> None:
        assert self.shell.stdin
        self.shell.stdin.close()
        self.shell.wait(timeout=10)


def test_the_section_has_the_steps_the_test_runs():
    langs = [lang for lang, _ in section_blocks()]
    assert langs == ["sh", "sh", "sh", "text", "sh", "text", "sh", "text"]
    blocks = [body for _, body in section_blocks()]
    assert blocks[0].strip().startswith("scripts/moto-world")
    assert "alb-sg-monitor run" in blocks[1]
    assert "aws ec2 revoke-security-group-ingress" in blocks[4]
    assert "aws ec2 authorize-security-group-ingress" in blocks[6]
    assert all(body.strip().splitlines()[-1].startswith("curl ") for body in blocks[2:7:2])


@pytest.mark.skipif(not shutil.which("aws"), reason="the section changes the account with the AWS CLI")
def test_the_local_account_walkthrough_runs_as_written(tmp_path):
    moto_port, listen_port = free_port(), free_port()
    blocks = [re.sub(r"\b9917\b", str(listen_port), re.sub(r"\b5000\b", str(moto_port), body))
              for _, body in section_blocks()]
    world_cmd, daemon_cmd, *steps = blocks
    # The reader's shell after `. .venv/bin/activate`: this Python's scripts first on PATH.
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HOME": str(tmp_path),
           "PYTHONPATH": str(ROOT), "AWS_EC2_METADATA_DISABLED": "true", "LANG": "C.UTF-8"}
    started: list[subprocess.Popen] = []
    try:
        world = subprocess.Popen(["bash", "-c", world_cmd], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True, env=env, cwd=ROOT, start_new_session=True)
        started.append(world)
        assert world.stdout
        assert world.stdout.readline().strip() == f"http://127.0.0.1:{moto_port}"

        with open(tmp_path / "daemon.log", "w") as log:
            started.append(subprocess.Popen(["bash", "-c", daemon_cmd], stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True))
        terminal = Terminal(env)
        for commands, shown in zip(steps[0::2], steps[1::2]):
            *actions, curl = commands.rstrip("\n").splitlines()
            if actions:
                output, status = terminal.run("\n".join(actions))
                assert status == 0, f"{actions} failed:\n{output}"
            # The change shows at the next check: ask again until it does, as the reader would.
            deadline, output = time.monotonic() + 60, ""
            while output != shown and time.monotonic() < deadline:
                output, _ = terminal.run(curl)
                if output != shown:
                    time.sleep(0.5)
            assert output == shown, f"after {actions}, `{curl}` printed:\n{output}\n" + (
                tmp_path / "daemon.log").read_text()[-3000:]
            if "revoke-security-group-ingress" in commands:
                assert re.search(r'"load_balancer": "144402b0-shop-frontend-5b40".*"event": "path_revoked"',
                                 (tmp_path / "daemon.log").read_text()), "no path_revoked line in the log"
        terminal.close()
    finally:
        for process in reversed(started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
