"""Sending one HTTP request through a requests session, within the fetch deadline, with no redirect followed.

The session is kept for the life of the container, so its connection pools carry TCP and TLS sessions from one
poll to the next. Errors come back as AttemptFailure with a retryable flag and no quoted header values.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

import requests

from cappi.adapters.club_client.deadline import Deadline
from cappi.adapters.club_client.errors import AttemptFailure
from cappi.adapters.club_client.redaction import loggable_url, root_cause
from cappi.domain.registry import check_url, is_loopback_host


class Transport:
    def __init__(self, session: requests.Session, *, connect_timeout: float, read_timeout: float) -> None:
        self._session = session
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout

    def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        deadline: Deadline,
        data: Mapping[str, str] | None = None,
        *,
        cert: tuple[str, str] | None = None,
    ) -> requests.Response:
        """The response with its body still unread (stream=True); the caller reads it and closes it.

        `cert`: the client certificate and key files to present on the TLS handshake (mtls sources).
        """
        problem = check_url(url)
        if problem:  # every request, not only the first: callers hand in redirect and token URLs too
            raise AttemptFailure("insecure_url", f"URL {loggable_url(url)} {problem}")
        remaining = deadline.remaining()
        if remaining <= 0:
            raise deadline.failure(f"before {method} {loggable_url(url)}")
        timeout = (min(self._connect_timeout, remaining), min(self._read_timeout, remaining))
        settings = self._session.merge_environment_settings(url, {}, True, None, None)
        # Loopback never goes through a proxy: in local mode a stray HTTP_PROXY would otherwise see credentials.
        proxies = {} if is_loopback_host(urlsplit(url).hostname) else settings["proxies"]
        where = f"{method} {loggable_url(url)}"
        # The adapter, not Session.send: with allow_redirects=False Session.send still reads a whole 3xx body
        # into memory (to prepare Response.next), with no cap and no deadline.
        adapter = self._session.get_adapter(url)
        try:
            # Preparing validates header values and quotes a bad one in its error, so it is inside the try.
            prepared = requests.Request(method, url, headers=dict(headers), data=data).prepare()
            return adapter.send(
                prepared,
                stream=True,
                timeout=timeout,
                verify=settings["verify"],
                cert=cert or settings["cert"],
                proxies=proxies,
            )
        except requests.exceptions.ConnectTimeout:
            raise deadline.timeout_failure(f"connect timed out: {where}") from None
        except requests.exceptions.SSLError as exc:
            # Certificate and handshake failures do not heal within one poll.
            raise AttemptFailure("connection", f"TLS failure: {where} ({root_cause(exc)})") from None
        except requests.exceptions.ConnectionError as exc:
            raise AttemptFailure(
                "connection", f"connection failed: {where} ({root_cause(exc)})", retryable=True
            ) from None
        except requests.exceptions.ReadTimeout:
            raise deadline.timeout_failure(f"no response headers in time: {where}") from None
        except requests.exceptions.RequestException as exc:
            # Their messages may quote header values, so only the type is kept.
            raise AttemptFailure("connection", f"request failed: {where} ({type(exc).__name__})") from None
