"""Ingest configuration and field extraction, on plain values (dedupe records: tests/test_brokers.py)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pushhub.errors import BadRequest
from pushhub.ingest import extract, sources


def test_parse_sources_and_defaults() -> None:
    parsed = sources.parse({"sources": {
        "gh": {"scheme": "github", "secret_env": "GH", "channel": "github", "allow": ["10.0.0.0/8", "::1/128"]},
        "mine": {"scheme": "hmac", "secrets": "s", "channel": "c", "header": "X-Sig", "type": "const:custom",
                 "id": ["header:x-id", "body:meta.id"], "tolerance": 10, "max_body_bytes": 5},
    }}, {"GH": "from-env"})
    gh, mine = parsed["gh"], parsed["mine"]
    assert gh.signature.secrets == ("from-env",)
    assert gh.type_refs == ("header:x-github-event",) and gh.id_refs == ("header:x-github-delivery",)
    assert gh.allows("10.1.2.3") and gh.allows("::ffff:10.1.2.3") and gh.allows("::1")
    assert not gh.allows("127.0.0.1") and not gh.allows(None) and not gh.allows("not an ip")
    assert mine.signature.header == "x-sig" and mine.max_body_bytes == 5
    assert mine.type_refs == ("const:custom",) and mine.id_refs == ("header:x-id", "body:meta.id")
    described = gh.describe()
    assert described["secrets"] == 1 and "from-env" not in orjson.dumps(described).decode()


@pytest.mark.parametrize(("table", "message"), [
    ({"scheme": "github", "secrets": ["s"]}, "'channel' is required"),
    ({"scheme": "github", "channel": "c"}, "at least one secret"),
    ({"scheme": "github", "secrets": ["s"], "channel": "c", "colour": "red"}, "unknown field"),
    ({"scheme": "github", "secret_env": "MISSING", "channel": "c"}, "MISSING is not set"),
    ({"scheme": "none", "channel": "c", "allow": ["10.0.0.0/33"]}, "invalid CIDR"),
    ({"scheme": "none", "channel": "c", "type": "json:type"}, "invalid field reference"),
    ({"scheme": "none", "channel": "c", "id": "const:x"}, "invalid field reference"),
    ({"scheme": "none", "channel": "bad channel"}, "invalid channel"),
    ({"scheme": "none", "channel": "c", "max_body_bytes": 0}, "positive integer"),
    ({"scheme": "stripe", "secrets": ["s"], "channel": "c", "tolerance": "5m"}, "positive number"),
    ({"scheme": "hmac", "secrets": ["s"], "channel": "c", "encoding": "base32"}, "unknown encoding"),
])
def test_config_errors_name_the_source(table: dict[str, object], message: str) -> None:
    with pytest.raises(BadRequest, match=message) as raised:
        sources.parse({"sources": {"src": table}}, {})
    assert "ingest source 'src'" in raised.value.message


def test_load_json_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "ingest.json"
    path.write_text('{"sources": {"a": {"scheme": "none", "channel": "a"}}}')
    assert list(sources.load_file(str(path), {})) == ["a"]
    path.write_text("{")
    with pytest.raises(BadRequest, match="not valid JSON"):
        sources.load_file(str(path), {})
    with pytest.raises(BadRequest, match="cannot read"):
        sources.load_file(str(tmp_path / "missing.toml"), {})


def test_extraction() -> None:
    data = extract.decode_body(b'{"event": {"type": "app_mention", "n": 5}, "ok": true}', "application/json")
    headers = {"x-github-event": "push"}
    assert extract.first(["body:event.type"], headers, data) == "app_mention"
    assert extract.first(["body:event.n"], headers, data) == "5"
    assert extract.first(["body:ok", "body:missing", "header:X-GitHub-Event"], headers, data) == "push"
    assert extract.first(["body:event.type.deeper"], headers, data) is None
    assert extract.event_type("deploy finished!") == "deploy_finished_"
    assert extract.event_type(None) == "webhook"
    assert extract.event_type("x" * 500) == "x" * 128
    assert extract.decode_body(b"a=1&payload=%7B%22k%22%3A1%7D", "application/x-www-form-urlencoded") == {"k": 1}
    assert extract.decode_body(b"a=1&b=", "application/x-www-form-urlencoded") == {"a": "1", "b": ""}
    assert extract.delivery_key("d-1") == "d-1"
    assert extract.delivery_key("x" * 200).startswith("sha256:")


