"""Where secret values come from: SSM Parameter Store when deployed and in local mode, a plain mapping in tests.

Errors raised here name the secret and its parameter, never its value, so they are safe to log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from cappi.contracts.credentials import parameter_name

if TYPE_CHECKING:
    from botocore.config import Config

DEFAULT_MAX_AGE_S = 300
NOT_FOUND_CODES = ("ParameterNotFound", "ParameterVersionNotFound")


class SecretSource(Protocol):
    def get(self, name: str) -> str: ...


class SecretNotFound(KeyError):
    """No secret of that name exists (or it holds no value)."""

    def __init__(self, name: str, parameter: str | None = None) -> None:
        super().__init__(name)
        self.name = name
        self.parameter = parameter  # where it was looked for, when that is not the name itself

    def __str__(self) -> str:
        # KeyError would print repr(name) only; say what is missing so a log line stands on its own.
        where = f" (SSM parameter {self.parameter})" if self.parameter else ""
        return f"secret {self.name!r} not found{where}"


class StaticSecrets:
    """Secrets held in memory, for tests."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})

    def get(self, name: str) -> str:
        try:
            return self._values[name]
        except KeyError:
            raise SecretNotFound(name) from None

    def __repr__(self) -> str:
        # Names only: a repr ends up in tracebacks and debugger output.
        return f"StaticSecrets(names={sorted(self._values)!r})"


class ParameterStoreSecrets:
    """Secret strings from SSM Parameter Store: the SecureString parameter of each registry secret name
    (cappi.contracts.credentials), decrypted, cached in the container for `max_age` seconds."""

    def __init__(
        self,
        max_age: int = DEFAULT_MAX_AGE_S,
        *,
        client: Any | None = None,
        boto_config: Config | None = None,
    ) -> None:
        # Imported here so that code paths using StaticSecrets (tests) skip boto3's import cost.
        from aws_lambda_powertools.utilities.parameters import SSMProvider

        self._max_age = max_age
        self._provider = SSMProvider(boto_config=boto_config, boto3_client=client)
        _quiet_botocore_while_reading()

    def get(self, name: str) -> str:
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        parameter = parameter_name(name)
        try:
            with _reading():
                value = self._provider.get(parameter, max_age=self._max_age, decrypt=True)
        except GetParameterError as exc:
            if _is_not_found(exc):
                raise SecretNotFound(name, parameter) from None
            raise
        if not isinstance(value, str) or not value:
            raise SecretNotFound(name, parameter)
        return value

    def __repr__(self) -> str:
        return f"ParameterStoreSecrets(max_age={self._max_age})"


def _is_not_found(exc: BaseException) -> bool:
    # Powertools re-raises every SDK error as GetParameterError(str(error)); the original stays as context.
    original = exc.__context__
    response = getattr(original, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code") in NOT_FOUND_CODES
    return any(code in str(exc) for code in NOT_FOUND_CODES)


# botocore logs every response body at DEBUG (botocore.parsers), and a GetParameter's holds the decrypted value: a
# function run at DEBUG would log the credential. While a thread reads one, its records below WARNING on botocore's
# loggers are dropped; other threads' and later records are not touched.
BOTOCORE_LOGGERS = ("botocore.parsers", "botocore.endpoint", "botocore.hooks", "botocore.httpsession", "botocore.auth")
_state = threading.local()


class _NotWhileReading(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not getattr(_state, "reading", False)


_FILTER = _NotWhileReading()


def _quiet_botocore_while_reading() -> None:
    for name in BOTOCORE_LOGGERS:
        logging.getLogger(name).addFilter(_FILTER)  # once: addFilter skips a filter it holds


@contextmanager
def _reading() -> Iterator[None]:
    _state.reading = True
    try:
        yield
    finally:
        _state.reading = False
