"""CloudFormation as the CLI reads it: a synthesized template (read, its resources by type, its values resolved
where they are built only from pseudo parameters) and the stack states that matter before and after a deploy."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cli.target import TargetError

# Stack states in which the stack holds none of its named resources, so any that exists blocks the create.
NOT_CREATED = frozenset(
    {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED", "CREATE_FAILED", "REVIEW_IN_PROGRESS"}
)
HEALTHY = frozenset(
    {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"}
)


def read_template(path: Path, stage: str) -> dict[str, Any]:
    try:
        template = json.loads(path.read_text())
    except FileNotFoundError:
        raise TargetError(
            f"no template at {path}: run `make synth` (both stages) or `make deploy STAGE={stage}` (synthesizes "
            f"first), or pass --template"
        ) from None
    except (OSError, ValueError) as exc:
        raise TargetError(f"cannot read template {path}: {exc}; run `make synth` again") from None
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise TargetError(f"{path} is not a CloudFormation template (no Resources): run `make synth` again")
    return template


def resources(template: dict[str, Any], *types: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(logical id, resource, properties) of every resource of the given types, in template order."""
    for logical_id, resource in template.get("Resources", {}).items():
        if isinstance(resource, dict) and resource.get("Type") in types:
            yield logical_id, resource, resource.get("Properties") or {}


def resolve(value: Any, pseudo: dict[str, str]) -> str | None:
    """A template value as a string when it is one, or is built only from pseudo parameters; else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((function, argument),) = value.items()
    if function == "Ref" and isinstance(argument, str):
        return pseudo.get(argument)
    if function == "Fn::Join" and isinstance(argument, list) and len(argument) == 2:
        separator, parts = argument
        resolved = [resolve(p, pseudo) for p in parts] if isinstance(parts, list) else [None]
        return None if None in resolved or not isinstance(separator, str) else separator.join(map(str, resolved))
    if function == "Fn::Sub" and isinstance(argument, str):
        text = re.sub(r"\$\{(AWS::[A-Za-z]+)\}", lambda m: pseudo.get(m.group(1), m.group(0)), argument)
        return None if "${" in text else text
    return None
