"""TokenEndpointArgs <-> stack config: one mapping, so args and stack config are validated alike."""
from __future__ import annotations

import pytest

from outspeed_token import stackfiles
from outspeed_token.endpoint_args import TokenEndpointArgs, camel, from_config, snake, to_config
from outspeed_token.settings import ConfigError, parse_mapping


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_config_round_trips_through_args(stack):
    values = stackfiles.project_values(stackfiles.stack_config(stack))
    values.pop("outspeedApiKey", None)
    args = from_config(values)
    assert set(args) == {snake(k) for k in values}
    assert to_config(args) == values
    assert parse_mapping(to_config(args)) == parse_mapping(values)


def test_nested_typed_objects_are_snake_case_and_session_config_is_untouched():
    args = from_config({
        "rateLimit": '{"requestsPerMinute": 30, "banSeconds": 60}',  # JSON text, as the CLI passes it
        "callerAuth": {"idToken": {"issuer": "https://i.example", "audience": "a", "jwksUri": "",
                                   "allowAnonymous": False},
                       "appCheck": {"projectNumber": "1", "appIds": [], "consume": True}},
        "quotas": {"perCaller": [{"count": 5, "windowSeconds": 3600}], "global": [{"count": 9, "windowSeconds": 60}],
                   "failOpen": False},
        "sessionConfig": {"turn_detection": {"type": "server_vad"}, "firstMessage": "hi"},
    })
    assert args["rate_limit"] == {"requests_per_minute": 30, "ban_seconds": 60}
    assert args["caller_auth"]["id_token"]["jwks_uri"] == "" and args["caller_auth"]["app_check"]["consume"] is True
    assert args["quotas"]["global_"] == [{"count": 9, "window_seconds": 60}]
    assert args["quotas"]["per_caller"] == [{"count": 5, "window_seconds": 3600}]
    assert args["session_config"] == {"turn_detection": {"type": "server_vad"}, "firstMessage": "hi"}
    back = to_config(args)
    assert back["quotas"]["global"] == [{"count": 9, "windowSeconds": 60}]
    assert back["sessionConfig"] == {"turn_detection": {"type": "server_vad"}, "firstMessage": "hi"}


def test_only_set_fields_reach_the_parser_and_component_fields_never_do():
    args: TokenEndpointArgs = {"outspeed_api_key": "k", "project": "p", "region": "r", "name_prefix": "x",
                               "auth_enabled": False, "domain": None}
    assert to_config(args) == {"authEnabled": False}


def test_a_typo_in_a_nested_field_is_refused_by_the_parser_naming_it():
    with pytest.raises(ConfigError) as err:
        parse_mapping(to_config({"auth_enabled": False, "rate_limit": {"requests_per_minut": 5}}))
    assert err.value.key == "rateLimit" and "requestsPerMinut" in str(err.value)


def test_names_follow_the_schema_analyzer():
    from pulumi.provider.experimental.util import camel_case

    for name in ("rate_limit", "global_", "armor_denials_per_minute_alert", "jwks_uri", "memory"):
        assert camel(name) == camel_case(name)
        assert snake(camel(name)) == name
