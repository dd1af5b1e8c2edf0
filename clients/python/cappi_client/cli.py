"""`cappi-client open-calls CLUB TECH`: a technician's open call IDs as a JSON array, for scripts and smoke tests.

Exit status: 0 with the array on stdout; 1 when CAPPI or the token endpoint refused or failed (the server's error
code and message on stderr); 2 for a usage error, missing credentials, or a ClubId/TechId CAPPI would refuse (no
request is made). The client secret is never a command-line argument, where `ps` would show it: it comes from
`CAPPI_CLIENT_SECRET` or `--client-secret-file`. Tokens are cached in a 0600 file between runs (Auth0 limits token
requests), `$XDG_CACHE_HOME/cappi-client/tokens.json` unless told otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from cappi_client._version import VERSION
from cappi_client.client import CappiClient
from cappi_client.environments import NAMES, Environment, resolve
from cappi_client.errors import (
    ApiError,
    CappiError,
    ConfigurationError,
    DeadlineExceeded,
    InvalidId,
    TokenError,
    TransportError,
)

OK, FAILED, USAGE = 0, 1, 2
PROG = "cappi-client"


def default_token_cache(env: Mapping[str, str] = os.environ) -> Path:
    base = env.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "cappi-client" / "tokens.json"


def parser() -> argparse.ArgumentParser:
    # allow_abbrev=False: `--client-secret x` must be refused, not read as an abbreviated --client-secret-file.
    top = argparse.ArgumentParser(
        prog=PROG, description="Ask CAPPI which calls are open for a technician.", allow_abbrev=False
    )
    top.add_argument("--version", action="version", version=f"{PROG} {VERSION}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    calls = commands.add_parser(
        "open-calls",
        allow_abbrev=False,
        help="print a technician's open call IDs as a JSON array",
        description="Print the open call IDs of technician TECH of club CLUB as a JSON array. Credentials come from "
        "CAPPI_CLIENT_ID (or --client-id) and CAPPI_CLIENT_SECRET (or --client-secret-file).",
    )
    calls.add_argument("club", metavar="CLUB", help="ClubId: 1 to 3 digits")
    calls.add_argument("tech", metavar="TECH", help="TechId: 1 to 32 ASCII letters or digits")
    where = calls.add_argument_group("environment (one of --env or --base-url; default --env stage)")
    where.add_argument(
        "--env",
        choices=NAMES,
        help="stage, prod, or local: the running local mode (CAPPI_PORT, else the endpoints.json under "
        "CAPPI_STATE_DIR, default .local/ here or in a parent)",
    )
    where.add_argument("--base-url", metavar="URL", help="a CAPPI base URL (then --token-url is required)")
    where.add_argument("--token-url", metavar="URL", help="the token endpoint for --base-url")
    where.add_argument("--audience", metavar="AUD", help="the token audience for --base-url (default: the base URL)")
    auth = calls.add_argument_group("credentials")
    auth.add_argument("--client-id", metavar="ID", help="default: $CAPPI_CLIENT_ID")
    auth.add_argument("--client-secret-file", metavar="PATH", type=Path, help="default: $CAPPI_CLIENT_SECRET")
    auth.add_argument("--scope", help="scopes to ask for (default: what the client is granted)")
    cache = calls.add_mutually_exclusive_group()
    cache.add_argument("--token-cache", metavar="PATH", type=Path, help="token cache file (default: %(default)s)")
    cache.add_argument("--no-token-cache", action="store_true", help="keep the token in memory only")
    calls.add_argument("--timeout", metavar="S", type=_seconds, default=30.0, help="total deadline (default 30)")
    calls.add_argument("-v", "--verbose", action="store_true", help="log retries and token use to stderr")
    calls.set_defaults(token_cache=default_token_cache(), usage=calls)  # usage: to report errors as argparse does
    return top


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {raw!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be positive: {raw!r}")
    return value


def _environment(args: argparse.Namespace, fail: argparse.ArgumentParser) -> Environment:
    if args.base_url is None:
        if args.token_url is not None or args.audience is not None:
            fail.error("--token-url and --audience go with --base-url")
        return resolve(args.env or "stage")
    if args.env is not None:
        fail.error("give --env or --base-url, not both")
    if args.token_url is None:
        fail.error("--base-url needs --token-url")
    return Environment.custom(args.base_url, args.token_url, args.audience)


def _secret(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"--client-secret-file {path}: cannot read it ({exc})") from None
    if not secret:
        raise ConfigurationError(f"--client-secret-file {path} is empty")
    return secret


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)  # exits 2 on a usage error
    if not args.verbose:
        return _run(args)
    # -v: this package's lines (where the token came from, retries) and urllib3's, on stderr, whatever handlers
    # the root logger has (an application or a test runner may have configured it already).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    loggers = [(logging.getLogger("cappi_client"), logging.DEBUG), (logging.getLogger("urllib3"), logging.INFO)]
    saved = [(logger.level, logger.propagate) for logger, _level in loggers]
    for logger, level in loggers:
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    try:
        return _run(args)
    finally:
        for (logger, _level), (level, propagate) in zip(loggers, saved, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


def _run(args: argparse.Namespace) -> int:
    try:
        environment = _environment(args, args.usage)
        client = CappiClient(
            environment,
            client_id=args.client_id,
            client_secret=_secret(args.client_secret_file),
            scope=args.scope,
            token_cache=None if args.no_token_cache else args.token_cache,
            deadline_s=args.timeout,
            request_timeout_s=min(10.0, args.timeout),
        )
    except ConfigurationError as exc:
        return _say(f"{exc}", USAGE)
    with client:
        try:
            calls = client.open_calls(args.club, args.tech)
        except InvalidId as exc:
            return _say(f"{exc.code}: {exc.message}", USAGE)
        except ApiError as exc:
            extra = f" (retry after {exc.retry_after:g} s)" if exc.retry_after is not None else ""
            return _say(f"{exc.status} {exc.code or '-'}: {exc.message}{extra}", FAILED)
        except TokenError as exc:
            what = " ".join(str(part) for part in (exc.status, exc.error) if part is not None)
            return _say(f"token request failed: {what}: {exc.error_description or exc}", FAILED)
        except CappiError as exc:
            hint = ""
            if environment.name == "local" and isinstance(exc, TransportError | DeadlineExceeded):
                hint = f"; is local mode still running at {environment.base_url}? (`make run`)"
            return _say(f"{type(exc).__name__}: {exc}{hint}", FAILED)
    print(json.dumps(calls))
    return OK


def _say(message: str, status: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return status
