"""AWS clients that answer from literal, AWS-shaped answers (botocore's Stubber): for the adapters'
rules about answers AWS sends but moto cannot be made to (an answer emptied on the way)."""

from __future__ import annotations

from contextlib import contextmanager

import boto3
from botocore.stub import Stubber

from monitor.aws.session import ApiCounter, AwsClients


@contextmanager
def stubbed():
    """(clients, {service: Stubber}); every queued answer must be asked for."""
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    made = {name: session.client(name) for name in ("ec2", "elbv2", "iam")}
    stubs = {name: Stubber(client) for name, client in made.items()}
    for stub in stubs.values():
        stub.activate()
    try:
        yield AwsClients("us-east-1", made["ec2"], made["elbv2"], made["iam"], ApiCounter()), stubs
        for stub in stubs.values():
            stub.assert_no_pending_responses()
    finally:
        for stub in stubs.values():
            stub.deactivate()
