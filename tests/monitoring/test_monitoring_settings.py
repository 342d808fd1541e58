"""The `monitoring` config key: defaults, validation (one clear error naming the field and
the fix), and the warning when nobody would be notified."""
from __future__ import annotations

import pytest

from outspeed_token import stackfiles
from outspeed_token.monitoring import MonitoringSettings, parse_monitoring
from outspeed_token.settings import DEFAULTS, ConfigError, parse_mapping


def test_defaults_are_the_declared_ones_and_the_designs():
    declared = stackfiles.declared_keys()["monitoring"]
    assert declared["type"] == "object" and declared["description"]
    assert declared["default"] == DEFAULTS["monitoring"]
    # DESIGN.md's three, unchanged; the rest are the tunables the issue asks for.
    assert {k: declared["default"][k] for k in ("enabled", "alertEmails", "mintsPerHourAlert")} == {
        "enabled": True, "alertEmails": [], "mintsPerHourAlert": 1000}
    assert parse_monitoring(DEFAULTS["monitoring"]) == parse_monitoring({}) == MonitoringSettings()
    m = MonitoringSettings()
    assert (m.enabled, m.spend_watch, m.armor_alert, m.upstream_error_ratio) == (True, True, True, 0.1)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_both_stacks_monitor_by_default(stack):
    settings = parse_mapping(stackfiles.project_values(stackfiles.stack_config(stack)))
    assert settings.monitoring is not None and settings.monitoring.enabled


def test_cli_json_and_partial_objects_parse_with_defaults_filled_in():
    m = parse_monitoring('{"alertEmails": ["Ops@Example.COM", "ops@example.com", " b@x.io "], '
                         '"mintsPerHourAlert": "0", "upstreamErrorRatio": "0.25"}')
    assert m.alert_emails == ("Ops@example.com", "ops@example.com", "b@x.io")  # domain case folded, deduped
    assert (m.mints_per_hour_alert, m.spend_watch) == (0, False)
    assert m.upstream_error_ratio == 0.25
    assert m.upstream_error_window_minutes == 10 and m.alert_window_minutes == 5
    assert m.upstream_min_calls == 10
    assert parse_monitoring({"upstreamMinCalls": "0"}).upstream_min_calls == 0
    assert parse_monitoring({"enabled": "false"}).enabled is False
    assert parse_monitoring({"armorDenialsPerMinuteAlert": 0}).armor_alert is False
    assert parse_monitoring({"runbookUrl": "https://github.com/acme/t/blob/main/README.md/"}).runbook_url == \
        "https://github.com/acme/t/blob/main/README.md"


def test_caller_alerts_follow_caller_auth_not_the_stack_name():
    # Issue 18: the caller-verification alert and the unauthenticated surge exist only where callers
    # are verified (no callerAuth: neither code can occur), and the surge switches off with 0.
    from outspeed_token.monitoring import alert_specs
    verified = {"callerAuth": {"appCheck": {"projectNumber": "123456789012"}}}
    for auth in (False, True):
        base = {"authEnabled": auth, "domain": "token.example.com", "agentIds": ["a-1"]}
        assert parse_mapping({**base, **verified}).monitoring.caller_checks is True
        assert parse_mapping({**base, "callerAuth": {"anonymous": True}} if auth else base).monitoring.caller_checks \
            is False
    keys = [s.key for s in alert_specs(parse_mapping({"authEnabled": False, **verified}).monitoring, "s", "m", None)]
    assert {"auth-unavailable", "unauthenticated"} <= set(keys)
    assert not {"auth-unavailable", "unauthenticated"} & {
        s.key for s in alert_specs(parse_mapping({"authEnabled": False}).monitoring, "s", "m", None)}
    off = parse_mapping({"authEnabled": False, **verified, "monitoring": {"unauthenticatedPerMinuteAlert": 0}})
    assert "unauthenticated" not in {s.key for s in alert_specs(off.monitoring, "s", "m", None)}
    assert "auth-unavailable" in {s.key for s in alert_specs(off.monitoring, "s", "m", None)}


def test_nobody_notified_warns_only_when_monitoring_is_on():
    (warning,) = parse_monitoring({}).warnings
    assert "monitoring.alertEmails" in warning and "nobody is notified" in warning and "pulumi config set" in warning
    assert parse_monitoring({"alertEmails": ["a@example.com"]}).warnings == ()
    assert parse_monitoring({"enabled": False}).warnings == ()
    settings = parse_mapping({"authEnabled": False})
    assert warning in settings.warnings
    assert not any("alertEmails" in w for w in parse_mapping({"authEnabled": False,
                                                              "monitoring": {"enabled": False}}).warnings)


BAD = [
    ("not an object", ["a"], "monitoring", "must be an object"),
    ("not json", "{enabled", "monitoring", "must be an object"),
    ("unknown field", {"alertEmail": ["a@example.com"]}, "monitoring", "unknown field(s) alertEmail"),
    ("enabled not bool", {"enabled": "yes"}, "monitoring.enabled", "true or false"),
    ("emails not a list", {"alertEmails": "a@example.com"}, "monitoring.alertEmails", "list of strings"),
    ("not an email", {"alertEmails": ["oncall"]}, "monitoring.alertEmails", "not an email address"),
    ("display-name email", {"alertEmails": ["Ops <ops@example.com>"]}, "monitoring.alertEmails", "not an email"),
    ("too many emails", {"alertEmails": [f"p{i}@example.com" for i in range(21)]}, "monitoring.alertEmails",
     "more than 20"),
    ("negative spend watch", {"mintsPerHourAlert": -1}, "monitoring.mintsPerHourAlert", "between 0 and"),
    ("spend watch not a number", {"mintsPerHourAlert": "lots"}, "monitoring.mintsPerHourAlert", "whole number"),
    ("zero ratio", {"upstreamErrorRatio": 0}, "monitoring.upstreamErrorRatio", "fraction above 0"),
    ("percent as ratio", {"upstreamErrorRatio": 10}, "monitoring.upstreamErrorRatio", "at most 1"),
    ("ratio text", {"upstreamErrorRatio": "ten"}, "monitoring.upstreamErrorRatio", "fraction"),
    ("ratio bool", {"upstreamErrorRatio": True}, "monitoring.upstreamErrorRatio", "fraction"),
    ("zero ratio window", {"upstreamErrorWindowMinutes": 0}, "monitoring.upstreamErrorWindowMinutes", "between 2 and"),
    ("one-minute window", {"alertWindowMinutes": 1}, "monitoring.alertWindowMinutes", "between 2 and 1440"),
    ("window over a day", {"alertWindowMinutes": 1441}, "monitoring.alertWindowMinutes", "between 2 and 1440"),
    ("negative volume floor", {"upstreamMinCalls": -1}, "monitoring.upstreamMinCalls", "between 0 and"),
    ("volume floor not a number", {"upstreamMinCalls": "some"}, "monitoring.upstreamMinCalls", "whole number"),
    ("negative armor", {"armorDenialsPerMinuteAlert": -5}, "monitoring.armorDenialsPerMinuteAlert", "between 0 and"),
    ("negative unauthenticated", {"unauthenticatedPerMinuteAlert": -1}, "monitoring.unauthenticatedPerMinuteAlert",
     "between 0 and"),
    ("unauthenticated not a number", {"unauthenticatedPerMinuteAlert": "many"},
     "monitoring.unauthenticatedPerMinuteAlert", "whole number"),
    ("http runbook", {"runbookUrl": "http://example.com/README.md"}, "monitoring.runbookUrl", "https://"),
    ("runbook with fragment", {"runbookUrl": "https://example.com/README.md#x"}, "monitoring.runbookUrl", "https://"),
    ("runbook not text", {"runbookUrl": 5}, "monitoring.runbookUrl", "https://"),
]


@pytest.mark.parametrize("label,value,key,phrase", BAD, ids=[b[0] for b in BAD])
def test_bad_monitoring_config_names_the_field_and_the_fix(label, value, key, phrase):
    with pytest.raises(ConfigError) as info:
        parse_mapping({"authEnabled": False, "monitoring": value})
    message = str(info.value)
    assert info.value.key == key
    assert message.startswith(f"config outspeed-token:{key}: "), message
    assert phrase in message, message
    assert message.split("Fix: ", 1)[1].strip()


def test_every_alert_links_a_runbook_that_exists_in_operations_md():
    from outspeed_token.monitoring import alert_specs
    from tools.doc_anchors import anchors, slug
    from tools.plan import ROOT
    page = (ROOT / "docs" / "operations.md").read_text()
    assert "\n## The alerts\n" in page
    slugs = anchors(page)
    specs = alert_specs(MonitoringSettings(caller_checks=True), "svc", "m", "armor")
    assert len(specs) == 7
    for spec in specs:
        assert spec.anchor in slugs, spec.anchor
        assert slug(spec.title) == spec.anchor
