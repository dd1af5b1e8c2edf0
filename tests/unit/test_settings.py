"""The functions' settings classes: each owns its variables and defaults, and writes itself out so that it reads back
the same (`X.from_env(x.to_env()) == x`); the one reader of numbers and true/false (cappi.values)."""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cappi.contracts import api
from cappi.domain.query import DEFAULT_POLL_INTERVAL_S
from cappi.settings import (
    DEFAULT_CLUBS_FILE,
    FUNCTION_SETTINGS,
    MAX_BODY_BYTES_RANGE,
    FunctionSettings,
    IngestSettings,
    QuerySettings,
    ReleaseCheckSettings,
    SettingsError,
)
from cappi.values import FALSE_WORDS, TRUE_WORDS, number_text, read_bool, read_number, read_whole_number

ROOT = Path(__file__).resolve().parents[2]
CLASSES = pytest.mark.parametrize("cls", FUNCTION_SETTINGS, ids=lambda c: c.__name__)

_STRIPPED = st.text(min_size=1).map(str.strip).filter(bool)
# Values each field can hold, as read from an environment: by field name where the type does not say it all.
_BY_NAME: dict[str, st.SearchStrategy[Any]] = {
    "clubs_file": st.text(min_size=1),  # a path is taken as written
    "club_claim": st.text().map(str.strip),  # "" turns club checks off
    "request_log_sample_rate": st.floats(min_value=0, max_value=1),
    "max_body_bytes": st.integers(*MAX_BODY_BYTES_RANGE),
}
_BY_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "str": _STRIPPED,
    "bool": st.booleans(),
    "int": st.integers(min_value=1),
    "float": st.floats(min_value=0, exclude_min=True, allow_nan=False),  # positive, infinity included
}


@CLASSES
@given(data=st.data())
def test_settings_read_back_what_they_write(cls: type[FunctionSettings], data: st.DataObject) -> None:
    settings = data.draw(settings_of(cls))
    assert cls.from_env(settings.to_env()) == settings
    assert cls.from_env(settings.to_env(defaults=False)) == settings


def settings_of(cls: type[FunctionSettings]) -> st.SearchStrategy[Any]:
    fields = {f.name: _BY_NAME.get(f.name, _BY_TYPE[str(f.type)]) for f in dataclasses.fields(cls)}
    return st.fixed_dictionaries(fields).map(lambda values: cls(**values))


# Text an environment might hold for a field of each type: mostly what its reader looks for, written in the ways
# people write it, and now and then anything at all.
_WORDS = st.sampled_from((*TRUE_WORDS, *FALSE_WORDS, "", " ", "TRUE", " off "))
_FLOATS = st.floats(min_value=0, max_value=1e9, exclude_min=True)
_LIKELY: dict[str, st.SearchStrategy[str]] = {
    "str": st.text(),
    "bool": _WORDS,
    "int": st.builds(lambda n, form: form.format(n), st.integers(-1, 10**9), st.sampled_from(("{}", " {} ", "{}.0"))),
    "float": st.one_of(_FLOATS.map(repr), _FLOATS.map(lambda x: f"{x:g}"), st.integers(0, 600).map(str), _WORDS),
}


def _raw(kind: str) -> st.SearchStrategy[str]:
    return st.integers(0, 9).flatmap(lambda n: st.text() if n == 0 else _LIKELY[kind])


@CLASSES
@given(data=st.data())
def test_whatever_an_environment_reads_as_writes_back_the_same(
    cls: type[FunctionSettings], data: st.DataObject
) -> None:
    env = {}
    for field in dataclasses.fields(cls):
        variable = cls.variables()[field.name]
        if variable.default is dataclasses.MISSING:  # required: present, or there is nothing to read
            env[variable.name] = data.draw(st.text().filter(str.strip))
        else:
            raw = data.draw(st.none() | _raw(str(field.type)))
            if raw is not None:
                env[variable.name] = raw
    try:
        settings = cls.from_env(env)
    except SettingsError:
        return  # refused, which is not what this test is about
    assert cls.from_env(settings.to_env()) == settings


@CLASSES
def test_each_class_names_its_variables_and_defaults(cls: type[FunctionSettings]) -> None:
    variables = cls.variables()
    assert list(variables) == [f.name for f in dataclasses.fields(cls)]
    names = [v.name for v in variables.values()]
    assert len(set(names)) == len(names)
    assert all(name.startswith("CAPPI_") for name in names)
    required = [field for field, v in variables.items() if v.default is dataclasses.MISSING]
    for field in required:
        with pytest.raises(KeyError, match="required"):
            cls.default(field)
        others = {v.name: "x" for f, v in variables.items() if f in required and f != field}
        with pytest.raises(SettingsError, match=f"environment variable {variables[field].name} is required"):
            cls.from_env(others)
    # The defaults are the class's: what an environment of only the required variables reads as.
    settings = cls.from_env({variables[field].name: "x" for field in required})
    assert all(getattr(settings, f) == cls.default(f) for f in variables if f not in required)


def test_the_query_defaults() -> None:
    defaults = {field: QuerySettings.default(field) for field in QuerySettings.variables() if field != "table_name"}
    assert defaults == {
        "clubs_file": DEFAULT_CLUBS_FILE,
        "required_scope": api.SCOPE,
        "club_claim": api.CLUB_CLAIM,
        "require_club_claim": False,
        "nested_single_result": False,
        "pointer_max_age_s": 10.0,
        "cache_max_age_s": 30,
        "poll_interval_s": DEFAULT_POLL_INTERVAL_S,
        "request_log_sample_rate": 1.0,
    }


def test_what_an_environment_says_and_how_it_is_written() -> None:
    env = {
        "CAPPI_TABLE_NAME": " t ",
        "CAPPI_CLUB_CLAIM": " ",  # blank: club checks off, not the default claim
        "CAPPI_REQUIRED_SCOPE": " ",  # blank: the default scope
        "CAPPI_REQUIRE_CLUB_CLAIM": "",
        "CAPPI_NESTED_SINGLE_RESULT": " Yes ",
        "CAPPI_POINTER_MAX_AGE_S": "2.50",
        "CAPPI_CACHE_MAX_AGE_S": "45",
        "CAPPI_POLL_INTERVAL_S": "420",
        "CAPPI_REQUEST_LOG_SAMPLE_RATE": "0.01",
    }
    settings = QuerySettings.from_env(env)
    assert settings == QuerySettings(
        table_name="t",
        club_claim="",
        nested_single_result=True,
        pointer_max_age_s=2.5,
        cache_max_age_s=45,
        poll_interval_s=420.0,
        request_log_sample_rate=0.01,
    )
    assert settings.to_env(defaults=False) == {
        "CAPPI_TABLE_NAME": "t",
        "CAPPI_CLUB_CLAIM": "",
        "CAPPI_NESTED_SINGLE_RESULT": "true",
        "CAPPI_POINTER_MAX_AGE_S": "2.5",
        "CAPPI_CACHE_MAX_AGE_S": "45",
        "CAPPI_POLL_INTERVAL_S": "420",
        "CAPPI_REQUEST_LOG_SAMPLE_RATE": "0.01",
    }
    assert QuerySettings.from_env(env, table_name="given", poll_interval_s=5.0).poll_interval_s == 5.0
    with pytest.raises(TypeError, match="no setting nope"):
        QuerySettings.from_env(env, nope=1)


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("CAPPI_POINTER_MAX_AGE_S", "soon", "must be a number, got 'soon'"),
        ("CAPPI_POINTER_MAX_AGE_S", "0", "must be positive, got '0'"),
        ("CAPPI_CACHE_MAX_AGE_S", "30.5", "must be a whole number, got '30.5'"),
        ("CAPPI_REQUEST_LOG_SAMPLE_RATE", "2", "must be between 0 and 1, got '2'"),
        ("CAPPI_REQUIRE_CLUB_CLAIM", "maybe", "must be true or false, got 'maybe'"),
    ],
)
def test_a_bad_value_names_its_variable(name: str, raw: str, message: str) -> None:
    with pytest.raises(SettingsError, match=f"^{re.escape(f'environment variable {name} {message}')}$"):
        QuerySettings.from_env({"CAPPI_TABLE_NAME": "t", name: raw})


def test_the_release_check_reads_the_querys_values() -> None:
    query = QuerySettings(table_name="t", clubs_file="/c", required_scope="read:x", club_claim="", cache_max_age_s=5)
    check = ReleaseCheckSettings.for_query(query, query_version="arn:v1")
    assert check == ReleaseCheckSettings(
        table_name="t", clubs_file="/c", required_scope="read:x", club_claim="", query_version="arn:v1"
    )
    shared = set(ReleaseCheckSettings.variables()) - {"query_version"}
    assert {n: v for n, v in check.to_env().items() if n != "CAPPI_QUERY_VERSION"} == {
        n: v for n, v in query.to_env().items() if n in {QuerySettings.variables()[f].name for f in shared}
    }


def test_ingest_writes_only_what_differs_from_its_defaults_when_asked() -> None:
    settings = IngestSettings(table_name="t", clubs_file="/var/task/clubs.json")
    assert settings.to_env(defaults=False) == {"CAPPI_CLUBS_FILE": "/var/task/clubs.json", "CAPPI_TABLE_NAME": "t"}
    assert len(settings.to_env()) == len(IngestSettings.variables())


@pytest.mark.parametrize("word", [*TRUE_WORDS, *FALSE_WORDS])
def test_true_and_false_words(word: str) -> None:
    assert read_bool(word) is (word in TRUE_WORDS)
    assert read_bool(f" {word.upper()} ") is (word in TRUE_WORDS)


@pytest.mark.parametrize("value", ["", "2", "maybe", None, [], 1.0])
def test_anything_else_is_not_true_or_false(value: object) -> None:
    with pytest.raises(ValueError, match="must be true or false"):
        read_bool(value)


def test_numbers() -> None:
    assert read_number(" 2.5 ") == 2.5
    assert read_number(3) == 3.0
    assert read_whole_number(" 30 ") == 30
    assert read_whole_number(30) == 30
    for bad in (True, None, "", "x", [1]):
        with pytest.raises(ValueError, match="must be a number"):
            read_number(bad)
    for not_whole in (True, "30.0", 30.0, "1e3"):
        with pytest.raises(ValueError, match="must be a whole number"):
            read_whole_number(not_whole)
    with pytest.raises(ValueError, match="must be between 1 and 60, got 61"):
        read_whole_number(61, low=1, high=60)
    with pytest.raises(ValueError, match=re.escape("must be at least 1, got '0.5'")):
        read_number("0.5", low=1)
    with pytest.raises(ValueError, match="must be at most 1, got 2"):
        read_number(2, high=1)
    with pytest.raises(ValueError, match="must be positive, got 'nan'"):
        read_number("nan", positive=True)


@given(st.one_of(st.floats(allow_nan=False), st.integers()))
def test_numbers_are_written_so_they_read_back(value: float) -> None:
    text = number_text(value)
    assert (read_whole_number(text) if isinstance(value, int) else read_number(text)) == value
    assert not text.endswith(".0")


# No function setting's name is spelled outside cappi/settings.py: infra, local mode and the CLI build settings
# objects and call to_env. Prose may name a variable in backticks (an OpenAPI description, an error's help).
PRODUCT = ("functions", "infra", "local", "cli", "tools")
SETTINGS_MODULE = ROOT / "functions" / "cappi" / "settings.py"
FUNCTION_VARIABLES = sorted({v.name for cls in FUNCTION_SETTINGS for v in cls.variables().values()})
_SPELLED = re.compile(rf"(?<![`\w])({'|'.join(map(re.escape, FUNCTION_VARIABLES))})(?![`\w])")


def spelled_names(source: str, where: str) -> list[str]:
    """`where:line: NAME` for each function setting's name in a string literal of `source` (docstrings aside)."""
    return [f"{where}:{line}: {name}" for line, name in sorted(_spelled(source))]


def _spelled(source: str) -> Iterator[tuple[int, str]]:
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield from ((node.lineno, m.group(1)) for m in _SPELLED.finditer(node.value))


def test_no_function_setting_is_named_outside_its_settings_class() -> None:
    assert {"CAPPI_TABLE_NAME", "CAPPI_CLUBS_FILE", "CAPPI_INGEST_FUNCTION", "CAPPI_QUERY_VERSION"} <= set(
        FUNCTION_VARIABLES
    )
    files = [p for folder in PRODUCT for p in sorted((ROOT / folder).rglob("*.py")) if p != SETTINGS_MODULE]
    assert len(files) > 100
    spelled = [name for p in files for name in spelled_names(p.read_text(), str(p.relative_to(ROOT)))]
    assert spelled == []


def test_the_name_check_sees_names_in_code_and_not_in_prose() -> None:
    source = '''"""Module docs may say CAPPI_TABLE_NAME."""
env = {"CAPPI_TABLE_NAME": table, "CAPPI_PORT": "3000"}
line = f"CAPPI_POLL_INTERVAL_S={interval}"
say = f"cappi local: CAPPI_REQUIRED_SCOPE: {exc}"
prose = "a stage whose `CAPPI_NESTED_SINGLE_RESULT` setting is on; CAPPI_TABLE_NAMES"


def f():
    """So may a function's: CAPPI_CLUBS_FILE."""
    return os.environ.get("CAPPI_CLUBS_FILE")
'''
    assert spelled_names(source, "x.py") == [
        "x.py:2: CAPPI_TABLE_NAME",
        "x.py:3: CAPPI_POLL_INTERVAL_S",
        "x.py:4: CAPPI_REQUIRED_SCOPE",
        "x.py:10: CAPPI_CLUBS_FILE",
    ]
