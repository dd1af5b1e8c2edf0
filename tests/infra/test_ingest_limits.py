"""The ingest function's body cap and memory are stage settings, checked at synthesis and carried to the function."""

from __future__ import annotations

import pytest
from support.synth import cdk_context, synth

from cappi.settings import IngestSettings, SettingsError
from infra.config import ConfigError, StageConfig

MIB = 1024 * 1024


def test_the_default_cap_takes_a_million_call_feed_with_room() -> None:
    from cappi.adapters.club_client import ClientLimits

    assert IngestSettings.default("max_body_bytes") == ClientLimits().max_body_bytes  # one figure, two homes
    assert IngestSettings.default("max_body_bytes") >= 1.5 * 56_000_023  # bench/ingest.py's 1,000,000-call feed
    config = StageConfig.from_mapping("stage", cdk_context()["cappi:stage"])
    assert config.max_body_bytes == IngestSettings.default("max_body_bytes")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_body_bytes", MIB - 1),
        ("max_body_bytes", 256 * MIB + 1),
        ("ingest_memory_mb", 256),
        ("ingest_memory_mb", "big"),
    ],
)
def test_a_cap_or_memory_out_of_range_stops_synthesis(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        StageConfig.from_mapping("stage", {**cdk_context()["cappi:stage"], key: value})


def test_the_function_reads_a_cap_in_range_only() -> None:
    assert IngestSettings.from_env(
        {"CAPPI_TABLE_NAME": "t", "CAPPI_MAX_BODY_BYTES": str(200 * MIB)}
    ).max_body_bytes == (200 * MIB)
    with pytest.raises(SettingsError, match="CAPPI_MAX_BODY_BYTES"):
        IngestSettings.from_env({"CAPPI_TABLE_NAME": "t", "CAPPI_MAX_BODY_BYTES": str(512 * MIB)})


def test_the_stage_sets_the_functions_cap_and_memory() -> None:
    app = synth(**{"cappi:stages": ["stage"], "stage:max_body_bytes": str(200 * MIB), "stage:ingest_memory_mb": "2048"})
    ingest = next(
        r["Properties"]
        for r in app.resources("stage", "AWS::Lambda::Function").values()
        if r["Properties"]["FunctionName"] == "cappi-stage-ingest"
    )
    assert ingest["MemorySize"] == 2048
    assert ingest["Environment"]["Variables"]["CAPPI_MAX_BODY_BYTES"] == str(200 * MIB)
