"""The `monitoring` stack-config object: its defaults (Pulumi.yaml mirrors them), the checked
`MonitoringSettings`, and `parse_monitoring`. Pure: the component (monitoring.py) builds the
metrics, alerts and dashboard from these settings; `settings` parses the object through here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from .parsing import PROJECT, ConfigError, boolean, integer, json_value, str_list

# The declared default object (Pulumi.yaml mirrors it; a test keeps the two identical).
MONITORING_DEFAULTS: dict[str, Any] = {
    "enabled": True, "alertEmails": [], "mintsPerHourAlert": 1000, "upstreamErrorRatio": 0.1,
    "upstreamErrorWindowMinutes": 10, "upstreamMinCalls": 10, "alertWindowMinutes": 5,
    "armorDenialsPerMinuteAlert": 60, "runbookUrl": "", "unauthenticatedPerMinuteAlert": 60,
}
FIELDS = MONITORING_DEFAULTS
MAX_WINDOW_MINUTES = 1440  # alignment periods of alert conditions stay within a day
# A condition must hold for ALERT_DURATION before it opens an incident: evaluationMissingData needs
# a duration of at least 60 s (monitoring.v3 MetricThreshold: "To use this control, the value of the
# duration field must be greater than or equal to 60 seconds"; "0s" is refused with a 400). A burst
# of failures keeps a window's sum above the threshold for one alignment period, so the window must
# be longer than the duration, by a minute of evaluation slack, or a lone burst would never page.
ALERT_DURATION_SECONDS = 60
MIN_WINDOW_MINUTES = 2
MAX_ALERT_EMAILS = 20
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
_RUNBOOK = re.compile(r"^https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/%+-]*)?$")


@dataclass(frozen=True)
class MonitoringSettings:
    enabled: bool = FIELDS["enabled"]
    alert_emails: tuple[str, ...] = ()
    mints_per_hour_alert: int = FIELDS["mintsPerHourAlert"]  # 0 = spend watch off
    upstream_error_ratio: float = FIELDS["upstreamErrorRatio"]
    upstream_error_window_minutes: int = FIELDS["upstreamErrorWindowMinutes"]
    upstream_min_calls: int = FIELDS["upstreamMinCalls"]  # 0 = the ratio alone decides
    alert_window_minutes: int = FIELDS["alertWindowMinutes"]
    armor_denials_per_minute_alert: int = FIELDS["armorDenialsPerMinuteAlert"]  # 0 = off
    runbook_url: str = FIELDS["runbookUrl"]
    unauthenticated_per_minute_alert: int = FIELDS["unauthenticatedPerMinuteAlert"]  # 0 = off
    # Not a monitoring field: whether the stack verifies callers (callerAuth), set by
    # outspeed_token.settings.parse. The caller-auth alerts and chart exist only where it does.
    caller_checks: bool = False

    @property
    def unauthenticated_alert(self) -> bool:
        return self.caller_checks and self.unauthenticated_per_minute_alert > 0

    @property
    def spend_watch(self) -> bool:
        return self.mints_per_hour_alert > 0

    @property
    def armor_alert(self) -> bool:
        return self.armor_denials_per_minute_alert > 0

    @property
    def warnings(self) -> tuple[str, ...]:
        if self.enabled and not self.alert_emails:
            return (f"{PROJECT}:monitoring.alertEmails is empty: the alert policies exist (Cloud console: "
                    "Monitoring > Alerting) but nobody is notified. Add one: "
                    "pulumi config set --path 'monitoring.alertEmails[0]' oncall@example.com",)
        return ()


def _ratio(key: str, value: Any) -> float:
    number: Optional[float] = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
    if number is None or not (0 < number <= 1):
        raise ConfigError(key, f"must be a fraction above 0 and at most 1, got {value!r}",
                          f"set {key} to e.g. 0.1 (alert when 10% of calls to Outspeed fail)")
    return number


def _email(key: str, raw: str) -> str:
    email = raw.strip()
    if not _EMAIL.match(email):
        raise ConfigError(key, f"{raw!r} is not an email address", "list plain addresses, e.g. oncall@example.com")
    local, domain = email.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def parse_monitoring(raw: Any) -> MonitoringSettings:
    """The `monitoring` object (YAML-typed, or JSON text as the CLI passes it). Raises ConfigError."""
    value = json_value("monitoring", raw, "an object", '{"enabled": true, "alertEmails": ["oncall@example.com"]}')
    if not isinstance(value, dict):
        raise ConfigError("monitoring", f"must be an object, got {value!r}",
                          f"write it as a YAML mapping under {PROJECT}:monitoring, e.g. enabled: true, "
                          "alertEmails: [oncall@example.com]")
    unknown = sorted(set(value) - set(FIELDS))
    if unknown:
        raise ConfigError("monitoring", f"unknown field(s) {', '.join(unknown)}", f"use only {', '.join(FIELDS)}")

    def get(name: str) -> Any:
        return value[name] if value.get(name) is not None else FIELDS[name]

    emails = tuple(dict.fromkeys(_email("monitoring.alertEmails", e)
                                 for e in str_list("monitoring.alertEmails", get("alertEmails"))))
    if len(emails) > MAX_ALERT_EMAILS:
        raise ConfigError("monitoring.alertEmails", f"lists {len(emails)} addresses, more than {MAX_ALERT_EMAILS}",
                          "notify a group address (a mailing list) instead of every person")
    runbook = get("runbookUrl")
    if not isinstance(runbook, str) or (runbook.strip() and not _RUNBOOK.match(runbook.strip())):
        raise ConfigError("monitoring.runbookUrl", f"must be an https:// URL without query or fragment, got {runbook!r}",
                          "point it at your copy of docs/operations.md, e.g. https://github.com/acme/outspeed-token/blob/main/docs/operations.md, "
                          "or leave it empty")
    return MonitoringSettings(
        enabled=boolean("monitoring.enabled", get("enabled")),
        alert_emails=emails,
        mints_per_hour_alert=integer("monitoring.mintsPerHourAlert", get("mintsPerHourAlert"), 0, 10_000_000),
        upstream_error_ratio=_ratio("monitoring.upstreamErrorRatio", get("upstreamErrorRatio")),
        upstream_error_window_minutes=integer("monitoring.upstreamErrorWindowMinutes", get("upstreamErrorWindowMinutes"),
                                           MIN_WINDOW_MINUTES, MAX_WINDOW_MINUTES),
        upstream_min_calls=integer("monitoring.upstreamMinCalls", get("upstreamMinCalls"), 0, 1_000_000),
        alert_window_minutes=integer("monitoring.alertWindowMinutes", get("alertWindowMinutes"), MIN_WINDOW_MINUTES,
                                  MAX_WINDOW_MINUTES),
        armor_denials_per_minute_alert=integer("monitoring.armorDenialsPerMinuteAlert",
                                            get("armorDenialsPerMinuteAlert"), 0, 1_000_000),
        runbook_url=runbook.strip().rstrip("/"),
        unauthenticated_per_minute_alert=integer("monitoring.unauthenticatedPerMinuteAlert",
                                              get("unauthenticatedPerMinuteAlert"), 0, 1_000_000),
    )
