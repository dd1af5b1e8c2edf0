"""One job per module: no module of the product's Python (functions/, local/, infra/, cli/) is over 500 lines, counted
as physical lines (docstrings, comments and blank lines included). A module that grows past it holds more than one
job: split it by job, as local/gateway/, local/jwt_authorizer/ and cli/preflight/ are."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("functions", "local", "infra", "cli")
MAX_LINES = 500


def test_no_module_is_over_500_lines() -> None:
    modules = [path for folder in FOLDERS for path in sorted((ROOT / folder).rglob("*.py"))]
    assert len(modules) > 50  # the folders were found
    sizes = {str(path.relative_to(ROOT)): len(path.read_bytes().splitlines()) for path in modules}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}
