"""DynamoDB and Secrets Manager for local mode: moto's server on a loopback port, set up as the stack sets up AWS.

Every boto3 client in this process and in the ingest workers reaches it through AWS_ENDPOINT_URL, so the handlers
run their deployed code unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

TABLE_NAME = "cappi-local-snapshots"


class LocalAws:
    def __init__(self, host: str = "127.0.0.1") -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
        self.endpoint_url = ""

    def start(self) -> None:
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per AWS call would drown the console
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"

    def environment(self) -> dict[str, str]:
        """What a process needs to talk to these services (fake credentials: moto accepts any)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        }

    def create_table(self, name: str = TABLE_NAME) -> None:
        import boto3

        from cappi.adapters.dynamo.schema import create_table

        create_table(boto3.client("dynamodb", endpoint_url=self.endpoint_url), name)

    def put_secrets(self, secrets: Mapping[str, str]) -> None:
        import boto3

        client = boto3.client("secretsmanager", endpoint_url=self.endpoint_url)
        for name, value in secrets.items():
            try:
                client.create_secret(Name=name, SecretString=value)
            except client.exceptions.ResourceExistsException:
                client.put_secret_value(SecretId=name, SecretString=value)

    def stop(self) -> None:
        self._server.stop()
