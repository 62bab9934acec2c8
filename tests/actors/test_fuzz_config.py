"""Property-based fuzzing of the config loader (defaults, TOML, env,
overrides): any input gives a Config or a ValueError with a message (what
the CLI prints), never a TypeError or AttributeError from deep inside."""
import tomllib
from dataclasses import fields

from hypothesis import given, settings
from hypothesis import strategies as st

from actors import Config

NAMES = [f.name for f in fields(Config)]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
                    st.floats(allow_nan=True), st.text(max_size=12),
                    st.lists(st.text(max_size=5), max_size=3),
                    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3),
                                                                         st.integers(), max_size=2))
env_values = st.one_of(st.text(max_size=12), st.sampled_from(
    ["", "0", "-1", "1e3", "nan", "inf", "true", "none", "10%", "5G", "1.5M", "x%", " 7 "]))


def loads_or_refuses(**kw):
    try:
        cfg = Config.load(**kw)
    except (ValueError, OverflowError, tomllib.TOMLDecodeError) as e:
        assert str(e)
        return None
    assert isinstance(cfg, Config)
    return cfg


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(NAMES), env_values, max_size=6))
def test_environment_values(env):
    loads_or_refuses(env={"TAPGRID_" + k.upper(): v for k, v in env.items()})


@settings(max_examples=300)
@given(st.dictionaries(st.one_of(st.sampled_from(NAMES), st.text(max_size=8)), scalars,
                       max_size=5))
def test_override_values_of_any_type(overrides):
    loads_or_refuses(env={}, overrides=overrides)


@settings(max_examples=200)
@given(st.one_of(st.text(max_size=200), st.sampled_from([
    "tapgrid = 5", "[tapgrid]\ncolumn_ms = [1]", "[tapgrid]\nport = 'x'", "column_ms = 1.5",
    "[tapgrid]\nallowed_origins = 'a,b'", "[tapgrid]\ndemo = 'yes'", "[tapgrid]\nredis = 3",
    "[tapgrid]\nmin_free_disk = -5", "[tapgrid]\nmax_stake = 1\nmin_stake = 2"])))
def test_toml_files(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "tapgrid.toml"
    path.write_text(text)
    loads_or_refuses(path=str(path), env={})


def test_wrong_types_in_toml_are_refused_by_name(tmp_path):
    path = tmp_path / "t.toml"
    for text, name in (("[tapgrid]\ncolumn_ms = [1]", "column_ms"), ("tapgrid = 5", "table"),
                       ("[tapgrid]\ndemo = 3", "demo"), ("[tapgrid]\ncolumn_ms = true",
                                                            "column_ms")):
        path.write_text(text)
        try:
            Config.load(path=str(path), env={})
            raise AssertionError(f"{text!r} was accepted")
        except ValueError as e:
            assert name in str(e)
    path.write_text("[tapgrid]\ncolumn_ms = 10000\ntap_rate = 5\nallowed_origins = ['https://a']")
    cfg = Config.load(path=str(path), env={})
    assert (cfg.column_ms, cfg.tap_rate, cfg.allowed_origins) == (10000, 5.0, ["https://a"])
