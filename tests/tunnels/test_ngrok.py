"""``ngrok`` (the SDK, in-process): failures map to stable codes; no network call without a token."""

from __future__ import annotations

import ngrok
import pytest

from fixtures.sshd import free_port
from linkpronto.errors import TunnelAuth, TunnelLimit, TunnelUnreachable
from linkpronto.schema import PartState
from linkpronto.tunnels.ngrok import NgrokTunnel, map_ngrok_failure


async def test_missing_authtoken_is_tunnel_auth_without_any_network_call(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sdk(*args: object, **kwargs: object) -> None:
        raise AssertionError("the ngrok SDK must not be called without an authtoken")

    monkeypatch.setattr(ngrok, "SessionBuilder", no_sdk)
    tunnel = NgrokTunnel(7801, authtoken="  ")
    with pytest.raises(TunnelAuth) as info:
        await tunnel.open()
    assert "NGROK_AUTHTOKEN" in (info.value.fix("en") or "")
    assert tunnel.describe().state is PartState.FAILED


async def test_offline_sdk_fails_at_once_as_unreachable() -> None:
    # The SDK dials a closed local port: exactly what "no internet" looks like to it.
    tunnel = NgrokTunnel(7801, authtoken="2abcSECRETtoken", server_addr=f"127.0.0.1:{free_port()}")
    with pytest.raises(TunnelUnreachable) as info:
        await tunnel.open()
    # The SDK's own connect failure (refused), not a timeout of ours: the detail says what it saw.
    assert info.value.detail and "did not answer within" not in info.value.message("en")
    assert "2abcSECRETtoken" not in str(info.value.to_problem())
    status = tunnel.describe()
    assert status.state is PartState.UNHEALTHY and status.last_error is info.value
    await tunnel.close()


def test_error_codes_map_to_stable_codes() -> None:
    limit = map_ngrok_failure("failed to connect session | Your account is limited to 1 simultaneous "
                              "ngrok agent sessions. | ERR_NGROK_108")
    assert isinstance(limit, TunnelLimit) and limit.code == "TUNNEL_LIMIT"
    assert isinstance(map_ngrok_failure("endpoint is already online ERR_NGROK_334", domain="x.ngrok.app"),
                      TunnelLimit)
    auth = map_ngrok_failure("authentication failed: The authtoken you specified is properly formed, but it "
                             "is invalid. Your authtoken: 2abcSECRET ERR_NGROK_107", secrets=("2abcSECRET",))
    assert isinstance(auth, TunnelAuth)
    assert "2abcSECRET" not in (auth.detail or "") and "**********" in (auth.detail or "")
    assert isinstance(map_ngrok_failure("ERR_NGROK_4018 requires a verified account"), TunnelAuth)
    other = map_ngrok_failure("failed to connect session | failed to establish tcp connection")
    assert isinstance(other, TunnelUnreachable) and other.code == "TUNNEL_UNREACHABLE"


def test_tradeoff_mentions_the_warning_page_and_the_account() -> None:
    text = NgrokTunnel.tradeoff.en.lower()
    assert "warning page" in text and "account" in text and "media" in text
