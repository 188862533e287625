"""`alb-sg-monitor run --events-queue` as a real process: its consumer long-polls in its own thread,
and SIGTERM in the middle of a 20 s long poll still stops the daemon within the stop grace."""

from __future__ import annotations

import json
import signal
import time

import boto3

from tests.support.fixtures import reset_moto, tiny_moto  # noqa: F401 (fixture)
from tests.support.tinyworld import CLUSTER, free_port
from tests.surface.test_run_command import EXE, STOP_WITHIN_SECONDS, env, stop_and_time, wait_ready  # noqa: F401


def test_sigterm_during_a_long_poll_stops_the_daemon_within_the_grace(env):  # noqa: F811
    import subprocess

    sqs = boto3.client("sqs", region_name=env["AWS_REGION"], endpoint_url=env["AWS_ENDPOINT_URL"],
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    url = sqs.create_queue(QueueName="alb-sg-monitor-events-run")["QueueUrl"]
    port = free_port()
    process = subprocess.Popen([EXE, "run", "--cluster-name", CLUSTER, "--listen", f"127.0.0.1:{port}",
                                "--interval", "1s", "--events-queue", url], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_ready(process, port)
    time.sleep(2)  # the consumer is now inside a 20 s ReceiveMessage
    took, output = stop_and_time(process, process.pid, signal.SIGTERM)
    assert process.returncode == 0, output
    assert took < STOP_WITHIN_SECONDS, output
    names = [json.loads(line)["event"] for line in output.splitlines() if line.startswith("{")]
    assert "events_queue_started" in names and names[-1] == "daemon_stopped"
    assert "events_queue_unreachable" not in names and "Traceback" not in output
