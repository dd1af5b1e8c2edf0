"""Where secret values come from: AWS Secrets Manager when deployed, a plain mapping in tests and local mode.

Errors raised here name the secret, never its value, so they are safe to log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from botocore.config import Config

DEFAULT_MAX_AGE_S = 300


class SecretSource(Protocol):
    def get(self, name: str) -> str: ...


class SecretNotFound(KeyError):
    """No secret of that name exists (or it holds no value)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        # KeyError would print repr(name) only; say what is missing so a log line stands on its own.
        return f"secret {self.name!r} not found"


class StaticSecrets:
    """Secrets held in memory, for tests and local mode."""

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


class SecretsManagerSecrets:
    """Secret strings from AWS Secrets Manager, cached in the container for `max_age` seconds."""

    def __init__(
        self,
        max_age: int = DEFAULT_MAX_AGE_S,
        *,
        client: Any | None = None,
        boto_config: Config | None = None,
    ) -> None:
        # Imported here so that code paths using StaticSecrets (tests, local mode) skip boto3's import cost.
        from aws_lambda_powertools.utilities.parameters import SecretsProvider

        self._max_age = max_age
        self._provider = SecretsProvider(boto_config=boto_config, boto3_client=client)

    def get(self, name: str) -> str:
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        try:
            value = self._provider.get(name, max_age=self._max_age)
        except GetParameterError as exc:
            if _is_not_found(exc):
                raise SecretNotFound(name) from None
            raise
        if isinstance(value, bytes):
            # A binary secret is only usable in a header if it is text.
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise SecretNotFound(name) from None
        if not isinstance(value, str) or not value:
            raise SecretNotFound(name)
        return value


def _is_not_found(exc: BaseException) -> bool:
    # Powertools re-raises every SDK error as GetParameterError(str(error)); the original stays as context.
    original = exc.__context__
    response = getattr(original, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code") == "ResourceNotFoundException"
    return "ResourceNotFoundException" in str(exc)
