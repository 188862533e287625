"""One full check: discover, read rules, evaluate. The same path serves `check` and the daemon."""

from __future__ import annotations

from monitor.aws import AwsClients, RuleReader, discover
from monitor.evaluate import evaluate
from monitor.model import Report


def check_once(clients: AwsClients, cluster: str) -> Report:
    topology = discover(clients, cluster)
    observation = RuleReader(clients).read(topology)
    return evaluate(topology, observation)
