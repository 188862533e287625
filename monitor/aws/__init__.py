"""The AWS adapter: the only code that talks to boto3. It turns AWS answers into model values."""

from monitor.aws.discover import discover
from monitor.aws.rules import RuleReader
from monitor.aws.session import ApiCounter, AwsClients, connect

__all__ = ["ApiCounter", "AwsClients", "RuleReader", "connect", "discover"]
