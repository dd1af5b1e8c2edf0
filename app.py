#!/usr/bin/env python3
"""CDK entry point: one CAPPI stack per stage named in cdk.json context (`cappi:stages`).

Works offline: no AWS credentials, no Docker, no context lookups (Lambda assets are built by pip into build/,
which needs PyPI only the first time). Run by the `cdk` CLI (which passes cdk.json's context) or directly with
`python app.py` (which reads cdk.json itself), e.g. from tests. cdk-nag runs on every synth, so a finding nobody
acknowledged stops a deploy as well as the tests.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# jsii prints a banner on Node 20; it is noise in test and synth output, not a problem for synthesis.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk  # noqa: E402

from infra.config import StageConfig, stages_from_context  # noqa: E402
from infra.nag import add_nag_checks  # noqa: E402
from infra.stack import CappiStack  # noqa: E402


def build_app(context: dict | None = None, outdir: str | None = None) -> cdk.App:
    if context is None and "CDK_CONTEXT_JSON" not in os.environ:
        # Not started by the cdk CLI: take the context from cdk.json as the CLI would.
        context = json.loads((ROOT / "cdk.json").read_text())["context"]
    app = cdk.App(context=context, outdir=outdir)
    for stage in stages_from_context(app.node):
        config = StageConfig.from_context(app.node, stage)
        CappiStack(app, config.stack_name, config=config)
    add_nag_checks(app)
    return app


if __name__ == "__main__":
    build_app().synth()
