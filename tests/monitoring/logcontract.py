"""What Cloud Logging and Cloud Monitoring would do with the function's log lines, for exactly
the constructs outspeed_token/monitoring.py uses, so the tests can run the planned metric filters,
extractors and alert filters over real lines.

Deliberately small and strict: every helper refuses any construct it does not implement
(raises UnsupportedConstruct), so a new filter written with, say, OR, `:` or REGEXP_EXTRACT
fails the suite loudly until this evaluator (and so the test) learns it.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Optional

# LogEntry fields Cloud Logging takes out of a structured stdout line; everything else stays
# in jsonPayload (https://cloud.google.com/logging/docs/structured-logging).
_SPECIAL = {"severity": "severity", "httpRequest": "httpRequest",
            "logging.googleapis.com/trace": "trace", "logging.googleapis.com/spanId": "spanId",
            "logging.googleapis.com/trace_sampled": "traceSampled",
            "logging.googleapis.com/labels": "labels", "logging.googleapis.com/insertId": "insertId",
            "logging.googleapis.com/operation": "operation",
            "logging.googleapis.com/sourceLocation": "sourceLocation"}
_PATH = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_STRING = r'"((?:[^"\\]|\\.)*)"'
_LOG_TERM = re.compile(rf"^({_PATH})(=~|=){_STRING}$")
_EXTRACT = re.compile(rf"^EXTRACT\(({_PATH})\)$")
_MON_TERM = re.compile(rf"^({_PATH})=(?:{_STRING}|(one_of|starts_with)\(((?:\s*\"[^\"]*\"\s*,?)+)\))$")


class UnsupportedConstruct(ValueError):
    """A filter or extractor uses syntax this evaluator does not implement."""


def to_log_entry(line: dict[str, Any], *, project: str, service_name: str) -> dict[str, Any]:
    """One JSON stdout line of a 2nd-gen function as Cloud Logging stores it."""
    entry: dict[str, Any] = {
        "logName": f"projects/{project}/logs/run.googleapis.com%2Fstdout",
        "resource": {"type": "cloud_run_revision",
                     "labels": {"service_name": service_name, "revision_name": f"{service_name}-00001-abc",
                                "configuration_name": service_name, "location": "us-central1",
                                "project_id": project}},
        "jsonPayload": {},
    }
    for key, value in line.items():
        if key in _SPECIAL:
            entry[_SPECIAL[key]] = value
        else:
            entry["jsonPayload"][key] = value
    return entry


_MISSING = object()


def field(entry: dict[str, Any], path: str) -> Any:
    """The value at a dotted path, or _MISSING (a null counts as missing, as in Logging)."""
    value: Any = entry
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value or value[part] is None:
            return _MISSING
        value = value[part]
    return value


def _scalar_text(value: Any) -> Optional[str]:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def log_filter_terms(filter_: str) -> list[tuple[str, str, str]]:
    """`a="x" AND b=~"re"` -> [(path, op, value)]; anything else is refused."""
    terms = []
    for raw in filter_.split(" AND "):
        match = _LOG_TERM.match(raw.strip())
        if not match:
            raise UnsupportedConstruct(f"log filter term {raw.strip()!r} (supported: path=\"v\", path=~\"re\", AND)")
        path, op, value = match.groups()
        terms.append((path, op, value.replace('\\"', '"').replace("\\\\", "\\")))
    return terms


def log_filter_matches(filter_: str, entry: dict[str, Any]) -> bool:
    for path, op, value in log_filter_terms(filter_):
        text = _scalar_text(field(entry, path))
        if text is None:
            return False
        if op == "=" and text != value:
            return False
        if op == "=~" and not re.search(value, text):
            return False
    return True


def extractor_path(extractor: str) -> str:
    match = _EXTRACT.match(extractor.strip())
    if not match:
        raise UnsupportedConstruct(f"extractor {extractor!r} (supported: EXTRACT(path))")
    return match.group(1)


def extract(extractor: str, entry: dict[str, Any]) -> Any:
    """The extracted value, or _MISSING (Logging would then write an empty label / drop the point)."""
    return field(entry, extractor_path(extractor))


def missing(value: Any) -> bool:
    return value is _MISSING


def filter_paths(filter_: str) -> list[str]:
    return [path for path, _, _ in log_filter_terms(filter_)]


def metric_points(metric: dict[str, Any], entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a log-based metric (a planned gcp.logging.Metric's inputs) records for entries:
    one point per matching entry, {"metric.type", "resource.type", labels..., "value"}."""
    points = []
    for entry in entries:
        if not log_filter_matches(metric["filter"], entry):
            continue
        point = {"metric.type": f"logging.googleapis.com/user/{metric['name']}",
                 "resource.type": entry["resource"]["type"],
                 **{f"resource.label.{k}": v for k, v in entry["resource"]["labels"].items()}}
        for label, extractor in (metric.get("labelExtractors") or {}).items():
            value = extract(extractor, entry)
            point[f"metric.label.{label}"] = "" if missing(value) else _scalar_text(value)
        if metric.get("valueExtractor"):
            value = extract(metric["valueExtractor"], entry)
            point["value"] = None if missing(value) else value
        points.append(point)
    return points


def monitoring_filter_terms(filter_: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """Monitoring filter: `k="v"`, `k=one_of("a", "b")`, `k=starts_with("x")` joined by AND."""
    terms = []
    for raw in filter_.split(" AND "):
        match = _MON_TERM.match(raw.strip())
        if not match:
            raise UnsupportedConstruct(f"monitoring filter term {raw.strip()!r} "
                                       "(supported: k=\"v\", k=one_of(...), k=starts_with(...), AND)")
        path, literal, function, args = match.groups()
        if function is None:
            terms.append((path, "=", (literal,)))
        else:
            values = tuple(re.findall(r'"([^"]*)"', args))
            if function == "starts_with" and len(values) != 1:
                raise UnsupportedConstruct(f"starts_with takes one argument: {raw!r}")
            terms.append((path, function, values))
    return terms


def monitoring_filter_matches(filter_: str, point: dict[str, Any]) -> bool:
    for path, op, values in monitoring_filter_terms(filter_):
        actual = point.get(path)
        if actual is None:
            return False
        if op in ("=", "one_of") and actual not in values:
            return False
        if op == "starts_with" and not actual.startswith(values[0]):
            return False
    return True


def monitoring_filter_metric_type(filter_: str) -> str:
    types = [values[0] for path, op, values in monitoring_filter_terms(filter_) if path == "metric.type"]
    if len(types) != 1:
        raise UnsupportedConstruct(f"a monitoring filter must name exactly one metric.type: {filter_!r}")
    return types[0]


# --- one evaluation window of a metric-threshold condition -------------------------------------
# Models exactly what outspeed_token/monitoring.py configures: every point falls inside one alignment
# period, ALIGN_SUM + REDUCE_SUM with no grouping (one output series), an optional ratio, and
# missing data treated as "not met" (EVALUATION_MISSING_DATA_INACTIVE). Anything else is refused.
# The points arrive as one burst: the rolling window's value stays where the burst put it for one
# alignment period, and the condition must hold for its `duration` before it counts as met, with
# a minute of slack for the evaluation cadence. So a burst is met only when the alignment period
# is at least the duration plus 60 s (outspeed_token/monitoring.py: MIN_WINDOW_MINUTES).
EVALUATION_SLACK_SECONDS = 60

def _window_sum(filter_: str, aggregations: list[dict[str, Any]], points: list[dict[str, Any]]) -> Optional[float]:
    if [(a.get("perSeriesAligner"), a.get("crossSeriesReducer"), a.get("groupByFields")) for a in aggregations] != [
            ("ALIGN_SUM", "REDUCE_SUM", None)]:
        raise UnsupportedConstruct(f"aggregations {aggregations!r} (supported: one ALIGN_SUM + REDUCE_SUM, no groupBy)")
    matched = [p for p in points if monitoring_filter_matches(filter_, p)]
    return float(len(matched)) if matched else None  # a log-based counter writes no point without entries


def condition_value(threshold: dict[str, Any], points: list[dict[str, Any]]) -> Optional[float]:
    """The condition's value over the window, or None when it has no data."""
    value = _window_sum(threshold["filter"], threshold["aggregations"], points)
    if "denominatorFilter" not in threshold:
        return value
    denominator = _window_sum(threshold["denominatorFilter"], threshold["denominatorAggregations"], points)
    if value is None or denominator is None:
        return None
    return value / denominator


def condition_met(threshold: dict[str, Any], points: list[dict[str, Any]]) -> bool:
    if threshold.get("evaluationMissingData") != "EVALUATION_MISSING_DATA_INACTIVE":
        raise UnsupportedConstruct("only EVALUATION_MISSING_DATA_INACTIVE is modelled")
    value = condition_value(threshold, points)
    if value is None:
        return False
    if threshold["comparison"] != "COMPARISON_GT":
        raise UnsupportedConstruct(f"comparison {threshold['comparison']!r}")
    return value > threshold["thresholdValue"] and _held_for_duration(threshold)


def _seconds(duration: str) -> int:
    if not re.fullmatch(r"[0-9]+s", duration) or int(duration[:-1]) % 60:
        raise UnsupportedConstruct(f"duration {duration!r} (supported: whole minutes, as \"60s\")")
    return int(duration[:-1])


def _held_for_duration(threshold: dict[str, Any]) -> bool:
    """A burst's value lasts one alignment period; it must outlast the duration (plus slack)."""
    periods = {_seconds(a["alignmentPeriod"]) for a in
               [*threshold["aggregations"], *threshold.get("denominatorAggregations", [])]}
    return min(periods) >= _seconds(threshold["duration"]) + EVALUATION_SLACK_SECONDS


def policy_fires(policy: dict[str, Any], points: list[dict[str, Any]]) -> bool:
    """A planned AlertPolicy's inputs: OR = any condition met, AND = all met in the same window."""
    met = [condition_met(c["conditionThreshold"], points) for c in policy["conditions"]]
    if policy["combiner"] == "OR":
        return any(met)
    if policy["combiner"] == "AND":
        return all(met)
    raise UnsupportedConstruct(f"combiner {policy['combiner']!r}")
