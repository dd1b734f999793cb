"""Key files, config files and amounts as the operator types them."""

from __future__ import annotations

import os

import pytest

from node import units
from node.config import ConfigError, NodeConfig, PeerConfig, parse_config, render_config
from node.crypto import KeyFileError, generate_key, load_key_file, verify, write_key_file


def test_key_file_is_written_0600_and_loads(tmp_path):
    key = generate_key()
    path = tmp_path / "node.key"
    write_key_file(path, key)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert load_key_file(path).public_key == key.public_key


def test_key_file_readable_by_others_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "node.key"
    write_key_file(path, generate_key())
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key_file(path)


def test_key_file_never_overwritten(tmp_path):
    path = tmp_path / "node.key"
    write_key_file(path, generate_key())
    with pytest.raises(FileExistsError):
        write_key_file(path, generate_key())


def test_seed_is_not_in_repr():
    key = generate_key()
    assert key.seed.hex() not in repr(key)


def test_signatures_are_domain_separated():
    key = generate_key()
    signature = key.sign(b"peer-frame", b"payload")
    assert verify(key.public_key, b"peer-frame", b"payload", signature)
    assert not verify(key.public_key, b"api-request", b"payload", signature)
    assert not verify(key.public_key, b"peer-frame", b"payloae", signature)


def test_config_round_trips():
    config = NodeConfig(
        "bank-a.test",
        ("127.0.0.1", 7401),
        bytes(32),
        bytes([1]) * 32,
        (PeerConfig("bank-b.test", bytes([2]) * 32, ("127.0.0.1", 7402), {"1E-2 USD": 100}),),
    )
    assert parse_config(render_config(config)) == config


@pytest.mark.parametrize(
    "mutation",
    [
        lambda t: t.replace('listen = "127.0.0.1:7401"', 'listen = "nowhere"'),
        lambda t: t.replace('"1E-2 USD" = 100', '"dollars" = 100'),
        lambda t: t.replace('"1E-2 USD" = 100', '"1E-2 USD" = -1'),
        lambda t: t.replace("[node]", "[nod]"),
        lambda t: t + "\n[[peers]\n",
        lambda t: t.replace("02" * 32, "00" * 32),
    ],
)
def test_bad_config_is_refused(mutation):
    config = NodeConfig(
        "bank-a.test",
        ("127.0.0.1", 7401),
        bytes(32),
        bytes([1]) * 32,
        (PeerConfig("bank-b.test", bytes([2]) * 32, ("127.0.0.1", 7402), {"1E-2 USD": 100}),),
    )
    with pytest.raises(ConfigError):
        parse_config(mutation(render_config(config)))


@pytest.mark.parametrize(
    ("text", "unit", "amount"),
    [
        ("12.50", "1E-2 USD", 1250),
        ("1", "1E-2 USD", 100),
        ("8", "1E0 EUR", 8),
        ("0.000005", "1E-6 USD", 5),
    ],
)
def test_amounts_parse_and_format(text, unit, amount):
    assert units.parse_amount(text, unit) == amount
    assert units.parse_amount(units.format_amount(amount, unit), unit) == amount


@pytest.mark.parametrize("text", ["0", "-1", "0.001", "abc", "NaN", "1e30"])
def test_bad_amounts_are_refused(text):
    with pytest.raises(units.AmountError):
        units.parse_amount(text, "1E-2 USD")


def test_units_resolve_from_bare_codes():
    assert units.resolve_unit("USD", ["1E-2 USD", "1E0 EUR"]) == "1E-2 USD"
    with pytest.raises(units.AmountError):
        units.resolve_unit("GBP", ["1E-2 USD"])
    assert units.format_amount(-1250, "1E-2 USD") == "-12.50"
