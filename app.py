#!/usr/bin/env python3
"""CDK entry point: one CAPPI stack per stage named in cdk.json context (`cappi:stages`)."""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk

sys.path.insert(0, str(Path(__file__).resolve().parent / "functions"))

from infra.config import StageConfig, stages_from_context
from infra.stack import CappiStack


def build_app(app: cdk.App | None = None) -> cdk.App:
    app = app or cdk.App()
    for stage in stages_from_context(app.node):
        CappiStack(app, f"Cappi-{stage}", config=StageConfig.from_context(app.node, stage))
    return app


if __name__ == "__main__":
    build_app().synth()
