"""Generate the OpenAPI document of the query API from the Lambda's own resolver.

    python -m tools.openapi            # rewrite docs/openapi.json
    python -m tools.openapi --check    # exit 1 if docs/openapi.json is out of date

Pydantic (which Powertools needs to build the document) is a development dependency only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cappi.contracts.api import ENVIRONMENTS, SCOPE, SCOPE_DESCRIPTION

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "openapi.json"


def build() -> str:
    from aws_lambda_powertools.event_handler.openapi.models import (
        OAuth2,
        OAuthFlowClientCredentials,
        OAuthFlows,
        Server,
    )

    from cappi.handlers.query import app

    production, development = ENVIRONMENTS["prod"], ENVIRONMENTS["stage"]
    schema = app.get_openapi_json_schema(
        title="CAPPI: Club Assist API for open call IDs",
        version="1.0.0",
        description=(
            "Tester apps ask which call IDs are open for the technician logged in. Get a token from the "
            "environment's Auth0 tenant with the client-credentials grant (audience: the environment's base URL, "
            f"scope `{SCOPE}`), then call the one endpoint with `Authorization: Bearer <token>`. "
            'Errors from CAPPI are JSON objects `{"error": code, "message": text}`; API Gateway\'s own refusals '
            '(unknown route, bad token) are `{"message": text}`.'
        ),
        servers=[Server(url=env.base_url, description=env.title) for env in ENVIRONMENTS.values()],
        security_schemes={
            "auth0": OAuth2(
                flows=OAuthFlows(
                    clientCredentials=OAuthFlowClientCredentials(
                        tokenUrl=production.token_url, scopes={SCOPE: SCOPE_DESCRIPTION}
                    )
                ),
                description=f"Auth0 client credentials; the {development.title} tenant's token URL is "
                + development.token_url,
            )
        },
        security=[{"auth0": [SCOPE]}],
    )
    document = json.loads(schema)
    _describe_path_rules(document)
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


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
