"""The CAPPI stack of one stage: storage, the polling pipeline, the query API and their monitoring."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack, Tags
from constructs import Construct

from cappi.contracts import stack as outputs
from cappi.domain.registry import load_registry
from infra.api import QueryApi
from infra.config import StageConfig
from infra.egress import StaticEgress
from infra.ingest import IngestPipeline
from infra.monitoring import Monitoring
from infra.storage import Storage


class CappiStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig, **kwargs: object) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"CAPPI ({config.stage}): open call IDs of roadside-assistance clubs for tester apps",
            **kwargs,
        )
        self.config = config
        # Validate the registry at synth time: a broken registry must never reach a deploy.
        self.registry = load_registry(config.clubs_file)
        Tags.of(self).add("project", "cappi")
        Tags.of(self).add("stage", config.stage)

        self.storage = Storage(self, "Storage", config=config, registry=self.registry)
        self.egress = StaticEgress(self, "Egress", config=config) if config.static_egress else None
        self.pipeline = IngestPipeline(self, "Ingest", config=config, storage=self.storage, egress=self.egress)
        self.api = QueryApi(self, "Api", config=config, storage=self.storage)
        self.monitoring = Monitoring(
            self, "Monitoring", config=config, registry=self.registry, pipeline=self.pipeline, api=self.api
        )
        # What `cappi` (ops' command) reads to find this stage's table and functions.
        for name, value, description in (
            (outputs.TABLE_OUTPUT, self.storage.table.table_name, "Snapshot table (heads, versions, last polls)"),
            (outputs.INGEST_FUNCTION_OUTPUT, self.pipeline.ingest.function.function_name, "Ingest function"),
            (outputs.STALE_AFTER_OUTPUT, str(config.stale_after_s), "Seconds after which a club's list is stale"),
        ):
            CfnOutput(self, name, value=value, description=description).override_logical_id(name)
