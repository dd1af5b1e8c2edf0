"""The CAPPI stack of one stage: storage, the polling pipeline, the query API and their monitoring."""

from __future__ import annotations

from aws_cdk import Stack, Tags
from constructs import Construct

from cappi.domain.registry import load_registry
from infra.api import QueryApi
from infra.config import StageConfig
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
        self.pipeline = IngestPipeline(self, "Ingest", config=config, storage=self.storage)
        self.api = QueryApi(self, "Api", config=config, storage=self.storage)
        self.monitoring = Monitoring(
            self, "Monitoring", config=config, registry=self.registry, pipeline=self.pipeline, api=self.api
        )
