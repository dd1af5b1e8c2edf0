"""DynamoDB, SSM Parameter Store (club credentials) and Lambda for local mode: moto's server on a loopback port,
set up as the stack sets up AWS, with IAM enforced as AWS enforces it.

Every boto3 client in this process and in the ingest workers reaches it through AWS_ENDPOINT_URL, so the handlers
run their deployed code unchanged. With `enforce`, each handler runs with credentials of a role holding exactly the
statements the stack grants its function (local/iam.py): a call the stack does not allow is refused here too, and
local mode prints the refusal. Local mode's own plumbing runs as an operator that may do anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cappi.adapters.aws_client import Timeouts, aws_client
from cappi.contracts import permissions
from cappi.contracts.credentials import parameter_arn, parameter_name, parameter_patterns, tier_for
from local.iam import Credentials, Decisions, Principals, start_enforcing

TABLE_NAME = "cappi-local-snapshots"
INGEST_FUNCTION = "cappi-local-ingest"
LIVE_ALIAS = "live"  # the alias deployed functions are invoked through (infra)
# Local mode's own calls to moto on loopback (setup, the kept table, the example query): never botocore's 60 s
# defaults, yet room for moto's slower calls (IAM setup) on a busy machine.
LOCAL_TIMEOUTS = Timeouts(connect_s=2.0, read_s=20.0)


class LocalAws:
    def __init__(self, host: str = "127.0.0.1") -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
        self.endpoint_url = ""
        self.region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        self.operator: Credentials | None = None  # set when IAM is enforced
        self.decisions: Decisions | None = None

    def start(self, *, enforce: bool = False) -> None:
        """Start the server; with `enforce`, from then on every call must be signed by a known principal whose
        policies allow it (for the rest of this process: moto's switch is process-wide)."""
        import logging

        from moto.core.models import default_user_config

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per AWS call would drown the console
        # Lambda authorizes dispatch's asynchronous invoke of ingest; the local pool runs it (local/run.py).
        default_user_config.setdefault("lambda", {})["use_docker"] = False
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        if enforce:
            self.operator = Principals(self.endpoint_url, self.region).operator()
            self.decisions = start_enforcing()

    def client(self, service: str, session: Any = None) -> Any:
        """A client of `service` on this server with local mode's timeouts, as `session` (else the environment)."""
        return aws_client(service, LOCAL_TIMEOUTS, session=session, endpoint_url=self.endpoint_url)

    def wrap(self, middleware: Callable[[Any], Any]) -> None:
        """Put a WSGI middleware in front of the running server (`middleware(app)` returns the new app); the
        requests it serves from then on go through it."""
        server = self._server._server
        assert server is not None, "start() first"
        server.app = middleware(server.app)

    def environment(self) -> dict[str, str]:
        """What a process needs to talk to these services: the operator's credentials when IAM is enforced, else
        fake ones (moto accepts any)."""
        credentials = self.operator.environment() if self.operator else {}
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": self.region,
            **credentials,
        }

    def function_credentials(self, role: str, table: str, secret_names: Iterable[str]) -> Credentials:
        """Credentials of `role`'s function: exactly its statements on this server's resources, as the stack
        grants them on the deployed ones (the credentials' parameter patterns included). Call after the table
        exists."""
        assert self.operator is not None, "IAM is not enforced"
        session = self.operator.session(self.region)
        dynamodb = self.client("dynamodb", session)
        account = self.client("sts", session).get_caller_identity()["Account"]
        where = {"partition": "aws", "region": self.region, "account": account}
        resources = {
            permissions.TABLE: [dynamodb.describe_table(TableName=table)["Table"]["TableArn"]],
            permissions.CLUB_SECRETS: [parameter_arn(p, **where) for p in parameter_patterns(secret_names)],
            permissions.INGEST_FUNCTION: [self.ingest_function_arn(account)],
            permissions.QUERY_VERSIONS: [],
        }
        return Principals(self.endpoint_url, self.region, self.operator).function_role(role, resources)

    def ingest_function_arn(self, account: str = "123456789012") -> str:
        return f"arn:aws:lambda:{self.region}:{account}:function:{INGEST_FUNCTION}:{LIVE_ALIAS}"

    def create_table(self, name: str = TABLE_NAME) -> None:
        from cappi.adapters.dynamo.schema import create_table

        create_table(self.client("dynamodb"), name)

    def put_secrets(self, secrets: Mapping[str, str]) -> None:
        """Store `secrets` (registry secret name -> value) as `cappi secrets set` does deployed: each in its
        SecureString parameter. A name without a value has no parameter, and a read of it fails as it would
        deployed before ops set it."""
        from botocore.exceptions import ClientError

        client = self.client("ssm")
        for name, value in secrets.items():
            try:
                client.put_parameter(
                    Name=parameter_name(name), Value=value, Type="SecureString", Overwrite=True, Tier=tier_for(value)
                )
            except (ValueError, ClientError) as exc:
                # The code only: a validation message may quote what it refused.
                reason = exc.response["Error"].get("Code") if isinstance(exc, ClientError) else str(exc)
                raise ValueError(f"secret {name!r} cannot be stored in {parameter_name(name)}: {reason}") from None

    def stop(self) -> None:
        self._server.stop()
