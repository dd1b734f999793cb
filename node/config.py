"""A node's directory: its config file, key files and log.

Layout of a node directory (made by ``ledgermesh init``)::

    node.toml      the config (below)
    node.key       the node's ed25519 seed, mode 0600
    operator.key   the operator's ed25519 seed, mode 0600; its public key is in node.toml
    log/           the append-only log and snapshots
    node.lock      held (flock) by the running node, so two never share a log

``node.toml``::

    [node]
    name = "bank-a.test"
    listen = "127.0.0.1:7401"
    public_key = "<hex>"
    operator_key = "<hex>"            # the only key allowed to run operator commands

    [limits.daily]                     # per customer and UTC day, in the asset's units
    "bank-a.test/USD" = 100000000

    [units]                            # optional: the asset we pay customers in, per SNAP unit
    "1E-2 USD" = "bank-a.test/USD"     # our own asset; its decimals must be 2 (1E-2)

    [routing]                          # optional: how we forward payments (defaults in limits)
    fee_base = 0                       # integer units of the unit passed on
    fee_ppm = 1000                     # millionths of the amount passed on
    expiry_delta_ms = 20000            # between the expiry we get and the one we give

    [[peers]]
    name = "bank-b.test"
    public_key = "<hex>"
    address = "127.0.0.1:7402"        # optional: a peer without one dials us
    [peers.limits]                     # the credit we extend to this peer, per unit
    "1E-2 USD" = 100000000

Trust is configured, never discovered: only the peers listed here may connect
as peers.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from node.crypto import parse_public_key
from node.ledger.codec import issuer_of, valid_uai
from node.limits import (
    AMOUNT_MAX,
    NAME_LENGTH_MAX,
    PAYMENT_EXPIRY_DELTA_MS_MAX,
    PAYMENT_EXPIRY_DELTA_MS_MIN,
    PAYMENT_FEE_PPM_MAX,
    ROUTING_EXPIRY_DELTA_MS_DEFAULT,
    ROUTING_FEE_BASE_DEFAULT,
    ROUTING_FEE_PPM_DEFAULT,
)
from node.wire import valid_unit

CONFIG_FILE = "node.toml"
KEY_FILE = "node.key"
OPERATOR_KEY_FILE = "operator.key"
LOG_DIRECTORY = "log"
LOCK_FILE = "node.lock"


class ConfigError(Exception):
    """Raised when a node directory or its config is missing or invalid."""


@dataclass(frozen=True)
class PeerConfig:
    name: str
    public_key: bytes
    address: tuple[str, int] | None
    limits: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RoutingConfig:
    """How this validator forwards multi-hop payments (announced to the mesh)."""

    fee_base: int = ROUTING_FEE_BASE_DEFAULT
    fee_ppm: int = ROUTING_FEE_PPM_DEFAULT
    expiry_delta_ms: int = ROUTING_EXPIRY_DELTA_MS_DEFAULT


_ROUTING_RANGES = {
    "fee_base": (0, AMOUNT_MAX),
    "fee_ppm": (0, PAYMENT_FEE_PPM_MAX),
    "expiry_delta_ms": (PAYMENT_EXPIRY_DELTA_MS_MIN, PAYMENT_EXPIRY_DELTA_MS_MAX),
}


@dataclass(frozen=True)
class NodeConfig:
    name: str
    listen: tuple[str, int]
    public_key: bytes
    operator_key: bytes
    peers: tuple[PeerConfig, ...] = ()
    daily_limits: dict[str, int] = field(default_factory=dict)
    routing: RoutingConfig = RoutingConfig()
    units: dict[str, str] = field(default_factory=dict)
    """SNAP unit -> the asset (our own UAI) we debit and credit customers in."""

    def unit_of_asset(self, uai: str) -> str | None:
        return next((unit for unit, asset in self.units.items() if asset == uai), None)

    def peer_by_name(self, name: str) -> PeerConfig | None:
        return next((peer for peer in self.peers if peer.name == name), None)

    def peer_by_key(self, key: bytes) -> PeerConfig | None:
        return next((peer for peer in self.peers if peer.public_key == key), None)

    def with_peer(self, peer: PeerConfig) -> NodeConfig:
        """This config with ``peer`` added, or replacing the peer of the same key or name."""
        others = tuple(
            p for p in self.peers if p.public_key != peer.public_key and p.name != peer.name
        )
        return replace(self, peers=(*others, peer))


def parse_address(text: str) -> tuple[str, int]:
    host, separator, port_text = text.rpartition(":")
    if not separator or not host or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ConfigError(f"address {text!r} is not HOST:PORT")
    return host.strip("[]"), int(port_text)


def format_address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _require(table: dict[str, object], key: str, kind: type, where: str) -> object:
    value = table.get(key)
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: {key} must be a {kind.__name__}")
    return value


def _key(table: dict[str, object], key: str, where: str) -> bytes:
    try:
        return parse_public_key(str(_require(table, key, str, where)))
    except ValueError as error:
        raise ConfigError(f"{where}: {key}: {error}") from None


def _name(table: dict[str, object], where: str) -> str:
    name = str(_require(table, "name", str, where))
    if not 0 < len(name) <= NAME_LENGTH_MAX:
        raise ConfigError(f"{where}: name must have 1..{NAME_LENGTH_MAX} characters")
    return name


def _peer(table: object, index: int) -> PeerConfig:
    where = f"peers[{index}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    address_text = table.get("address")
    address = parse_address(str(address_text)) if address_text is not None else None
    limits_table = table.get("limits", {})
    if not isinstance(limits_table, dict):
        raise ConfigError(f"{where}.limits must be a table")
    limits: dict[str, int] = {}
    for unit, limit in limits_table.items():
        if not valid_unit(unit):
            raise ConfigError(f"{where}.limits: unit {unit!r} is not like '1E-2 USD'")
        if type(limit) is not int or not 0 <= limit <= AMOUNT_MAX:
            raise ConfigError(f"{where}.limits: {unit} must be an integer 0..{AMOUNT_MAX}")
        limits[unit] = limit
    return PeerConfig(_name(table, where), _key(table, "public_key", where), address, limits)


def parse_config(text: str, source: str = CONFIG_FILE) -> NodeConfig:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: {error}") from None
    node = document.get("node")
    if not isinstance(node, dict):
        raise ConfigError(f"{source}: missing [node] table")
    peers_list = document.get("peers", [])
    if not isinstance(peers_list, list):
        raise ConfigError(f"{source}: peers must be an array of tables")
    peers = tuple(_peer(table, index) for index, table in enumerate(peers_list))
    config = NodeConfig(
        name=_name(node, "[node]"),
        listen=parse_address(str(_require(node, "listen", str, "[node]"))),
        public_key=_key(node, "public_key", "[node]"),
        operator_key=_key(node, "operator_key", "[node]"),
        peers=peers,
    )
    daily_limits = _daily_limits(document.get("limits", {}), source)
    routing = _routing(document.get("routing", {}), source)
    units = _units(document.get("units", {}), config.name, source)
    config = replace(config, daily_limits=daily_limits, routing=routing, units=units)
    keys = [peer.public_key for peer in peers]
    if len(set(keys)) != len(keys) or config.public_key in keys:
        raise ConfigError(f"{source}: a peer key appears twice, or is the node's own key")
    return config


def _routing(table: object, source: str) -> RoutingConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: routing must be a table")
    unknown = set(table) - set(_ROUTING_RANGES)
    if unknown:
        raise ConfigError(f"{source}: unknown routing settings {', '.join(sorted(unknown))}")
    for name, value in table.items():
        low, high = _ROUTING_RANGES[name]
        if type(value) is not int or not low <= value <= high:
            raise ConfigError(f"{source}: routing.{name} must be an integer {low}..{high}")
    return RoutingConfig(**table)


def _units(table: object, name: str, source: str) -> dict[str, str]:
    """``[units]``: SNAP unit = our asset. One asset per unit and one unit per
    asset; the asset is ours (``name/CODE``). That its decimals equal minus the
    unit's exponent is checked where it is used (assets are defined at run time)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: units must be a table of unit = asset")
    units: dict[str, str] = {}
    for unit, uai in table.items():
        if not valid_unit(unit):
            raise ConfigError(f"{source}: units: {unit!r} is not like '1E-2 USD'")
        if type(uai) is not str or not valid_uai(uai) or issuer_of(uai) != name:
            raise ConfigError(f"{source}: units: {unit} must name an asset of ours ({name}/CODE)")
        if uai in units.values():
            raise ConfigError(f"{source}: units: {uai} is the asset of two units")
        units[unit] = uai
    return units


def _daily_limits(table: object, source: str) -> dict[str, int]:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: limits must be a table")
    unknown = set(table) - {"daily"}
    if unknown:
        raise ConfigError(f"{source}: unknown limits {', '.join(sorted(unknown))}")
    daily = table.get("daily", {})
    if not isinstance(daily, dict):
        raise ConfigError(f"{source}: limits.daily must be a table of asset = amount")
    limits: dict[str, int] = {}
    for uai, amount in daily.items():
        issuer, slash, code = uai.partition("/")
        if not slash or not issuer or not code:
            raise ConfigError(f"{source}: limits.daily: {uai!r} is not issuer-domain/CODE")
        if type(amount) is not int or not 0 <= amount <= AMOUNT_MAX:
            raise ConfigError(f"{source}: limits.daily: {uai} must be an integer 0..{AMOUNT_MAX}")
        limits[uai] = amount
    return limits


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def render_config(config: NodeConfig) -> str:
    lines = [
        "# ledgermesh node config. Trust is configured, never discovered.",
        "[node]",
        f"name = {_quote(config.name)}",
        f"listen = {_quote(format_address(config.listen))}",
        f"public_key = {_quote(config.public_key.hex())}",
        f"operator_key = {_quote(config.operator_key.hex())}",
    ]
    if config.daily_limits:
        lines += ["", "[limits.daily]  # per customer and UTC day, in the asset's smallest units"]
        lines += [f"{_quote(uai)} = {limit}" for uai, limit in sorted(config.daily_limits.items())]
    if config.units:
        lines += ["", "[units]  # the asset we pay customers in, per SNAP unit"]
        lines += [f"{_quote(unit)} = {_quote(uai)}" for unit, uai in sorted(config.units.items())]
    if config.routing != RoutingConfig():
        routing = config.routing
        lines += ["", "[routing]  # how we forward payments"]
        lines.append(f"fee_base = {routing.fee_base}")
        lines.append(f"fee_ppm = {routing.fee_ppm}")
        lines.append(f"expiry_delta_ms = {routing.expiry_delta_ms}")
    for peer in config.peers:
        lines += ["", "[[peers]]", f"name = {_quote(peer.name)}"]
        lines.append(f"public_key = {_quote(peer.public_key.hex())}")
        if peer.address is not None:
            lines.append(f"address = {_quote(format_address(peer.address))}")
        lines.append("[peers.limits]  # credit we extend to this peer, in integer units")
        lines += [f"{_quote(unit)} = {limit}" for unit, limit in sorted(peer.limits.items())]
    return "\n".join(lines) + "\n"


def load_config(directory: Path) -> NodeConfig:
    path = directory / CONFIG_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(
            f"{directory} is not a node directory (no {CONFIG_FILE}); "
            "create one with: ledgermesh init DIR --name NAME --listen HOST:PORT"
        ) from None
    return parse_config(text, str(path))


def save_config(directory: Path, config: NodeConfig) -> None:
    """Replace the config file atomically."""
    path = directory / CONFIG_FILE
    temporary = path.with_suffix(".toml.tmp")
    temporary.write_text(render_config(config))
    temporary.replace(path)
