"""The stand-in itself: the fault tests rely on `stop()` meaning what it says."""
import pytest
import requests

from tools.outspeed_standin import SESSIONS_PATH, OutspeedStandIn


def test_stop_drops_kept_alive_connections_and_start_serves_again():
    standin = OutspeedStandIn(api_key="k").start()
    client = requests.Session()
    headers = {"Authorization": "Bearer k"}
    try:
        assert client.post(standin.url + SESSIONS_PATH, headers=headers).status_code == 200
        standin.stop()
        # A pooled keep-alive connection must not be answered by a stopped server.
        with pytest.raises(requests.ConnectionError):
            client.post(standin.url + SESSIONS_PATH, headers=headers, timeout=5)
        standin.start()  # same port
        assert client.post(standin.url + SESSIONS_PATH, headers=headers, timeout=5).status_code == 200
    finally:
        standin.stop()
        client.close()


def test_requests_are_recorded_and_keys_checked():
    with OutspeedStandIn(api_key="k") as standin:
        assert requests.post(standin.url + SESSIONS_PATH + "?agent_id=a%26b").status_code == 401
        ok = requests.post(standin.url + SESSIONS_PATH + "?agent_id=a%26b", headers={"Authorization": "Bearer k"})
        assert ok.json()["client_secret"]["value"] == standin.minted[0]
        assert [r.query for r in standin.requests] == [{"agent_id": ["a&b"]}] * 2
