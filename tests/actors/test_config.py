"""Config loading: defaults, then a TOML file (top level or a [tapgrid]
table), then TAPGRID_* environment variables, then flags; later wins."""
import pytest

from actors import Config
from web.cli import build_parser, load_config


def write(tmp_path, text):
    path = tmp_path / "tapgrid.toml"
    path.write_text(text)
    return str(path)


def test_defaults_without_file_env_or_flags():
    cfg = Config.load(env={})
    assert cfg == Config()
    assert (cfg.port, cfg.feed, cfg.demo, cfg.redis, cfg.column_ms) == (8080, "sim", True, None, 5000)
    assert cfg.min_free_disk == "1%"


def test_toml_at_top_level_and_under_tapgrid(tmp_path):
    top = Config.load(write(tmp_path, 'port = 9001\nfeed = "binance"\nedge_bp = 300\n'), env={})
    assert (top.port, top.feed, top.edge_bp) == (9001, "binance", 300)
    table = Config.load(write(tmp_path, '[tapgrid]\nport = 9002\nallowed_origins = ["https://a.test"]\n'
                                        'min_free_disk = "2G"\n'), env={})
    assert (table.port, table.allowed_origins, table.min_free_disk) == (9002, ["https://a.test"], 2 << 30)
    assert table.feed == "sim"                      # untouched keys keep their defaults


def test_env_is_coerced_to_each_field_type():
    cfg = Config.load(env={"TAPGRID_PORT": "9003", "TAPGRID_DEMO": "no", "TAPGRID_TAP_RATE": "12.5",
                           "TAPGRID_ALLOWED_ORIGINS": "https://a.test, https://b.test",
                           "TAPGRID_REDIS": "none", "TAPGRID_MIN_FREE_DISK": "512M",
                           "UNRELATED": "ignored"})
    assert (cfg.port, cfg.demo, cfg.tap_rate) == (9003, False, 12.5)
    assert cfg.allowed_origins == ["https://a.test", "https://b.test"]
    assert cfg.redis is None and cfg.min_free_disk == 512 << 20


def test_later_sources_win(tmp_path):
    path = write(tmp_path, '[tapgrid]\nport = 9001\nseed = 1\ndb = "from-file.db"\nhot_days = 3\n')
    env = {"TAPGRID_PORT": "9002", "TAPGRID_SEED": "2", "TAPGRID_HOT_DAYS": "4"}
    cfg = Config.load(path, env=env, overrides={"port": 9003, "seed": None})
    assert cfg.port == 9003                          # flag over env over file
    assert cfg.seed == 2 and cfg.hot_days == 4       # env over file (a None flag is no flag)
    assert cfg.db == "from-file.db"                  # file over default


def test_command_line_flags_through_the_cli(tmp_path, monkeypatch):
    path = write(tmp_path, '[tapgrid]\nport = 9001\nfeed = "coinbase"\ncommit_delay_ms = 5.0\n')
    monkeypatch.setenv("TAPGRID_PORT", "9002")
    monkeypatch.setenv("TAPGRID_DEMO", "true")
    args = build_parser().parse_args(["serve", "--config", path, "--port", "9004", "--no-demo",
                                      "--min-free-disk", "5%"])
    cfg = load_config(args)
    assert (cfg.port, cfg.demo, cfg.min_free_disk) == (9004, False, "5%")
    assert (cfg.feed, cfg.commit_delay_ms) == ("coinbase", 5.0)     # flags not given: no say


@pytest.mark.parametrize("source", [
    {"overrides": {"colum_ms": 1000}},               # a typo is an error, not a silent default
    {"overrides": {"feed": "kraken-typo"}},
    {"overrides": {"min_stake": 500, "max_stake": 100}},
    {"env": {"TAPGRID_PORT": "eighty"}},
])
def test_bad_values_are_refused(source):
    with pytest.raises(ValueError):
        Config.load(env=source.get("env", {}), overrides=source.get("overrides"))


def test_unknown_key_in_the_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown config keys: colour"):
        Config.load(write(tmp_path, 'colour = "blue"\n'), env={})
