"""One configuration: a TOML file keyed by flag names, flags > environment > file > defaults, one
duration grammar, errors that name the flag, ``pushhub config``."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from pushhub import durations
from pushhub.config import add_arguments, effective, load
from pushhub.errors import BadRequest
from pushhub.ingest.sources import load_file as sources_of

from .utils import TIMEOUT

FILE = """
port = 9100
data-dir = "/srv/pushhub"
dedupe-window = "72h"
publisher-key = ["from-file"]
heartbeat = 30
webhook-retention = "7d"

[sources.stripe]
scheme = "stripe"
secrets = ["whsec_from_file"]
channel = "payments"
"""


def args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_flags_beat_environment_beat_file_beat_defaults(tmp_path: Path) -> None:
    config = tmp_path / "pushhub.toml"
    config.write_text(FILE)
    settings, sources = effective(args("--config", str(config), "--port", "9300"),
                                  {"PUSHHUB_PORT": "9200", "PUSHHUB_HEARTBEAT": "5s"})
    assert (settings.port, sources["port"]) == (9300, "flag")
    assert (settings.heartbeat, sources["heartbeat"]) == (5.0, "env")
    assert (settings.data_dir, sources["data_dir"]) == ("/srv/pushhub", "file")
    assert (settings.dedupe_window, settings.publisher_keys) == (72 * 3600.0, ["from-file"])
    assert (settings.max_backlog, sources["max_backlog"]) == (10_000, "default")
    assert settings.ingest_config == str(config), "the file's [sources] table defines the ingest sources"
    assert list(sources_of(settings.ingest_config)) == ["stripe"]


def test_the_file_can_come_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "pushhub.toml"
    config.write_text('log-format = "json"\n')
    assert load(environ={"PUSHHUB_CONFIG": str(config)}).log_format == "json"


@pytest.mark.parametrize(("flag", "value", "seconds"), [("--dedupe-window", "72h", 259200.0),
                                                       ("--heartbeat", "1500ms", 1.5),
                                                       ("--shutdown-timeout", "2.5m", 150.0),
                                                       ("--webhook-timeout", "10", 10.0)])
def test_every_duration_setting_takes_the_one_grammar(flag: str, value: str, seconds: float) -> None:
    settings = load(args(flag, value), environ={})
    assert getattr(settings, flag.removeprefix("--").replace("-", "_")) == seconds


@pytest.mark.parametrize(("argv", "environ", "named"), [
    (["--dedupe-window", "three days"], {}, "--dedupe-window (PUSHHUB_DEDUPE_WINDOW): use a number and one of"),
    ([], {"PUSHHUB_WEBHOOK_RETENTION": "forever"}, "--webhook-retention (PUSHHUB_WEBHOOK_RETENTION)"),
    (["--port", "eighty"], {}, "--port (PUSHHUB_PORT)"),
])
def test_errors_name_the_flag(argv: list[str], environ: dict[str, str], named: str) -> None:
    with pytest.raises(BadRequest) as caught:
        load(args(*argv), environ)
    assert named in caught.value.message


def test_file_errors_name_the_file_and_the_key(tmp_path: Path) -> None:
    config = tmp_path / "pushhub.toml"
    config.write_text('data_dir = "/x"\n')
    with pytest.raises(BadRequest, match=r"unknown setting 'data_dir'.*flag names"):
        load(args("--config", str(config)), {})
    config.write_text('port = "eighty"\n')
    with pytest.raises(BadRequest, match=rf"invalid value 'eighty' for --port \(in {config}\)"):
        load(args("--config", str(config)), {})
    config.write_text("port = [\n")
    with pytest.raises(BadRequest, match="not valid TOML"):
        load(args("--config", str(config)), {})
    with pytest.raises(BadRequest, match="cannot read it"):
        load(args("--config", str(tmp_path / "missing.toml")), {})


def test_the_grammar_itself() -> None:
    assert durations.parse("90s") == 90 and durations.parse("7d") == 7 * 86400 and durations.parse("250ms") == 0.25
    for bad in ("", "5", "5 parsecs", "-1s", "1e3s"):
        with pytest.raises(BadRequest):
            durations.parse(bad)


def test_pushhub_config_shows_effective_settings_with_secrets_masked(tmp_path: Path) -> None:
    config = tmp_path / "pushhub.toml"
    config.write_text(FILE)
    result = subprocess.run([sys.executable, "-m", "pushhub", "config", "--config", str(config), "--redis",
                             "redis://:hunter2@127.0.0.1:6390/0", "--admin-key", "a" * 32],
                            capture_output=True, text=True, timeout=4 * TIMEOUT)
    assert result.returncode == 0, result.stderr
    shown = orjson.loads(result.stdout)
    assert shown["publisher-key"] == {"value": ["***"], "from": "file"}
    assert shown["admin-key"] == {"value": ["***"], "from": "flag"}
    assert shown["redis"]["value"] == "redis://:***@127.0.0.1:6390/0"
    assert shown["dedupe-window"] == {"value": 259200.0, "from": "file"}
    assert "hunter2" not in result.stdout and "a" * 32 not in result.stdout


def test_serve_help_is_grouped_with_defaults() -> None:
    result = subprocess.run([sys.executable, "-m", "pushhub", "serve", "--help"], capture_output=True, text=True,
                            timeout=4 * TIMEOUT)
    for title in ("server and storage:", "access control:", "outgoing webhooks:", "operations:"):
        assert title in result.stdout
    assert "(default 8000; env PUSHHUB_PORT)" in " ".join(result.stdout.split())
