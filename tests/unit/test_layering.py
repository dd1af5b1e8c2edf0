"""The domain stays free of AWS and HTTP libraries; handlers reach them only through adapters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
DOMAIN_MODULES = sorted(p.stem for p in (FUNCTIONS / "cappi" / "domain").glob("*.py") if p.stem != "__init__")


def test_domain_imports_neither_boto3_nor_requests() -> None:
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(FUNCTIONS)!r})\n"
        f"for name in {DOMAIN_MODULES!r}:\n"
        "    __import__('cappi.domain.' + name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'boto3', 'botocore', 'requests', 'urllib3'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    assert len(DOMAIN_MODULES) >= 6
    assert out == ""


def test_ingest_metrics_carry_only_the_source_dimension() -> None:
    from cappi.observability import metrics

    assert not metrics.service
