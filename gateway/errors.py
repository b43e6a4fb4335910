"""The gateway's whole exception tree; the HTTP layer maps it to the error shape in one place.

    GatewayError
    ├── ConfigError                  config.toml or the environment is wrong; names the key
    ├── PartnerError                 a partner call failed
    │   ├── PartnerRateLimited       429 or budget exhausted; carries retry_after seconds
    │   ├── PartnerUnavailable       5xx, timeout, refused connection, a malformed answer, a 4xx
    │   │                            such as 408/409: retrying may help
    │   └── PartnerRejected          a 4xx that retrying cannot fix; carries the partner's message
    ├── Undeliverable                this gateway cannot carry out an inbox event or outbound
    │   │                            message as configured (its connector is gone, a record
    │   │                            kind it does not declare): retrying cannot help
    │   └── OperationUnsupported     the connector declares it does not do this operation (501)
    ├── WebhookRejected              a webhook failed its connector's verification (401)
    ├── BadRequest                   the caller sent something invalid (400)
    ├── Unauthorized                 no or wrong bearer token (401)
    ├── NotFound                     no such resource (404)
    ├── PayloadTooLarge              body over the configured limit (413)
    └── Conflict                     the request contradicts what is stored (409)
"""

from __future__ import annotations

from dataclasses import dataclass

# A partner (or subscriber) answer that the same request will always get: no retry.
NOT_RETRIED_STATUSES = frozenset({400, 401, 403, 404, 422})


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(GatewayError):
    code = "config_error"


class PartnerError(GatewayError):
    status = 502
    code = "partner_error"


class PartnerRateLimited(PartnerError):
    status = 503
    code = "partner_rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PartnerUnavailable(PartnerError):
    status = 502
    code = "partner_unavailable"


class PartnerRejected(PartnerError):
    status = 502
    code = "partner_rejected"

    def __init__(self, message: str, partner_status: int | None = None) -> None:
        super().__init__(message)
        self.partner_status = partner_status


def for_status(status: int, message: str, retry_after: float | None = None) -> PartnerError:
    """The error for a partner's non-2xx answer, so every client classifies statuses alike."""
    if status == 429:
        return PartnerRateLimited(message, retry_after=retry_after or 0.0)
    if status in NOT_RETRIED_STATUSES:
        return PartnerRejected(message, status)
    return PartnerUnavailable(message)


class Undeliverable(GatewayError):
    code = "undeliverable"


class OperationUnsupported(Undeliverable):
    status = 501
    code = "not_supported"

    def __init__(self, connector: str, operation: str, reason: str = "") -> None:
        super().__init__(f"connector {connector!r} does not support {operation}"
                         + (f": {reason}" if reason else ""))
        self.operation = operation


class WebhookRejected(GatewayError):
    status = 401
    code = "webhook_unverified"


class BadRequest(GatewayError):
    """The request is wrong. `problems`: each with the field's path, a code and a message
    (gateway/shapes.py Problem), when it was checked against its declaration."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class Unauthorized(GatewayError):
    status = 401
    code = "unauthorized"


class NotFound(GatewayError):
    status = 404
    code = "not_found"


class PayloadTooLarge(GatewayError):
    status = 413
    code = "payload_too_large"


class Conflict(GatewayError):
    status = 409
    code = "conflict"


class RequestTimeout(GatewayError):
    """The body did not arrive within server.body_timeout_seconds; the connection closes."""

    status = 408
    code = "request_timeout"


class ClientGone(BadRequest):
    """The client closed its connection before the whole body arrived: nobody to answer."""

    code = "client_gone"


# What a failure means for the thing that failed: the one place it is decided.
RETRY, WAIT, DEAD = "retry", "wait", "dead"


@dataclass(frozen=True)
class Failure:
    """A failure as the inbox and the outbox record it."""

    kind: str  # rejected | undeliverable | invalid | rate_limited | unavailable | error
    action: str  # RETRY on the schedule, WAIT at least retry_after, or DEAD at once
    message: str
    retry_after: float | None = None

    @property
    def text(self) -> str:
        """As stored and shown: the kind first."""
        return f"{self.kind}: {self.message}"


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, PartnerRejected):
        return Failure("rejected", DEAD, exc.message)
    if isinstance(exc, Undeliverable):
        return Failure("undeliverable", DEAD, exc.message)
    if isinstance(exc, BadRequest | NotFound | Conflict):
        # what the records ask contradicts what is stored: the same every time
        return Failure("invalid", DEAD, exc.message)
    if isinstance(exc, PartnerRateLimited):
        return Failure("rate_limited", WAIT, exc.message, exc.retry_after)
    if isinstance(exc, PartnerUnavailable):
        return Failure("unavailable", RETRY, exc.message)
    return Failure("error", RETRY, f"{type(exc).__name__}: {exc}")
