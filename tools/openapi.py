"""Generate the OpenAPI document of the query API from its contract (`cappi.contracts.api`), through Powertools.

    python -m tools.openapi            # rewrite docs/openapi.json
    python -m tools.openapi --check    # exit 1 if docs/openapi.json is out of date

The query Lambda serves its one route without Powertools' event handler (a third of its cold start); the route is
declared here on a Powertools resolver with the contract's path, summary and operation ID, and Powertools writes
the document. Pydantic (which Powertools needs for that) is a development dependency only. Powertools gives every
declared response the route's return schema when it has no content of its own (a 304 would "return" an array),
so the responses, their schemas and the error codes are written here from `cappi.contracts.api`, and the codes
from the code that raises them.
"""

from __future__ import annotations

import ast
import copy
import inspect
import json
import sys
import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response  # Response: read in an annotation

from cappi.contracts import api
from cappi.contracts.api import ENVIRONMENTS, SCOPE, SCOPE_DESCRIPTION

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "openapi.json"
PACKAGE = ROOT / "functions" / "cappi"  # where the query Lambda's refusals and errors are raised


def build() -> str:
    from aws_lambda_powertools.event_handler.openapi.models import (
        OAuth2,
        OAuthFlowClientCredentials,
        OAuthFlows,
        Server,
    )

    app = _documented_resolver()
    production = ENVIRONMENTS["prod"]
    token_urls = "; ".join(f"{env.title} ({env.base_url}): {env.token_url}" for env in _servers())
    schema = app.get_openapi_json_schema(
        title=api.DOCUMENT_TITLE,
        version="1.0.0",
        summary=api.DOCUMENT_SUMMARY,
        description=(
            f"{api.DOCUMENT_SUMMARY}. Tester apps ask which call IDs are open for the technician logged in. "
            "Get a token from the environment's Auth0 tenant with the client-credentials grant "
            "(audience: the environment's base URL, "
            f"scope `{SCOPE}`), then call the one endpoint with `Authorization: Bearer <token>`. "
            'Errors from CAPPI are JSON objects `{"error": code, "message": text}` (schema `Error`); API Gateway\'s '
            'own refusals (bad token, throttling, unknown route) are `{"message": text}` (schema `GatewayError`). '
            f'Any other method or path gets 404 `{{"message":"Not Found"}}` (`components/responses/'
            f"{api.ROUTE_NOT_FOUND}`)."
        ),
        servers=[
            Server(
                url=env.base_url,
                description=f"{env.title} (stage `{env.stage}`): tokens from {env.token_url}, audience {env.audience}",
            )
            for env in _servers()
        ],
        security_schemes={
            "auth0": OAuth2(
                flows=OAuthFlows(
                    clientCredentials=OAuthFlowClientCredentials(
                        tokenUrl=production.token_url, scopes={SCOPE: SCOPE_DESCRIPTION}
                    )
                ),
                description=(
                    "Auth0 client credentials. Each server has its own tenant, and OpenAPI allows one token URL "
                    f"per flow (this one is {production.title}'s): {token_urls}. Send `audience` = the server's "
                    "URL in the token request."
                ),
            )
        },
        security=[{"auth0": [SCOPE]}],
    )
    document = json.loads(schema)
    _describe_path_rules(document)
    _declare_request_headers(document)
    _describe_responses(document, error_codes())
    _check_references(document)
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _documented_resolver() -> Any:
    """A resolver declaring the query route as the contract does; only its document is used."""
    app = APIGatewayHttpResolver()

    @app.get(
        api.RESOLVER_ROUTE,
        summary=api.OPERATION_SUMMARY,
        description=api.OPERATION_DESCRIPTION,
        responses=api.RESPONSES,
        tags=[api.OPERATION_TAG],
        operation_id=api.OPERATION_ID,
    )
    def open_call_ids(ClubId: str, TechId: str) -> Response[list[str]]:  # the path's own names
        raise NotImplementedError("documentation only: cappi.handlers.query serves this route")

    return app


def _servers() -> list[api.Environment]:
    """Production first: the flow's one token URL is production's, and generated clients default to the first."""
    return sorted(ENVIRONMENTS.values(), key=lambda env: env.stage != "prod")


def _describe_path_rules(document: dict) -> None:
    """Add the path parameters' rules, which the handler checks itself (Powertools' validation would pull
    pydantic into the Lambda's cold start)."""
    from cappi.domain.ids import MAX_TECH_ID_LEN

    rules = {
        "ClubId": ("^[0-9]{1,3}$", "The club's ID from the technician's profile: 1 to 3 digits.", "212"),
        "TechId": (
            f"^[A-Za-z0-9]{{1,{MAX_TECH_ID_LEN}}}$",
            "The technician's ID from the profile: ASCII letters and digits, matched case-insensitively.",
            "AB12",
        ),
    }
    for path in document["paths"].values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                pattern, description, example = rules[parameter["name"]]
                parameter["description"] = description
                parameter["example"] = example
                parameter["schema"] = {"type": "string", "pattern": pattern}


def _declare_request_headers(document: dict) -> None:
    """The optional `If-None-Match` header, after the path parameters (Powertools would need the handler's
    signature to declare it, and the Lambda reads it from the event itself)."""
    for path in document["paths"].values():
        for operation in path.values():
            operation.setdefault("parameters", []).append(copy.deepcopy(api.IF_NONE_MATCH_PARAMETER))


def _describe_responses(document: dict, codes: dict[str, set[int]]) -> None:
    """The contract's responses and schemas in place of Powertools' (its validation-error models are unused:
    the handler validates the path itself), with the `Error` codes and each status's codes in its description."""
    undeclared = sorted({status for statuses in codes.values() for status in statuses} - set(api.RESPONSES))
    if undeclared:
        raise ValueError(f"error codes are answered with statuses {undeclared}, which api.RESPONSES does not declare")
    schemas = copy.deepcopy(api.SCHEMAS)
    schemas[api.ERROR_SCHEMA]["properties"]["error"]["enum"] = sorted(codes)
    document["components"]["schemas"] = schemas
    document["components"]["responses"] = copy.deepcopy(api.SHARED_RESPONSES)
    for path in document["paths"].values():
        for operation in path.values():
            responses = {}
            for status, declared in sorted(api.RESPONSES.items()):
                response = copy.deepcopy(declared)
                own = sorted(code for code, statuses in codes.items() if status in statuses)
                if own:
                    response["description"] += " `error` codes: " + ", ".join(f"`{c}`" for c in own) + "."
                responses[str(status)] = response
            operation["responses"] = responses


def _check_references(document: dict) -> None:
    """Every local `$ref` points at something: a renamed schema fails the build, not a client."""
    for ref in _references(document):
        target: Any = document
        for token in ref.removeprefix("#/").split("/"):
            key = token.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or key not in target:
                raise ValueError(f"dangling $ref {ref}")
            target = target[key]


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


# --- the error codes, read from the code that raises them ---


def error_codes(files: Iterable[Path] | None = None) -> dict[str, set[int]]:
    """Every `error` code the query API can answer, and with which statuses.

    Read from the source, so a new code reaches the document (and the response tests) without a list to keep:
    each `Refused` subclass called with a literal code (status from `cappi.handlers.http.STATUS`), each such class
    that supplies its own code to `Refused.__init__`, and each `http.error(status, code, ...)` call. A code the
    scan cannot read (not a literal) is an error, never silently left out.
    """
    from cappi.domain import query as rules
    from cappi.handlers import http

    refusals = {cls.__name__: cls for cls in _subclasses(rules.Refused)}
    found: dict[str, set[int]] = {}
    for cls in refusals.values():
        if "code" not in inspect.signature(cls).parameters:  # the class passes a fixed code itself
            found.setdefault(_own_code(cls), set()).add(_status(cls, http.STATUS))
    for path in sorted(files if files is not None else PACKAGE.rglob("*.py")):
        for code, status in codes_in(path.read_text(), str(path), refusals, http.STATUS):
            found.setdefault(code, set()).add(status)
    return found


def codes_in(
    source: str, filename: str, refusals: dict[str, type], statuses: dict[Any, int]
) -> Iterator[tuple[str, int]]:
    """(code, status) for each refusal and `error(...)` call in one module's source."""
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        where = f"{filename}:{node.lineno}"
        name = _called_name(node)
        cls = refusals.get(name) if name else None
        if cls is not None and "code" in inspect.signature(cls).parameters:
            code = _argument(node, inspect.signature(cls), "code")
            yield _literal(code, where), _status(cls, statuses)
        elif _is_error_call(node):
            status, code = _argument_at(node, 0, "status"), _argument_at(node, 1, "code")
            if isinstance(code, ast.Attribute) and code.attr == "code":
                continue  # a refusal's own code (`exc.code`), found where the refusal is raised
            if not (isinstance(status, ast.Constant) and type(status.value) is int):
                raise ValueError(f"{where}: error(...) needs a literal status for the OpenAPI document")
            yield _literal(code, where), status.value


def _subclasses(cls: type) -> Iterator[type]:
    yield cls
    sub: type
    for sub in cls.__subclasses__():
        yield from _subclasses(sub)


def _status(cls: type, statuses: dict[Any, int]) -> int:
    for base in cls.__mro__:
        if base in statuses:
            return statuses[base]
    raise ValueError(f"{cls.__name__} has no status in cappi.handlers.http.STATUS")


def _own_code(cls: type) -> str:
    """The literal code a refusal class passes to `super().__init__` (the nearest `__init__` of its own)."""
    owner = next(base for base in cls.__mro__ if "__init__" in vars(base))
    tree = ast.parse(textwrap.dedent(inspect.getsource(owner)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "__init__":
            return _literal(_argument_at(node, 0, "code"), f"{owner.__qualname__}.__init__")
    raise ValueError(f"{owner.__qualname__}.__init__ sets no error code")


def _called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _is_error_call(node: ast.Call) -> bool:
    """`http.error(...)`, or `error(...)` as `cappi.handlers.http` calls itself (not `logger.error(...)`)."""
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr == "error" and isinstance(func.value, ast.Name) and func.value.id == "http"
    return isinstance(func, ast.Name) and func.id == "error"


def _argument(node: ast.Call, signature: inspect.Signature, name: str) -> ast.expr | None:
    position = list(signature.parameters).index(name)
    return _argument_at(node, position, name)


def _argument_at(node: ast.Call, position: int, name: str) -> ast.expr | None:
    if len(node.args) > position and not any(isinstance(a, ast.Starred) for a in node.args[: position + 1]):
        return node.args[position]
    return next((k.value for k in node.keywords if k.arg == name), None)


def _literal(node: ast.expr | None, where: str) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    raise ValueError(f"{where}: the error code is not a string literal, so the OpenAPI document cannot list it")


def main(argv: list[str]) -> int:
    document = build()
    if "--check" in argv:
        current = DOCUMENT.read_text() if DOCUMENT.exists() else ""
        if current != document:
            print(f"{DOCUMENT.relative_to(ROOT)} is out of date: run `python -m tools.openapi`", file=sys.stderr)
            return 1
        return 0
    DOCUMENT.parent.mkdir(exist_ok=True)
    DOCUMENT.write_text(document)
    print(f"wrote {DOCUMENT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
