"""The request scope every handler logs in (`cappi.handlers.entry.lambda_handler`): the Lambda context and the
request's own keys on each line written while it is served, none on a line written after."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cappi.handlers.entry import lambda_handler
from cappi.observability import logger, request_keys
from local.http_api import LambdaContext

LIBRARY = "cappi.test_request_scope"  # a plain `logging` logger routed into the structured log, as the club client's


@pytest.fixture
def logged() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The structured log's lines so far, the library logger's included."""
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)
    library = logging.getLogger(LIBRARY)
    library.handlers, library.propagate = [logger.registered_handler], False
    library.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    library.handlers, library.propagate = [], True
    library.setLevel(logging.NOTSET)
    logger.registered_handler.setStream(previous)


def context(request_id: str) -> LambdaContext:
    return LambdaContext(function_name="cappi-test-scope", aws_request_id=request_id)


def serve(event: dict[str, Any], _context: Any, deps: str) -> dict[str, Any]:
    request_keys().update(source=event["source"], club_ids=[212])
    logger.info("serving", extra={"deps": deps, "club_ids": "the line's own"})
    logging.getLogger(LIBRARY).info("library line")
    return {"served": event["source"]}


def test_lines_written_while_serving_carry_the_lambda_context_and_the_requests_keys(
    logged: Callable[[], list[dict[str, Any]]],
) -> None:
    handler = lambda_handler(lambda: "built", serve, correlation_id=lambda event: event.get("id"))
    assert handler({"source": "alpha", "id": "corr-1"}, context("req-1")) == {"served": "alpha"}
    handler({"source": "beta"}, context("req-2"))
    logger.info("after")
    first, library, second, _, after = logged()
    assert first == first | {
        "message": "serving",
        "deps": "built",
        "function_name": "cappi-test-scope",
        "function_memory_size": 1024,
        "function_arn": "arn:aws:lambda:local:000000000000:function:cappi-test-scope",
        "function_request_id": "req-1",
        "cold_start": True,
        "correlation_id": "corr-1",
        "source": "alpha",
        "club_ids": "the line's own",  # a line's own `extra` wins over the request's key
    }
    assert library["message"] == "library line" and library["function_request_id"] == "req-1"
    assert library["source"] == "alpha" and library["club_ids"] == [212]
    assert (second["function_request_id"], second["cold_start"], second["source"]) == ("req-2", False, "beta")
    assert "correlation_id" not in second  # none in the event: no key (as Powertools leaves out a None)
    assert after["message"] == "after"
    assert not {"function_request_id", "cold_start", "source", "club_ids", "correlation_id"} & set(after)


def test_a_handler_called_while_another_serves_has_its_own_keys_and_gives_them_back(
    logged: Callable[[], list[dict[str, Any]]],
) -> None:
    inner = lambda_handler(lambda: "inner", serve)

    def outer_serve(event: dict[str, Any], _context: Any, _deps: str) -> dict[str, Any]:
        request_keys().update(outer="yes")
        inner({"source": "inner-source"}, context("req-inner"))
        logger.info("outer again")
        return {}

    lambda_handler(lambda: "outer", outer_serve)({}, context("req-outer"))
    lines = logged()
    assert [line["function_request_id"] for line in lines] == ["req-inner", "req-inner", "req-outer"]
    assert "outer" not in lines[0] and lines[2]["outer"] == "yes" and "source" not in lines[2]


def test_an_error_still_ends_the_scope(logged: Callable[[], list[dict[str, Any]]]) -> None:
    def failing(_event: dict[str, Any], _context: Any, _deps: str) -> dict[str, Any]:
        request_keys().update(source="alpha")
        raise RuntimeError("ours")

    with pytest.raises(RuntimeError):
        lambda_handler(lambda: "deps", failing)({}, context("req-1"))
    logger.info("after")
    (after,) = logged()
    assert "source" not in after and "function_request_id" not in after


def test_outside_a_request_the_keys_go_nowhere(logged: Callable[[], list[dict[str, Any]]]) -> None:
    request_keys().update(source="alpha")
    logger.info("no request")
    (line,) = logged()
    assert "source" not in line
