"""`cappi smoke --stage S`: after a deploy, ask the deployed API what a tester app would, and hold the answers to the
API's contract (`cappi.contracts.api`: status, Content-Type, body shape, promised headers).

The stack's outputs give the API's URL, its deployed template the authorizer's issuer and audience, and the stage's
registry (`clubs/<stage>.json`) a club to ask about (technician `SMOKETEST`, which has no calls). Every run sends
one request without a token, which must be refused with 401 and a JSON body (the route and its authorizer are in
place). With a smoke client's credentials in the environment it also gets a token from the issuer (client
credentials, as Auth0 issues them) and asks for real:

    CAPPI_SMOKE_CLIENT_ID, CAPPI_SMOKE_CLIENT_SECRET   a machine-to-machine application of the stage's Auth0 tenant
                                                       for smoke checks only, authorized for the stage's API with
                                                       scope read:callids (docs/operations.md)

That answer must be 200 (the technician's calls) or 404 (a club the stage does not serve); 503 `no_snapshot_yet`
(the club was never polled: a new or disabled source) is a warning.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from typing import Any

from cappi.contracts import api as contract
from cappi.contracts.stack import stack_name
from cappi.domain.registry import RegistryError, load_registry
from cli.aws import Clients, aws_clients, aws_error_code, http_session
from cli.cloudformation import HEALTHY, resources
from cli.findings import ERROR, FAIL, OK, WARN, Finding, report
from cli.target import ROOT, TargetError

SMOKE_TECH_ID = "SMOKETEST"  # 1-32 letters or digits, as the route requires
CLIENT_ID_ENV, CLIENT_SECRET_ENV = "CAPPI_SMOKE_CLIENT_ID", "CAPPI_SMOKE_CLIENT_SECRET"
HTTP_TIMEOUT_S = 10.0
_SHOWN = 120  # characters of an unexpected body quoted in a finding


def rollback_advice(stage: str, alarms: list[str]) -> str:
    watch = f"; watch the alarms {', '.join(alarms)}" if alarms else ""
    return (
        f"if this deploy caused it, roll back by hand: check out the last good commit and run `make deploy "
        f"STAGE={stage}` (docs/operations.md, 'Updating and rolling back a stage'); the query function's log and the "
        f"API's access log say why{watch}"
    )


# --- the contract ---------------------------------------------------------------------------------------------


def _schema(ref_or_schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = ref_or_schema.get("$ref")
    return contract.SCHEMAS[ref.rsplit("/", 1)[1]] if isinstance(ref, str) else ref_or_schema


def matches(value: Any, schema: Mapping[str, Any]) -> bool:
    """`value` fits `schema`: the JSON Schema subset the API contract uses (type, items, min/maxItems, required,
    properties, additionalProperties, oneOf, $ref)."""
    schema = _schema(schema)
    if "oneOf" in schema and not any(matches(value, s) for s in schema["oneOf"]):
        return False
    kind = schema.get("type")
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "array":
        if not isinstance(value, list):
            return False
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            return False
        return "items" not in schema or all(matches(v, schema["items"]) for v in value)
    if kind == "object":
        if not isinstance(value, dict) or any(k not in value for k in schema.get("required", ())):
            return False
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is False and set(value) - set(properties):
            return False
        return all(matches(value[k], s) for k, s in properties.items() if k in value)
    return True


def contract_problems(status: int, headers: Mapping[str, str], body: bytes) -> list[str]:
    """What in an answer of `status` breaks the contract: Content-Type, body shape, required headers."""
    response = contract.RESPONSES.get(status)
    if response is None:
        return [f"status {status} is not one the API documents"]
    problems = []
    content = response.get("content") or {}
    if "application/json" in content:
        kind = headers.get("Content-Type", "")
        if kind.split(";")[0].strip().lower() != "application/json":
            problems.append(f"Content-Type {kind or 'missing'!r}, not application/json")
        try:
            document = json.loads(body)
        except ValueError:
            problems.append(f"body is not JSON: {_excerpt(body)}")
        else:
            schema = content["application/json"]["schema"]
            if not matches(document, schema):
                problems.append(f"body {_excerpt(body)} is not the documented shape ({_schema_names(schema)})")
    for name, header in (response.get("headers") or {}).items():
        if header.get("required") and not headers.get(name):
            problems.append(f"header {name} missing")
    return problems


def _schema_names(schema: Mapping[str, Any]) -> str:
    refs = [s.get("$ref", "") for s in schema.get("oneOf", [schema])]
    return " or ".join(r.rsplit("/", 1)[-1] for r in refs if r)


def _excerpt(body: bytes) -> str:
    text = body[:_SHOWN].decode("utf-8", "replace")
    return repr(text + ("..." if len(body) > _SHOWN else ""))


# --- the stack ------------------------------------------------------------------------------------------------


def read_stack(client: Clients, stage: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(status, outputs, template) of the stage's stack; a missing or unreadable stack is exit 2."""
    from botocore.exceptions import NoCredentialsError

    cloudformation, name = client("cloudformation"), stack_name(stage)
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
        body = cloudformation.get_template(StackName=name, TemplateStage="Original")["TemplateBody"]
    except NoCredentialsError:
        raise TargetError("no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID for the stage's account") from None
    except Exception as exc:
        if aws_error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            raise TargetError(f"stack {name} does not exist: deploy it first (make deploy STAGE={stage})") from None
        raise TargetError(f"cannot read stack {name}: {aws_error_code(exc)}: {exc}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    template = json.loads(body) if isinstance(body, str) else dict(body)
    return stacks[0]["StackStatus"], outputs, template


def authorizer(template: Mapping[str, Any]) -> tuple[str, str]:
    for _, _, props in resources(dict(template), "AWS::ApiGatewayV2::Authorizer"):
        jwt = props.get("JwtConfiguration")
        if isinstance(jwt, dict) and isinstance(jwt.get("Issuer"), str) and jwt.get("Audience"):
            return jwt["Issuer"], str(jwt["Audience"][0])
    raise TargetError("the deployed template has no JWT authorizer with a plain issuer and audience")


def api_alarms(template: Mapping[str, Any]) -> list[str]:
    """The alarms that watch the API and the query function, by their names in the template."""
    names = [p.get("AlarmName") for _, _, p in resources(dict(template), "AWS::CloudWatch::Alarm")]
    return [n for n in names if isinstance(n, str) and ("-api-" in n or "-query-" in n)]


def smoke_club(stage: str) -> int:
    """A club of the stage's registry: an enabled source's first, else any (it then answers 503 or 404)."""
    path = ROOT / "clubs" / f"{stage}.json"
    try:
        registry = load_registry(path)
    except (OSError, RegistryError) as exc:
        raise TargetError(str(exc)) from None
    for source in (*registry.enabled_sources, *registry.sources):
        if source.club_ids:
            return min(source.club_ids)
    raise TargetError(f"{path} names no club to ask about")


# --- the requests ---------------------------------------------------------------------------------------------


def _get(http: Any, url: str, headers: dict[str, str]) -> tuple[Any, str]:
    try:
        return http.get(url, headers=headers, timeout=HTTP_TIMEOUT_S, allow_redirects=False), ""
    except Exception as exc:  # requests' connection errors and timeouts
        return None, f"{type(exc).__name__}: {exc}"


def check_unauthenticated(http: Any, url: str, advice: str) -> Finding:
    response, failure = _get(http, url, {"Accept": "application/json"})
    if response is None:
        return Finding("route", FAIL, f"GET {url} failed: {failure}.", f"check the stack's ApiUrl output; {advice}.")
    if response.status_code != 401:
        how = "the route answers without a token" if response.status_code < 400 else "the route is not as deployed"
        return Finding(
            "route",
            FAIL,
            f"without a token, GET {url} answered {response.status_code} {_excerpt(response.content)}, not 401: {how}.",
            advice + ".",
        )
    problems = contract_problems(401, response.headers, response.content)
    if problems:
        return Finding(
            "route", FAIL, f"without a token, the 401 breaks the contract: {'; '.join(problems)}.", advice + "."
        )
    shown = _excerpt(response.content)
    return Finding("route", OK, f"without a token: 401 {shown}: the route and its authorizer answer.")


def get_token(http: Any, issuer: str, audience: str, client_id: str, secret: str) -> tuple[str | None, Finding | None]:
    """(Authorization header, None) or (None, what went wrong), through cappi-client's token provider."""
    from cappi_client.errors import CappiError, TokenError
    from cappi_client.retry import Clock, Deadline, RetryPolicy
    from cappi_client.tokens import Credentials, TokenKey, TokenProvider

    clock, policy = Clock(), RetryPolicy(deadline_s=20.0, max_attempts=2, request_timeout_s=HTTP_TIMEOUT_S)
    key = TokenKey(f"{issuer}oauth/token", client_id, audience)
    provider = TokenProvider(key, Credentials(client_id, secret), lambda: http, policy=policy, clock=clock)
    try:
        return provider.get(Deadline(policy.deadline_s, clock)).authorization, None
    except CappiError as exc:
        refused = isinstance(exc, TokenError) and exc.status in (400, 401, 403)
        fix = (
            f"check {CLIENT_ID_ENV} and {CLIENT_SECRET_ENV}: a machine-to-machine application of the tenant, "
            f"authorized for the API {audience} with scope {contract.SCOPE}"
            if refused
            else f"check that {issuer} answers (Auth0 status page), then run `cappi smoke` again"
        )
        return None, Finding("token", ERROR, f"no smoke token from {key.token_url}: {exc}.", fix + ".")


def check_authenticated(http: Any, url: str, authorization: str, advice: str) -> Finding:
    response, failure = _get(http, url, {"Accept": "application/json", "Authorization": authorization})
    if response is None:
        return Finding("query", FAIL, f"GET {url} failed: {failure}.", advice + ".")
    status, body = response.status_code, response.content
    problems = contract_problems(status, response.headers, body) if status in (200, 404, 503) else []
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    code = document.get("error") if isinstance(document, dict) else None
    if status == 404 and not problems and code is None:
        problems.append("API Gateway's own 404: the route is not deployed")
    if status in (200, 404) and not problems:
        what = "the technician's calls" if status == 200 else f"{code}: the stage does not serve this club"
        return Finding("query", OK, f"with a token: {status} {_excerpt(body)} ({what}), as the contract says.")
    if status == 503 and code == "no_snapshot_yet" and not problems:
        return Finding(
            "query",
            WARN,
            "with a token: 503 no_snapshot_yet: the club was never polled (a new or disabled source); the route, "
            "authorizer, function and table answer.",
            "enable the source and wait one schedule period for a 200, or check `cappi status`.",
        )
    if status in (401, 403):
        challenge = response.headers.get("WWW-Authenticate", "")
        return Finding(
            "query",
            FAIL,
            f"the API refused the smoke token: {status} {_excerpt(body)}{f' ({challenge})' if challenge else ''}.",
            "the stack's issuer and audience must be the tenant's and the API's (`cappi preflight`), and the smoke "
            f"application needs scope {contract.SCOPE}; the access log's authError says which.",
        )
    reason = "; ".join(problems) if problems else f"answered {status} {_excerpt(body)}"
    return Finding("query", FAIL, f"with a token, GET {url}: {reason}.", advice + ".")


def command(
    args: argparse.Namespace, *, clients: Clients | None = None, http: Any = None, env: Mapping[str, str] = os.environ
) -> int:
    """`cappi smoke`: `clients`, `http` and `env` replace boto3, requests and the environment (tests)."""
    if clients is None:
        clients, region = aws_clients(args.region)
    else:
        region = args.region or clients("cloudformation").meta.region_name
    status, outputs, template = read_stack(clients, args.stage)
    api_url = outputs.get("ApiUrl")
    if not api_url:
        raise TargetError(f"stack {stack_name(args.stage)} has no output ApiUrl: deploy it again")
    issuer, audience = authorizer(template)
    club = smoke_club(args.stage)
    url = api_url.rstrip("/") + contract.path_for(club, SMOKE_TECH_ID)
    http = http or http_session()
    advice = rollback_advice(args.stage, api_alarms(template))
    findings = []
    if status not in HEALTHY:
        findings.append(Finding("stack", WARN, f"stack {stack_name(args.stage)} is {status}."))
    elif status.endswith("ROLLBACK_COMPLETE"):
        findings.append(
            Finding("stack", WARN, f"stack {stack_name(args.stage)} is {status}: its last deploy was rolled back.")
        )
    findings.append(check_unauthenticated(http, url, advice))
    client_id, secret = env.get(CLIENT_ID_ENV, "").strip(), env.get(CLIENT_SECRET_ENV, "").strip()
    if client_id and secret:
        authorization, problem = get_token(http, issuer, audience, client_id, secret)
        findings.append(problem or check_authenticated(http, url, authorization or "", advice))
    else:
        findings.append(
            Finding(
                "query",
                WARN,
                "no smoke credentials: only the refusal of a request without a token was checked.",
                f"set {CLIENT_ID_ENV} and {CLIENT_SECRET_ENV} (a smoke-test application of the stage's Auth0 tenant, "
                f"authorized for {audience} with scope {contract.SCOPE}) for the full check.",
            )
        )
    where = {"stage": args.stage, "stack": stack_name(args.stage), "region": region, "url": url, "club": club}
    headline = f"smoke {stack_name(args.stage)} in {region}: {url}"
    return report(findings, where=where, headline=headline, as_json=args.json)
