"""`cappi secrets set SOURCE` and `cappi secrets migrate`: club credentials in their SSM parameters.

Each registry secret name is the SecureString parameter "/" + name (cappi.contracts.credentials), encrypted with
the AWS managed key aws/ssm. `set` writes one, read without echo or from a pipe, overwriting the value it had (that
is a rotation: ingest picks it up within CAPPI_SECRETS_MAX_AGE_S). `migrate` copies each registry secret's value from
Secrets Manager, where deploys before this change kept them, into its parameter. Neither ever prints a value: what
they print is names, tiers, sizes and AWS error codes.

Neither needs the stack: a stage's registry is clubs/<stage>.json, so credentials can be set before the first
deploy (`cappi preflight` checks that they are).
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from cappi.contracts.credentials import STANDARD_TIER_MAX_BYTES, parameter_name, tier_for
from cappi.domain.registry import ClubRegistry, ClubSource, RegistryError, load_registry
from cli.aws import aws_error_code
from cli.target import ROOT, TargetError

DESCRIBE_BATCH = 50  # names per DescribeParameters filter (Parameter Store's limit)
ADVANCED_MONTHLY_USD = 0.05


class CredentialTarget(Protocol):
    @property
    def where(self) -> str: ...
    @property
    def registry(self) -> ClubRegistry: ...
    @property
    def client(self) -> Callable[[str], Any]: ...


@dataclass(frozen=True)
class StageCredentials:
    """A stage's credentials: its registry and the caller's AWS clients. No stack needed."""

    where: str
    registry: ClubRegistry
    client: Callable[[str], Any]


def stage_credentials(stage: str, region: str | None = None) -> StageCredentials:
    import boto3

    session = boto3.Session(region_name=region)
    if not session.region_name:
        raise TargetError("no AWS region: pass --region or set AWS_REGION / your AWS configuration's region")
    try:
        registry = load_registry(ROOT / "clubs" / f"{stage}.json")
    except (OSError, RegistryError) as exc:
        raise TargetError(str(exc)) from None
    return StageCredentials(
        where=f"{stage} ({session.region_name})",
        registry=registry,
        client=session.client,
    )


def _source(target: CredentialTarget, name: str) -> ClubSource:
    try:
        return target.registry.source(name)
    except KeyError:
        names = ", ".join(s.name for s in target.registry.sources)
        raise TargetError(f"no club source named {name!r} in {target.where} (sources: {names})") from None


def existing_parameters(ssm: Any, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Parameter name -> its metadata (Type, Tier, ...), of those of `names` that exist: no value is read."""
    wanted = sorted(set(names))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), DESCRIBE_BATCH):
        batch = wanted[start : start + DESCRIBE_BATCH]
        pages = ssm.get_paginator("describe_parameters").paginate(
            ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": batch}]
        )
        for page in pages:
            for parameter in page.get("Parameters", []):
                found[parameter["Name"]] = parameter
    return found


@dataclass(frozen=True)
class Stored:
    parameter: str
    tier: str
    size: int
    note: str = ""

    def describe(self) -> str:
        if self.tier == "Standard":
            return f"{self.parameter} (standard tier, free)"
        return f"{self.parameter} (advanced tier, ${ADVANCED_MONTHLY_USD:.2f} a month: {self.note})"


def store(ssm: Any, secret_name: str, value: str, users: str) -> Stored:
    """Write `value` into the secret's parameter, overwriting it; the tier is the one the value needs (an
    advanced parameter stays advanced: Parameter Store cannot move it back)."""
    parameter = parameter_name(secret_name)
    size = len(value.encode())
    try:
        tier = tier_for(value)
    except ValueError as exc:
        raise TargetError(f"{parameter}: {exc}: nothing was stored") from None
    note = f"{size} bytes, over the standard tier's {STANDARD_TIER_MAX_BYTES}"
    if tier == "Standard" and existing_parameters(ssm, [parameter]).get(parameter, {}).get("Tier") == "Advanced":
        tier, note = "Advanced", "it was advanced already, and Parameter Store cannot make it standard again"
    ssm.put_parameter(
        Name=parameter,
        Value=value,
        Type="SecureString",  # under the AWS managed key aws/ssm: no KeyId
        Overwrite=True,
        Tier=tier,
        Description=f"Credential CAPPI sends to club source {users}; set with cappi secrets set",
    )
    return Stored(parameter, tier, size, note)


def _users(registry: ClubRegistry, secret_name: str) -> str:
    return ", ".join(s.name for s in registry.sources if secret_name in s.auth.secret_names)


def set_secret(target: CredentialTarget, name: str, stdin: TextIO = sys.stdin) -> Stored:
    """Store the club's credential for source `name`, read without echo (or from stdin when piped)."""
    source = _source(target, name)
    if not source.auth.secret:
        raise TargetError(f"source {name!r} authenticates with {source.auth.type!r}, which needs no secret")
    parameter = parameter_name(source.auth.secret)
    if stdin.isatty():
        value = getpass.getpass(f"credential for {name} ({source.auth.type}, stored in SSM parameter {parameter}): ")
    else:
        value = stdin.read().rstrip("\r\n")
    if not value:
        raise TargetError("no value given: nothing was stored")
    return store(target.client("ssm"), source.auth.secret, value, _users(target.registry, source.auth.secret))


@dataclass(frozen=True)
class Migration:
    secret: str
    outcome: str  # copied, kept, missing
    detail: str
    needed: bool  # an enabled source reads it

    def line(self) -> str:
        return f"{parameter_name(self.secret)}: {self.outcome}: {self.detail}"


def migrate(target: CredentialTarget, *, overwrite: bool = False) -> list[Migration]:
    """Copy each registry secret's value from Secrets Manager into its parameter; a parameter that exists already
    is kept (it may hold a newer value set with `cappi secrets set`) unless `overwrite`."""
    ssm, secrets = target.client("ssm"), target.client("secretsmanager")
    registry = target.registry
    needed = {n for s in registry.enabled_sources for n in s.auth.secret_names}
    existing = existing_parameters(ssm, (parameter_name(n) for n in registry.secret_names))
    done = []
    for name in registry.secret_names:
        users = _users(registry, name)
        if parameter_name(name) in existing and not overwrite:
            detail = "already set in SSM, kept (--overwrite replaces it with the Secrets Manager value)"
            done.append(Migration(name, "kept", detail, name in needed))
            continue
        try:
            value = secrets.get_secret_value(SecretId=name).get("SecretString")
        except Exception as exc:
            code = aws_error_code(exc)
            if code == "ResourceNotFoundException":
                detail = f"no such secret in Secrets Manager: set it with `cappi secrets set` ({users})"
            elif code == "InvalidRequestException":
                detail = f"scheduled for deletion? `aws secretsmanager restore-secret --secret-id {name}`, then migrate"
            else:
                detail = f"cannot read the secret: {code}"
            done.append(Migration(name, "missing", detail, name in needed))
            continue
        if not value:
            detail = f"the secret holds no text value: set it with `cappi secrets set` ({users})"
            done.append(Migration(name, "missing", detail, name in needed))
            continue
        stored = store(ssm, name, value, users)
        done.append(Migration(name, "copied", f"from Secrets Manager into {stored.describe()}", name in needed))
    return done


def add_secrets_commands(commands: Any, subcommand: Callable[..., Any], stage_only: Any) -> None:
    """`cappi secrets set` and `cappi secrets migrate` (`subcommand` is cli.main's, with examples and exit codes)."""
    secrets = commands.add_parser(
        "secrets",
        help="club credentials in SSM (`cappi secrets set SOURCE`, `cappi secrets migrate`)",
        description="Club credentials: each registry secret name is the SSM SecureString parameter '/' + name.",
    )
    actions = secrets.add_subparsers(dest="secrets_command", metavar="ACTION", required=True)
    secret_set = subcommand(
        actions,
        "set",
        summary="store (or rotate) the credential of a source's club in its SSM parameter",
        description="Store a club's credential in the SSM SecureString parameter its registry entry names ('/' + "
        "the secret name; overwriting it is a rotation, which ingest reads within its cache age, 5 minutes). "
        "Standard tier (free) up to 4 KB; a longer value (an mTLS certificate chain and key) goes to the advanced "
        "tier ($0.05 a month), and the command says which. The value is read from a prompt that does not echo, "
        "or from standard input when piped; never from the command line. No deployed stack needed.",
        examples="examples:\n  cappi secrets set aaa-example --stage prod\n"
        "  pass show clubs/aaa | cappi secrets set aaa-example --stage prod",
    )
    secret_set.add_argument("source", metavar="SOURCE", help="the source's name in the registry")
    migrate = subcommand(
        actions,
        "migrate",
        summary="copy every registry secret's value from Secrets Manager into its SSM parameter",
        description="For stages deployed before credentials moved to SSM: copy each registry secret's value from "
        "Secrets Manager into its SSM parameter, printing names and tiers, never values. A parameter that exists "
        "is kept unless --overwrite. Run it before the first deploy of this version: that deploy removes the old "
        "secrets from the stack (stage deletes them; prod retains them, to delete by hand afterwards).",
        examples="example:\n  cappi secrets migrate --stage prod && make deploy STAGE=prod",
        exit_codes="exit codes: 0 every enabled source's credential is in SSM, 1 some is missing, 2 usage or access "
        "error",
        options=stage_only,
    )
    migrate.add_argument("--overwrite", action="store_true", help="replace parameters that exist already")
