"""The gateway's whole exception tree; the HTTP layer maps it to the error shape in one place.

    GatewayError
    ├── ConfigError                  config.toml or the environment is wrong; names the key
    ├── PartnerError                 a partner call failed
    │   ├── PartnerRateLimited       429 or budget exhausted; carries retry_after seconds
    │   ├── PartnerUnavailable       5xx, timeout, connection refused: retrying may help
    │   └── PartnerRejected          a 4xx that retrying cannot fix; carries the partner's message
    ├── WebhookRejected              a webhook failed its connector's verification (401)
    ├── BadRequest                   the caller sent something invalid (400)
    ├── Unauthorized                 no or wrong bearer token (401)
    ├── NotFound                     no such resource (404)
    ├── PayloadTooLarge              body over the configured limit (413)
    └── Conflict                     the request contradicts what is stored (409)
"""

from __future__ import annotations


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

    def __init__(self, message: str, partner_status: int) -> None:
        super().__init__(message)
        self.partner_status = partner_status


class WebhookRejected(GatewayError):
    status = 401
    code = "webhook_unverified"


class BadRequest(GatewayError):
    status = 400
    code = "bad_request"


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
