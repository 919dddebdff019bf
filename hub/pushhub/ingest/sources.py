"""Ingest sources, read from a TOML or JSON file (pure apart from reading that file).

Each source is a table under ``sources``; the table's key is the name in the URL
``/v1/ingest/{name}``. See the README section "Ingesting webhooks" for every field.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ..channels import validate_channel
from ..errors import BadRequest
from .extract import DEFAULT_ID, DEFAULT_TYPE, check_refs
from .verify import DEFAULT_TOLERANCE, Signature

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_MAX_BODY = 1 << 20
FIELDS = ("scheme", "secrets", "secret_env", "channel", "type", "id", "tolerance", "allow", "max_body_bytes",
          "header", "algorithm", "encoding", "prefix")


@dataclass(frozen=True)
class Source:
    name: str
    signature: Signature
    channel: str
    type_refs: tuple[str, ...]
    id_refs: tuple[str, ...]
    allow: tuple[Network, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY

    def allows(self, address: str | None) -> bool:
        """Whether a request from ``address`` may use this source (always, with no allowlist)."""
        if not self.allow:
            return True
        if address is None:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.allow)

    def describe(self) -> dict[str, Any]:
        """What the admin API shows: everything but the secrets."""
        spec = self.signature
        out: dict[str, Any] = {
            "name": self.name, "scheme": spec.scheme, "secrets": len(spec.secrets), "channel": self.channel,
            "type": list(self.type_refs), "id": list(self.id_refs), "allow": [str(n) for n in self.allow],
            "max_body_bytes": self.max_body_bytes, "url": f"/v1/ingest/{self.name}",
        }
        if spec.scheme in ("standard", "stripe", "slack"):
            out["tolerance"] = spec.tolerance
        if spec.scheme == "hmac":
            out.update(header=spec.header, algorithm=spec.algorithm, encoding=spec.encoding, prefix=spec.prefix)
        return out


def load_file(path: str, environ: Mapping[str, str] | None = None) -> dict[str, Source]:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise BadRequest(f"cannot read ingest config {path}: {exc.strerror}") from exc
    try:
        document = orjson.loads(raw) if path.endswith(".json") else tomllib.loads(raw.decode())
    except (orjson.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"ingest config {path} is not valid {'JSON' if path.endswith('.json') else 'TOML'}: "
                         f"{exc}") from exc
    return parse(document, os.environ if environ is None else environ)


def parse(document: Any, environ: Mapping[str, str]) -> dict[str, Source]:
    if not isinstance(document, dict) or not isinstance(document.get("sources", {}), dict):
        raise BadRequest("the ingest config needs a 'sources' table of named sources")
    return {name: _source(name, table, environ) for name, table in document.get("sources", {}).items()}


def _source(name: str, table: Any, environ: Mapping[str, str]) -> Source:
    where = f"ingest source {name!r}"
    try:
        validate_channel(name)
        if not isinstance(table, dict):
            raise BadRequest("must be a table")
        unknown = set(table) - set(FIELDS)
        if unknown:
            raise BadRequest(f"unknown field(s) {', '.join(sorted(unknown))}")
        scheme = _str(table, "scheme", None)
        secrets = _list(table, "secrets")
        for variable in _list(table, "secret_env"):
            if not environ.get(variable):
                raise BadRequest(f"environment variable {variable} is not set")
            secrets.append(environ[variable])
        max_body = table.get("max_body_bytes", DEFAULT_MAX_BODY)
        tolerance = table.get("tolerance", DEFAULT_TOLERANCE)
        if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
            raise BadRequest("'max_body_bytes' must be a positive integer")
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or tolerance <= 0:
            raise BadRequest("'tolerance' must be a positive number of seconds")
        signature = Signature(
            scheme, tuple(secrets), float(tolerance), _str(table, "header", "x-webhook-signature").lower(),
            _str(table, "algorithm", "sha256"), _str(table, "encoding", "hex"), _str(table, "prefix", ""))
        type_refs = check_refs(_list(table, "type") or list(DEFAULT_TYPE[scheme]), allow_const=True)
        id_refs = check_refs(_list(table, "id") or list(DEFAULT_ID[scheme]), allow_const=False)
        try:
            allow = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in _list(table, "allow"))
        except ValueError as exc:
            raise BadRequest(f"'allow' holds an invalid CIDR: {exc}") from exc
        return Source(name, signature, validate_channel(_str(table, "channel", None)), type_refs, id_refs,
                      allow, max_body)
    except BadRequest as exc:
        raise BadRequest(f"{where}: {exc.message}") from exc


def _str(table: dict[str, Any], key: str, default: str | None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise BadRequest(f"'{key}' must be a string" if key in table else f"'{key}' is required")
    return value


def _list(table: dict[str, Any], key: str) -> list[str]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"'{key}' must be a string or a list of strings")
    return list(value)
