"""The stack's permissions, enforced on loopback: each handler runs with credentials of a role holding exactly the
statements the stack grants its function (cappi.contracts.permissions), and moto checks every call against them.

moto evaluates IAM policies when its authentication is switched on, but for most services it checks every call
against the resource `*`: a statement scoped to the table's ARN (as the stack writes them) would then never match.
`_install` teaches the three services CAPPI's functions call (DynamoDB, SSM Parameter Store, Lambda) which
resource a call is on, the way AWS names it in its authorization. Every decision is recorded (role, action,
resource, allowed), so a test can hold what the handlers used against what they were granted, both ways, and local
mode can print a refusal as one clear line.

Local mode's own plumbing (creating the table, loading secrets, keeping snapshots, `cappi` against local mode) uses
an operator user that may do anything, as ops' own credentials would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

from cappi.contracts import permissions

OPERATOR = "cappi-operator"
ROLE_PREFIX = "cappi-local-"  # role names: cappi-local-query, cappi-local-ingest, ...


@dataclass(frozen=True, slots=True)
class Decision:
    principal: str  # the role's name for a function's credentials, else the caller's ARN
    action: str  # e.g. dynamodb:BatchGetItem
    resource: str
    allowed: bool


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def environment(self) -> dict[str, str]:
        """As Lambda hands them to a function: in its environment."""
        env = {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env

    def client_arguments(self) -> dict[str, Any]:
        """As boto3.client's keyword arguments."""
        return {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_session_token": self.session_token,
        }

    def session(self, region: str) -> Any:
        import boto3

        return boto3.Session(region_name=region, **self.client_arguments())


def statements(
    role: str, resources: Mapping[str, Sequence[str]], without: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """The role's statements as the stack writes them, on `resources` (ARNs per resource kind); `without` drops
    actions (a test proving each one is needed)."""
    found = []
    for grant in permissions.grants_of(role):
        arns = list(resources[grant.resource])
        actions = [a for a in grant.actions if a not in without]
        if arns and actions:
            found.append({"Effect": "Allow", "Action": actions, "Resource": arns})
    return found


class Decisions:
    """Every authorization moto made while enforcing, in order; listeners hear each one as it is made."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decisions: list[Decision] = []
        self._listeners: list[Callable[[Decision], None]] = []

    def record(self, decision: Decision) -> None:
        with self._lock:
            self._decisions.append(decision)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(decision)

    def listen(self, listener: Callable[[Decision], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def of(self, principal: str) -> list[Decision]:
        with self._lock:
            return [d for d in self._decisions if d.principal == principal]

    def clear(self) -> None:
        with self._lock:
            self._decisions.clear()

    def all(self) -> list[Decision]:
        with self._lock:
            return list(self._decisions)


DECISIONS = Decisions()  # one per process: moto's enforcement is process-wide too


@contextmanager
def enforcing() -> Iterator[Decisions]:
    """moto checks every call's credentials and policies from here on, in this process (its server threads
    included), until the block ends."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    _install()
    before = settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin.request_count = 0
    try:
        yield DECISIONS
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = before


def start_enforcing() -> Decisions:
    """For a process that enforces until it exits (local mode)."""
    from moto import settings

    _install()
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    return DECISIONS


class Principals:
    """Creates the operator and one role per function in moto's IAM, and hands out their credentials. Call it
    before enforcing starts (the operator is made without credentials) or with an operator's credentials."""

    def __init__(self, endpoint_url: str | None, region: str, credentials: Credentials | None = None) -> None:
        self._endpoint_url = endpoint_url
        self._region = region
        self._credentials = credentials

    def _client(self, service: str) -> Any:
        from cappi.adapters.aws_client import Timeouts, aws_client

        # Before enforcing starts moto takes any signature: the operator is made with placeholder keys.
        credentials = self._credentials or Credentials("bootstrap", "bootstrap")
        extra = credentials.client_arguments()
        # Explicit timeouts, as local/aws.py's LOCAL_TIMEOUTS (not imported: local.aws imports this module).
        timeouts = Timeouts(connect_s=2.0, read_s=20.0)
        return aws_client(service, timeouts, endpoint_url=self._endpoint_url, region_name=self._region, **extra)

    def operator(self) -> Credentials:
        """A user that may do anything: local mode's plumbing and `cappi` against local mode use it."""
        iam = self._client("iam")
        with suppress(iam.exceptions.EntityAlreadyExistsException):
            iam.create_user(UserName=OPERATOR)
        document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName=OPERATOR, PolicyName="everything", PolicyDocument=json.dumps(document))
        key = iam.create_access_key(UserName=OPERATOR)["AccessKey"]
        self._credentials = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
        return self._credentials

    def function_role(
        self, role: str, resources: Mapping[str, Sequence[str]], *, without: frozenset[str] = frozenset()
    ) -> Credentials:
        """Credentials of a role holding exactly `role`'s statements on `resources`, as Lambda gives a function."""
        iam = self._client("iam")
        name = ROLE_PREFIX + role
        # Deployed, Lambda's service principal assumes the role; here the operator plays Lambda.
        caller = self._client("sts").get_caller_identity()["Arn"]
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": caller}, "Action": "sts:AssumeRole"}],
        }
        try:
            arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        except iam.exceptions.EntityAlreadyExistsException:
            arn = iam.get_role(RoleName=name)["Role"]["Arn"]
        document = {"Version": "2012-10-17", "Statement": statements(role, resources, without)}
        if document["Statement"]:
            iam.put_role_policy(RoleName=name, PolicyName="calls", PolicyDocument=json.dumps(document))
        else:
            with suppress(iam.exceptions.NoSuchEntityException):
                iam.delete_role_policy(RoleName=name, PolicyName="calls")
        found = self._client("sts").assume_role(RoleArn=arn, RoleSessionName=role)["Credentials"]
        return Credentials(found["AccessKeyId"], found["SecretAccessKey"], found["SessionToken"])


def role_of(principal: str) -> str | None:
    """The function role behind a recorded principal (`cappi-local-query` -> `query`), or None."""
    return principal.removeprefix(ROLE_PREFIX) if principal.startswith(ROLE_PREFIX) else None


# -- teaching moto which resource a call is on ------------------------------------------------------------------

# moto names an action after the API operation; where IAM's name differs, IAM's is the one a policy holds.
IAM_ACTIONS = {"lambda:Invoke": "lambda:InvokeFunction"}
_installed: list[bool] = []  # one entry once installed
_install_lock = threading.Lock()


def _install() -> None:
    with _install_lock:
        if _installed:
            return
        from moto.dynamodb.responses import DynamoHandler
        from moto.iam import access_control

        DynamoHandler._determine_resource = _dynamodb_resource  # type: ignore[attr-defined]
        _ssm_response()._determine_resource = _parameter_resource
        _lambda_response()._determine_resource = _lambda_resource
        original = access_control.IAMRequestBase.check_action_permitted

        def check(self: Any, resource: str) -> None:
            self._action = IAM_ACTIONS.get(self._action, self._action)
            principal = self._access_key.arn
            name = principal.rsplit("/", 2)[-2] if ":assumed-role/" in principal else principal
            try:
                original(self, resource)
            except access_control.AccessDeniedError:
                DECISIONS.record(Decision(name, self._action, resource, False))
                raise _access_denied(self._service, principal, self._action, resource) from None
            except Exception:
                DECISIONS.record(Decision(name, self._action, resource, False))
                raise
            DECISIONS.record(Decision(name, self._action, resource, True))

        access_control.IAMRequestBase.check_action_permitted = check  # type: ignore[method-assign]
        _installed.append(True)


def _access_denied(service: str, principal: str, action: str, resource: str) -> Exception:
    """The refusal as the service itself words it: these three speak JSON, where moto's generic one is XML that
    botocore reads as a bare "403" with no error code."""
    from moto.core.exceptions import JsonRESTError

    error = JsonRESTError(
        "AccessDeniedException",
        f"User: {principal} is not authorized to perform: {action} on resource: {resource} because no "
        "identity-based policy allows the action",
    )
    error.code = 403 if service == "lambda" else 400
    return error


def _ssm_response() -> Any:
    from moto.ssm.responses import SimpleSystemManagerResponse

    return SimpleSystemManagerResponse


def _lambda_response() -> Any:
    from moto.awslambda.responses import LambdaResponse

    return LambdaResponse


def _dynamodb_resource(self: Any) -> str:
    body = self.body if isinstance(self.body, dict) else {}
    tables = [body["TableName"]] if body.get("TableName") else sorted(body.get("RequestItems") or {})
    if not tables:
        return "*"
    return f"arn:aws:dynamodb:{self.region}:{self.current_account}:table/{tables[0]}"


def _parameter_resource(self: Any) -> str:
    """A parameter's ARN as IAM names it (`...:parameter/a/b` for `/a/b`); calls on many parameters (or none) are
    checked against `*`, as moto does by default."""
    name = self._get_param("Name")
    if not isinstance(name, str) or not name:
        return "*"
    if name.startswith("arn:"):
        return name
    return f"arn:aws:ssm:{self.region}:{self.current_account}:parameter{'' if name.startswith('/') else '/'}{name}"


def _lambda_resource(self: Any) -> str:
    parts = urlparse(self.path).path.split("/")
    if "functions" not in parts or len(parts) <= parts.index("functions") + 1:
        return "*"
    name = unquote(parts[parts.index("functions") + 1])
    qualifier = self.querystring.get("Qualifier", [None])[0]
    if name.startswith("arn:"):
        return name if qualifier is None else f"{name}:{qualifier}"
    function = name if qualifier is None else f"{name}:{qualifier}"
    return f"arn:aws:lambda:{self.region}:{self.current_account}:function:{function}"
