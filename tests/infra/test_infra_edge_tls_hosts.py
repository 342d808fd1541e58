"""Issue 9 #6 and #10: the HTTPS proxy refuses TLS below 1.2, and the load balancer serves only
`domain` (any other Host, the bare IP included, gets a 404 from the load balancer itself, on
:443 and on :80)."""
from __future__ import annotations

from infra_helpers import by_name, of_type, one, run, stack_settings
from tools.plan import PLACEHOLDER_PROJECT

SSL_POLICY = "gcp:compute/sSLPolicy:SSLPolicy"
HTTPS_PROXY = "gcp:compute/targetHttpsProxy:TargetHttpsProxy"
URL_MAP = "gcp:compute/uRLMap:URLMap"
ABORT_404 = {"faultInjectionPolicy": {"abort": {"httpStatus": 404, "percentage": 100}}}


def backend_id(run_):
    return f"projects/{PLACEHOLDER_PROJECT}/backendservices/{by_name(run_, 'edge-backend')['inputs']['name']}"


def test_https_proxy_uses_a_tls12_restricted_policy_of_the_edge(prod):
    policy = one(prod, SSL_POLICY)
    assert policy["inputs"]["minTlsVersion"] == "TLS_1_2"
    assert policy["inputs"]["profile"] == "RESTRICTED"  # no CBC/SHA-1 suites (MODERN keeps them at 1.2)
    assert policy["name"] == "edge-tls" and policy["parent"].endswith("::edge")  # a child of the Edge component
    assert policy["inputs"]["name"] == "outspeed-token-prod-tls"
    proxy = one(prod, HTTPS_PROXY)
    assert proxy["inputs"]["sslPolicy"] == f"projects/{PLACEHOLDER_PROJECT}/sslpolicies/outspeed-token-prod-tls"
    assert policy["urn"] in proxy["dependencies"]


def test_dev_has_no_ssl_policy(dev):
    assert of_type(dev, SSL_POLICY) == []


def test_https_url_map_serves_only_the_domain(prod):
    domain = stack_settings("prod").domain
    url_map = by_name(prod, "edge-urlmap")["inputs"]
    (host_rule,) = url_map["hostRules"]
    assert host_rule["hosts"] == [domain]
    (matcher,) = url_map["pathMatchers"]
    assert matcher["name"] == host_rule["pathMatcher"]
    assert matcher["defaultService"] == backend_id(prod) and "defaultRouteAction" not in matcher
    # Every other Host: aborted with 404 by the load balancer, before any backend.
    assert url_map["defaultRouteAction"] == ABORT_404
    assert "defaultUrlRedirect" not in url_map


def test_http_map_redirects_only_the_domain_and_404s_the_rest(prod):
    domain = stack_settings("prod").domain
    redirect_map = by_name(prod, "edge-http-redirect")["inputs"]
    (host_rule,) = redirect_map["hostRules"]
    assert host_rule["hosts"] == [domain]
    (matcher,) = redirect_map["pathMatchers"]
    assert matcher["name"] == host_rule["pathMatcher"]
    assert matcher["defaultUrlRedirect"] == {"httpsRedirect": True, "redirectResponseCode": "PERMANENT_REDIRECT",
                                             "stripQuery": False}
    assert "defaultService" not in matcher  # :80 never forwards, even for the domain
    assert redirect_map["defaultRouteAction"] == ABORT_404
    assert "defaultUrlRedirect" not in redirect_map  # a default redirect would answer the bare IP too


def test_a_domain_change_moves_the_host_rules_with_it():
    result = run("prod", {"domain": "Token.MyCompany.io"})
    assert result["error"] is None
    for name in ("edge-urlmap", "edge-http-redirect"):
        (rule,) = by_name(result, name)["inputs"]["hostRules"]
        assert rule["hosts"] == ["token.mycompany.io"]  # lower-cased like the certificate's domain


def test_plan_shows_tls_and_host_rules():
    from test_infra_plan import plan
    out = plan("prod").stdout
    domain = stack_settings("prod").domain
    assert "min TLS_1_2, profile RESTRICTED" in out
    assert "ssl policy projects/plan-placeholder-project/sslpolicies/outspeed-token-prod-tls" in out
    assert f"host {domain} -> service projects/plan-placeholder-project/backendservices/" in out
    assert f"host {domain} -> redirect https=True code PERMANENT_REDIRECT" in out
    assert out.count("any other host -> 404 from the load balancer") == 2
