"""Typed per-stage configuration, built from `cdk.json` context and overridable with `-c key=value`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from constructs import Node

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class StageConfig:
    stage: str
    issuer: str
    audience: str
    clubs_file: Path
    retain_data: bool

    def resource_name(self, suffix: str) -> str:
        return f"cappi-{self.stage}-{suffix}"

    @classmethod
    def from_context(cls, node: Node, stage: str) -> StageConfig:
        raw: dict[str, Any] = dict(node.try_get_context(f"cappi:{stage}") or {})
        for key in ("issuer", "audience", "clubs_file", "retain_data"):
            override = node.try_get_context(f"{stage}:{key}")
            if override is not None:
                raw[key] = override
        missing = [k for k in ("issuer", "audience", "clubs_file") if not raw.get(k)]
        if missing:
            raise ConfigError(f"stage {stage!r}: missing context {', '.join(missing)} (cdk.json 'cappi:{stage}')")
        if not str(raw["issuer"]).endswith("/"):
            raise ConfigError(f"stage {stage!r}: issuer must end with '/' (Auth0 issuers do): {raw['issuer']!r}")
        retain = raw.get("retain_data", stage == "prod")
        if isinstance(retain, str):
            retain = retain.lower() in ("1", "true", "yes")
        return cls(
            stage=stage,
            issuer=str(raw["issuer"]),
            audience=str(raw["audience"]),
            clubs_file=ROOT / str(raw["clubs_file"]),
            retain_data=bool(retain),
        )


def stages_from_context(node: Node) -> list[str]:
    stages = node.try_get_context("cappi:stages") or ["stage", "prod"]
    if isinstance(stages, str):
        stages = [s.strip() for s in stages.split(",") if s.strip()]
    return list(stages)
