"""OAuth 1.0a HMAC-SHA1 for NuOrder (../shared/partners/nuorder.md, "Auth").

Two styles are in use. RFC 5849 (base64 signatures over the normalized request) is what
oauthlib does and is the default. An older one, used by NuOrder clients of 2014-17, signs a
fixed-order, unencoded string with a hex digest; whether today's server still takes it is
UNCONFIRMED, so it is kept behind `legacy_hex_authorization`, the one function that knows it.
The sandbox checks both, through the same two functions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from oauthlib.oauth1 import SIGNATURE_HMAC_SHA1, SIGNATURE_TYPE_AUTH_HEADER, Client
from oauthlib.oauth1.rfc5849 import signature, utils

RFC5849, LEGACY_HEX = "rfc5849", "hex"
STYLES = (RFC5849, LEGACY_HEX)


@dataclass(frozen=True)
class Credentials:
    consumer_key: str
    consumer_secret: str
    token: str = ""  # empty during the handshake's first step
    token_secret: str = ""


def authorization(method: str, url: str, credentials: Credentials, style: str = RFC5849,
                  **extra: str) -> str:
    """The Authorization header for one request; `extra`: oauth_callback or oauth_verifier
    during the handshake."""
    if style == LEGACY_HEX:
        return legacy_hex_authorization(method, url, credentials, **extra)
    client = Client(credentials.consumer_key, client_secret=credentials.consumer_secret,
                    resource_owner_key=credentials.token or None,
                    resource_owner_secret=credentials.token_secret or None,
                    signature_method=SIGNATURE_HMAC_SHA1,
                    signature_type=SIGNATURE_TYPE_AUTH_HEADER,
                    callback_uri=extra.get("oauth_callback"),
                    verifier=extra.get("oauth_verifier"))
    _, headers, _ = client.sign(url, method)
    return headers["Authorization"]


def _legacy_base(method: str, url: str, params: dict[str, str]) -> str:
    order = ("oauth_consumer_key", "oauth_token", "oauth_timestamp", "oauth_nonce",
             "oauth_version", "oauth_signature_method")
    query = "&".join(f"{name}={params.get(name, '')}" for name in order)
    # The older clients made no calls with a query string of their own; one is left out of
    # the base (UNCONFIRMED, like the style), so its encoding on the way cannot matter.
    return f"{method.upper()}{url.partition('?')[0]}?{query}"


def legacy_hex_authorization(method: str, url: str, credentials: Credentials,
                             **extra: str) -> str:
    """UNCONFIRMED: the older clients' style. Base: METHOD + the full URL + `?` + the oauth
    parameters in a fixed order, unencoded; key `consumer_secret&token_secret`; signature
    the hex HMAC-SHA1 digest."""
    params = {"oauth_consumer_key": credentials.consumer_key, "oauth_token": credentials.token,
              "oauth_timestamp": str(int(time.time())), "oauth_nonce": secrets.token_hex(16),
              "oauth_version": "1.0", "oauth_signature_method": "HMAC-SHA1", **extra}
    key = f"{credentials.consumer_secret}&{credentials.token_secret}".encode()
    params["oauth_signature"] = hmac.new(key, _legacy_base(method, url, params).encode(),
                                         hashlib.sha1).hexdigest()
    return "OAuth " + ",".join(f'{k}="{v}"' for k, v in params.items())


def verify(method: str, url: str, header: str, credentials: Credentials) -> bool:
    """Whether the Authorization header is a valid signature by these secrets, in either
    style (the sandbox's check)."""
    try:
        params = dict(utils.parse_authorization_header(header))
    except (ValueError, KeyError):
        return False
    given = utils.unescape(params.get("oauth_signature", ""))  # RFC 5849 3.5.1: encoded
    if params.get("oauth_consumer_key") != credentials.consumer_key or \
            params.get("oauth_token", "") != credentials.token:
        return False
    key = f"{credentials.consumer_secret}&{credentials.token_secret}".encode()
    legacy = hmac.new(key, _legacy_base(method, url, params).encode(), hashlib.sha1).hexdigest()
    if hmac.compare_digest(given, legacy):
        return True
    collected = signature.collect_parameters(uri_query=urlsplit(url).query,
                                             headers={"Authorization": header},
                                             exclude_oauth_signature=True, with_realm=False)
    base = signature.signature_base_string(method.upper(), signature.base_string_uri(url),
                                           signature.normalize_parameters(collected))
    expected = signature.sign_hmac_sha1_with_client(base, Client(
        credentials.consumer_key, client_secret=credentials.consumer_secret,
        resource_owner_secret=credentials.token_secret or None))
    return hmac.compare_digest(given, expected)
