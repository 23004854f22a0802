"""Config loading, dialect defaults, RFC 8414 issuer check, key permissions, WhiteBIT error shapes."""

from __future__ import annotations

import httpx
import pytest

from botkit.auth.errors import ClientMisconfigured
from botkit.auth.oauth import OAuthClient
from botkit.auth.settings import AuthSettings, ConfigError, auth_settings_from_mapping
from botkit.whitebit.apikey import permissions_to_scopes
from botkit.whitebit.errors import (
    WhiteBitAuthError,
    WhiteBitNonceRejected,
    WhiteBitRateLimited,
    WhiteBitUnavailable,
    WhiteBitValidationError,
    error_from_response,
)


def test_dialect_defaults_and_overrides():
    wb = AuthSettings(client_id="c", base_url="https://whitebit.eu/")
    assert wb.base_url == "https://whitebit.eu" and wb.authorize_path == "/auth/login"
    assert wb.refresh_path == "/oauth2/refresh_token" and wb.revoke_path is None
    assert wb.refresh_token_lifetime == 600.0
    rfc = AuthSettings(client_id="c", dialect="rfc6749", base_url="https://as.example", token_path="/oauth/token")
    assert rfc.token_path == "/oauth/token" and rfc.authorize_path == "/authorize" and rfc.revoke_path == "/revoke"
    assert rfc.refresh_token_lifetime is None


def test_secret_only_from_environment_and_hidden():
    s = auth_settings_from_mapping({"client_id": "c"}, {"BOTKIT_AUTH__CLIENT_SECRET": "shh-secret"})
    assert s.client_secret is not None and s.client_secret.get_secret_value() == "shh-secret"
    assert "shh-secret" not in repr(s) and "shh-secret" not in s.model_dump_json()
    with pytest.raises(ConfigError, match="BOTKIT_AUTH__CLIENT_SECRET"):
        auth_settings_from_mapping({"client_id": "c", "client_secret": "x"}, {})
    with pytest.raises(ConfigError, match=r"auth.base_url = 'ftp://x'"):
        auth_settings_from_mapping({"client_id": "c", "base_url": "ftp://x"}, {})


async def test_metadata_with_a_different_issuer_is_refused(rfc_server):
    host_alias = rfc_server.issuer.replace("127.0.0.1", "localhost")  # same server, different issuer string
    s = AuthSettings(client_id="botkit-basic", dialect="rfc6749", base_url=host_alias, use_metadata=True)
    async with httpx.AsyncClient() as http:
        with pytest.raises(ClientMisconfigured, match="does not match the configured issuer"):
            await OAuthClient(s, http).discover()
        ok = AuthSettings(client_id="botkit-basic", dialect="rfc6749", base_url=rfc_server.issuer, use_metadata=True)
        doc = await OAuthClient(ok, http).discover()
    assert doc["issuer"] == rfc_server.issuer and "S256" in doc["code_challenge_methods_supported"]


def test_key_permissions_become_scopes():
    perms = [
        {"name": "trading", "title": "Handel", "urls": [{"url": "/v2/order", "enable": True}]},
        {"name": "withdraw", "title": "Withdraw", "urls": [{"url": "/v4/withdraw", "enable": False}]},
        {"name": "balances.read", "title": "x", "urls": [{"url": "/x", "enable": True}]},
    ]
    got = permissions_to_scopes(perms)
    assert {"orders.create", "orders.delete", "balances.read"} <= got
    assert permissions_to_scopes([{"name": "trading", "urls": [{"url": "/v2/order", "enable": False}]}]) == set()


def test_whitebit_error_shapes_are_typed():
    e = error_from_response(422, b'{"code":32,"message":"Validation failed","errors":{"amount":["too small"]}}',
                            "/api/v4/order/new")
    assert isinstance(e, WhiteBitValidationError) and e.code == 32 and e.errors == {"amount": ["too small"]}
    # WhiteBIT's nonce rejection is a JSON 429 "Too many requests.": a nonce error, never a rate limit
    e = error_from_response(429, b'{"code":0,"errors":{},"message":"Too many requests."}', "/api/v4/orders", "2")
    assert isinstance(e, WhiteBitNonceRejected) and not isinstance(e, WhiteBitRateLimited) and e.code == 0
    e = error_from_response(400, b'{"code":0,"message":"Your nonce is more than 5 seconds lesser than the current '
                            b'nonce"}', "/api/v4/orders")
    assert isinstance(e, WhiteBitNonceRejected)
    e = error_from_response(429, b'{"code":0,"errors":{},"message":"Too many requests."}', "/api/v4/public/ticker",
                            nonce_sent=False)  # no nonce was sent: this one is a rate limit
    assert isinstance(e, WhiteBitRateLimited)
    e = error_from_response(429, b"<html>slow down</html>", "/api/v4/orders")
    assert isinstance(e, WhiteBitRateLimited) and "html" not in str(e)
    e = error_from_response(503, b"maintenance", "/api/v4/orders", "Wed, 21 Oct 2015 07:28:00 GMT")
    assert isinstance(e, WhiteBitUnavailable) and e.retry_after == 0.0
    e = error_from_response(401, b'{"data":{"message":["Unauthorized."]}}', "/oauth2/api-key/info")
    assert isinstance(e, WhiteBitAuthError) and e.message == "Unauthorized." and e.path == "/oauth2/api-key/info"


def test_secret_merged_from_env_by_the_app_config_is_accepted():
    env = {"BOTKIT_AUTH__CLIENT_SECRET": "from-env"}
    s = auth_settings_from_mapping({"client_id": "c", "client_secret": "from-env"}, env)
    assert s.client_secret is not None and s.client_secret.get_secret_value() == "from-env"
    with pytest.raises(ConfigError, match="must not be in a file"):
        auth_settings_from_mapping({"client_id": "c", "client_secret": "from-file"}, env)


def test_redirect_uri_must_be_a_loopback_listener():
    with pytest.raises(ConfigError, match="loopback redirect"):
        auth_settings_from_mapping({"client_id": "c", "redirect_uri": "https://partner.example/cb"}, {})
    ok = auth_settings_from_mapping({"client_id": "c", "redirect_uri": "http://127.0.0.1:8765/callback"}, {})
    assert ok.redirect_uri == "http://127.0.0.1:8765/callback"


async def test_whitebit_login_without_registered_redirect_is_a_config_error():
    from botkit.auth.login import interactive_login

    s = AuthSettings(client_id="c", base_url="https://whitebit.com")  # (a local sandbox has a default redirect)
    async with httpx.AsyncClient() as http:
        with pytest.raises(ConfigError, match="redirect_uri is not set"):
            await interactive_login(s, http, out=lambda _m: None, open_browser=False)
