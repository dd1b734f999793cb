"""``[units]`` in node.toml: strictly parsed, rendered back, refused when wrong."""

from __future__ import annotations

import pytest

from node.config import ConfigError, parse_config, render_config

KEY = "11" * 32
OPERATOR = "22" * 32
BASE = f"""
[node]
name = "bank-a.test"
listen = "127.0.0.1:7401"
public_key = "{KEY}"
operator_key = "{OPERATOR}"
"""


def test_units_map_a_unit_to_our_asset_and_survive_rendering() -> None:
    config = parse_config(BASE + '[units]\n"1E-2 USD" = "bank-a.test/USD"\n')
    assert config.units == {"1E-2 USD": "bank-a.test/USD"}
    assert config.unit_of_asset("bank-a.test/USD") == "1E-2 USD"
    assert config.unit_of_asset("bank-a.test/EUR") is None
    assert parse_config(render_config(config)) == config


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('"USD" = "bank-a.test/USD"', "not like"),
        ('"1E-2 USD" = "bank-b.test/USD"', "asset of ours"),
        ('"1E-2 USD" = "usd"', "asset of ours"),
        ('"1E-2 USD" = 5', "asset of ours"),
        ('"1E-2 USD" = "bank-a.test/USD"\n"1E-3 USD" = "bank-a.test/USD"', "two units"),
    ],
)
def test_bad_units_are_refused(table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(BASE + "[units]\n" + table + "\n")
