"""Every Lambda asset is complete: each handler imports from its asset folder in a fresh interpreter whose path
holds nothing else but a copy of boto3 (which the Lambda runtime provides), and so do the modules it imports
lazily. The deployed assets carry arm64 wheels, which cannot load here, so the test builds the same asset (same
package lists, same pins, same code and registry) for this machine's platform.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra import bundling
from infra.bundling import LAMBDA_PLATFORM, Platform, build_asset, bytecode_compiler, install_packages, pins
from infra.functions import ARCHITECTURE, FUNCTIONS, QUERY, RUNTIME, FunctionSpec

ROOT = bundling.ROOT
STAGE_REGISTRY = ROOT / "clubs" / "stage.json"
LOCAL = Platform.this_machine()

# Runs in the fresh interpreter (-I: no environment, user site or script folder; -S: no site-packages).
PROBE = """
import importlib, json, sys
paths, handler_module, names = json.loads(sys.argv[1])
sys.path[:0] = paths
report = {"missing": {}}
for name in [handler_module, *names]:
    try:
        importlib.import_module(name)
    except ImportError as exc:
        report["missing"][name] = f"{type(exc).__name__}: {exc}"
module = sys.modules.get(handler_module)
report["handler_file"] = getattr(module, "__file__", None)
report["handler_callable"] = callable(getattr(module, "handler", None))
from cappi.domain.registry import load_registry
from cappi.settings import DEFAULT_CLUBS_FILE
report["clubs_file"] = DEFAULT_CLUBS_FILE
report["sources"] = [s.name for s in load_registry(DEFAULT_CLUBS_FILE).sources]
report["third_party"] = sorted(
    {m.split(".")[0] for m, mod in sys.modules.items() if getattr(mod, "__file__", None)
     and any(mod.__file__.startswith(p) for p in paths) and not m.startswith("cappi")}
)
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def runtime_boto3() -> Path:
    """Stands in for the runtime's boto3: boto3 and what it depends on, for this interpreter, nothing else."""
    return install_packages(["boto3"], LOCAL)


def _module_file(root: Path, name: str) -> Path | None:
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of `tree` but those under `if TYPE_CHECKING:`, which never run (type checkers read them)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skipped.update(id(inner) for statement in node.body for inner in ast.walk(statement))
    return [node for node in ast.walk(tree) if id(node) not in skipped]


def import_closure(root: Path, start: str) -> tuple[set[str], set[str]]:
    """The `cappi` modules reachable from `start` through any import statement (inside functions too: handlers
    import their adapters lazily), and every other module those statements name."""
    own: set[str] = set()
    others: set[str] = set()
    queue = [start]
    while queue:
        name = queue.pop()
        path = _module_file(root, name)
        if name in own or path is None:
            continue
        own.add(name)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join([*anchor, module] if module else anchor)
                targets = [module, *(f"{module}.{alias.name}" for alias in node.names)]
            else:
                continue
            for target in targets:
                top = target.split(".")[0]
                if top == "cappi":
                    queue.append(target)
                elif top != "__future__" and target in (getattr(node, "module", None), *[a.name for a in node.names]):
                    others.add(target)
    return own, others


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.role)
def test_each_handler_imports_from_its_asset_with_only_boto3_beside_it(spec: FunctionSpec, runtime_boto3: Path) -> None:
    asset = build_asset(spec.packages, STAGE_REGISTRY, LOCAL).path
    own, others = import_closure(asset, spec.module)
    assert spec.module in own
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": spec.service,
        "POWERTOOLS_METRICS_NAMESPACE": "CAPPI",
        "CAPPI_TABLE_NAME": "cappi-test-snapshots",
        "CAPPI_INGEST_FUNCTION": "cappi-test-ingest",
    }
    argument = json.dumps([[str(asset), str(runtime_boto3)], spec.module, sorted(own | others)])
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE, argument],
        capture_output=True,
        text=True,
        env=environment,
        cwd=asset,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["missing"] == {}, f"{spec.role}: modules missing from the asset: {report['missing']}"
    assert report["handler_file"].startswith(str(asset))
    assert Path(report["clubs_file"]) == asset / "clubs.json"
    assert report["sources"] == [s["name"] for s in json.loads(STAGE_REGISTRY.read_text())["sources"]]
    assert report["handler_callable"], f"{spec.handler} is not callable"


def test_the_query_asset_stays_small() -> None:
    """Cold starts read the whole asset: the query function carries Powertools and nothing for the feed client."""
    asset = build_asset(QUERY.packages, STAGE_REGISTRY, LAMBDA_PLATFORM).path
    for absent in ("requests", "charset_normalizer", "jwt", "cryptography", "boto3", "botocore"):
        assert not (asset / absent).exists(), absent
    size = sum(p.stat().st_size for p in asset.rglob("*") if p.is_file())
    assert size < 8 * 1024 * 1024, f"query asset is {size / 1e6:.1f} MB"


def test_deployed_assets_hold_arm64_wheels_the_code_and_the_registry_but_not_boto3() -> None:
    ingest = next(s for s in FUNCTIONS if s.role == "ingest")
    asset = build_asset(ingest.packages, STAGE_REGISTRY, LAMBDA_PLATFORM).path
    binaries = sorted(p.name for p in asset.rglob("*.so"))
    assert binaries, "expected the compiled wheels of the ingest function's dependencies"
    assert all("aarch64" in name and "cpython-313" in name for name in binaries), binaries
    for runtime_provided in ("boto3", "botocore", "s3transfer"):
        assert not (asset / runtime_provided).exists()
    assert (asset / "clubs.json").read_bytes() == STAGE_REGISTRY.read_bytes()
    assert (asset / "cappi" / "handlers" / "ingest.py").is_file()
    tag = ".cpython-" + LAMBDA_PLATFORM.python.replace(".", "") + ".pyc"
    foreign = [p for p in asset.rglob("*.pyc") if not p.name.endswith(tag)]
    assert foreign == [], "bytecode of another Python than the runtime's has no place in the asset"


def test_a_rebuild_with_the_same_inputs_reuses_the_cache_and_new_code_reuses_the_packages(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = build_asset(QUERY.packages, STAGE_REGISTRY, LAMBDA_PLATFORM)

    real_run = bundling.subprocess.run

    def no_pip(command: list[str], **kwargs: object) -> object:
        if "pip" in command:
            raise AssertionError("pip ran although its inputs did not change")
        return real_run(command, **kwargs)  # compiling a new asset's bytecode is expected

    monkeypatch.setattr(bundling.subprocess, "run", no_pip)
    assert build_asset(QUERY.packages, STAGE_REGISTRY, LAMBDA_PLATFORM) == first
    other_registry = tmp_path / "clubs.json"
    other_registry.write_text('{"sources": []}\n')
    second = build_asset(QUERY.packages, other_registry, LAMBDA_PLATFORM)
    assert second.hash != first.hash
    assert (second.path / "clubs.json").read_text() == '{"sources": []}\n'


def test_lambda_pins_agree_with_the_project_requirements() -> None:
    lambda_pins = pins(bundling.PINS_FILE)
    project = pins(ROOT / "requirements.txt")
    shared = set(lambda_pins) & set(project)
    assert shared >= {"aws-lambda-powertools", "requests", "urllib3", "boto3"}
    assert {name: lambda_pins[name] for name in shared} == {name: project[name] for name in shared}
    for spec in FUNCTIONS:
        assert all(bundling.normalize(p) in lambda_pins for p in spec.packages), spec.role


def test_runtime_and_architecture_match_the_wheels_built() -> None:
    assert RUNTIME.name == f"python{bundling.LAMBDA_PYTHON}"
    assert ARCHITECTURE.name == "arm64"
    assert bundling.LAMBDA_WHEEL_PLATFORM.endswith("_aarch64")


@pytest.mark.skipif(bytecode_compiler(LAMBDA_PLATFORM.python) is None, reason="no python3.13 on this machine")
def test_lambda_assets_carry_bytecode_for_the_runtime_python() -> None:
    """Lambda's task root is read-only: without .pyc files every cold start compiles every module again."""
    asset = build_asset(QUERY.packages, STAGE_REGISTRY, LAMBDA_PLATFORM).path
    tag = "cpython-" + LAMBDA_PLATFORM.python.replace(".", "")
    for module in (
        "cappi/handlers/query",
        "cappi/adapters/dynamo/shard_source",
        "aws_lambda_powertools/logging/logger",
    ):
        source = asset / f"{module}.py"
        compiled = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        assert compiled.is_file(), compiled
        flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
        assert flags == 0b01, "hash-based and unchecked, so file times lost in the zip do not matter"
