"""The floors import only downward, and inside functions/ each layer keeps to its neighbours:

- functions/ (what Lambda runs) never imports infra/, local/, tools/ or the CDK app;
- the domain imports no adapter, handler, contract of another floor, nor any AWS or HTTP library;
- contracts (names that cross floors) import only the domain;
- adapters never import handlers;
- handlers are the only place in functions/ where adapters meet the domain: no other module imports adapters;
- infra/, local/, tools/ and cli/ stand side by side: none imports another.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "functions" / "cappi"
OUTER_FLOORS = {"infra", "local", "tools", "app", "aws_cdk", "constructs"}
AWS_OR_HTTP = {"boto3", "botocore", "requests", "urllib3", "aws_lambda_powertools", "jwt"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at any depth (imports inside functions count: they run too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


MODULES = {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in {"domain", "adapters", "handlers"}) else ""


def offenders(rule: str) -> list[str]:
    problems = []
    for module, imported in MODULES.items():
        for name in sorted(imported):
            top = name.split(".")[0]
            target = layer(name) if top == "cappi" else ""
            here = layer(module)
            bad = {
                "outer": top in OUTER_FLOORS,
                "domain": here == "domain" and (target in {"adapters", "handlers", "contracts"} or top in AWS_OR_HTTP),
                "contracts": here == "contracts" and (target in {"adapters", "handlers"} or top in AWS_OR_HTTP),
                "adapters": here == "adapters" and target == "handlers",
                "meeting": here not in {"adapters", "handlers"} and target == "adapters",
            }[rule]
            if bad:
                problems.append(f"{module} imports {name}")
    return problems


def test_the_package_has_the_layers_this_test_checks() -> None:
    layers = {layer(m) for m in MODULES}
    assert {"domain", "adapters", "handlers", "contracts"} <= layers
    assert len([m for m in MODULES if layer(m) == "domain"]) >= 8


@pytest.mark.parametrize("rule", ["outer", "domain", "contracts", "adapters", "meeting"])
def test_imports_follow_the_layering(rule: str) -> None:
    assert offenders(rule) == []


def test_a_violation_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # The check itself: a domain module importing boto3 or an adapter, or a handler-free module meeting adapters.
    monkeypatch.setitem(MODULES, "cappi.domain.fake", {"boto3", "cappi.adapters.dynamo.store"})
    monkeypatch.setitem(MODULES, "cappi.settings_fake", {"cappi.adapters.dynamo.store"})
    assert offenders("domain") == [
        "cappi.domain.fake imports boto3",
        "cappi.domain.fake imports cappi.adapters.dynamo.store",
    ]
    assert offenders("meeting") == [
        "cappi.domain.fake imports cappi.adapters.dynamo.store",
        "cappi.settings_fake imports cappi.adapters.dynamo.store",
    ]


def test_domain_modules_load_without_aws_or_http_libraries() -> None:
    names = sorted(m for m in MODULES if layer(m) == "domain")
    code = (
        "import sys\n"
        f"for name in {names!r}:\n"
        "    __import__(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(AWS_OR_HTTP)!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    assert out == ""


SIDES = {
    "infra": {"local", "tools", "cli", "app"},
    "local": {"infra", "tools", "cli", "app"},
    "tools": {"infra", "local", "cli", "app"},
    "cli": {"infra", "local", "tools", "app"},
}


@pytest.mark.parametrize("side", sorted(SIDES))
def test_the_upper_floors_stand_side_by_side(side: str) -> None:
    files = sorted((ROOT / side).rglob("*.py"))
    assert files
    problems = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files
        for name in sorted(imports_of(path))
        if name.split(".")[0] in SIDES[side]
    ]
    assert problems == []
