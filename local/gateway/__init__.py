"""The local HTTP front door: the emulated HTTP API (query route behind the JWT authorizer) plus the local token
issuer's endpoints, on one loopback port.

It answers like API Gateway's HTTP API in every case, including requests no client library would send: HTTP/1.1
framing is h11's (a strict RFC 9112 state machine), with the checks h11 leaves to its user made here, before h11
sees the request: a request with both `Transfer-Encoding` and `Content-Length`, duplicate or listed
`Content-Length`, a transfer coding list not ending in `chunked`, bare LF or CR line ends and obs-fold lines are
refused (400, connection closed), as are heads over API Gateway's quotas (10,240 bytes of request line and headers:
431, or 414 for the request line alone; 100 header fields), bodies over its 10 MB payload (413), and versions other
than HTTP/1.x (505). A connection that does not finish its head within a few seconds is answered 408 and closed, an
idle one closed. Every refusal is `{"message": <reason phrase>}` in JSON with `Connection: close`, and the rest of
what the client sent is read and dropped (a lingering close), so nothing it sent is ever read as a second request.

One event loop thread serves every connection while its requests are plain (a whole head in one read, no body:
`plain_request` reads those as h11 does, field for field, which the tests check against h11) and their answers fit
the socket's buffer; at anything else a connection moves to a thread of its own, where h11 reads its requests and
every wait is bounded by the timeouts above. Handlers run on whichever thread read the request, except that the loop
never waits on the network: a request whose answer needs a wait (its token's key being fetched) raises `WouldWait`
there and moves, with its connection, to a thread that asks again.

Why a small server over h11 rather than uvicorn, hypercorn or waitress: each of them answers framing errors itself
(uvicorn: text/plain "Invalid HTTP request received.", hypercorn: an empty 400, waitress: a text page), and uvicorn
has no timeout for a connection's first head; API Gateway's JSON errors and limits need that part in our hands.

One job per module: `front` (the HTTP API and the issuer's endpoints behind the server), `server` (the event loop
and the hand-over to a connection's thread), `connection` (one connection's reads, answers and refusals),
`fast_path` (plain requests read and plain responses written without h11), `h11_path` (everything else, by h11),
`limits` (the checks h11 leaves to us, and the quotas), `messages` (the request, framing headers, JSON refusals).
"""

from local.gateway.front import ExtraRoutes, Gateway, serialized
from local.gateway.limits import Limits
from local.gateway.messages import Refusal, Request
from local.gateway.server import Http11Server

__all__ = ["ExtraRoutes", "Gateway", "Http11Server", "Limits", "Refusal", "Request", "serialized"]
