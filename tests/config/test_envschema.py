"""The environment reader behind ``config.env``: conversions, constraints, validators."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import pytest

from config.envschema import (
    AnyUrl,
    EnvSettings,
    Field,
    NoDecode,
    ValidationError,
    field_validator,
    model_validator,
)


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


def _csv(value):
    return [item.strip() for item in value.split(",") if item.strip()] if value else value


class Sample(EnvSettings):
    sample_flag: bool = False
    sample_count: int = Field(default=3, ge=1, le=10)
    sample_ratio: float = Field(default=0.5, gt=0, le=1)
    sample_name: str | None = Field(default=None, min_length=4)
    sample_colour: Colour = Colour.RED
    sample_dir: Path = Path("/srv")
    sample_url: AnyUrl | None = None
    sample_hosts: Annotated[list[str], NoDecode] = ["localhost"]
    sample_a: bool = False
    sample_b: bool = False

    _split = field_validator("sample_hosts", mode="before")(_csv)

    @field_validator("sample_name")
    @classmethod
    def _shout(cls, value: str | None) -> str | None:
        return value.upper() if value else value

    @model_validator(mode="after")
    def _not_both(self) -> Sample:
        if self.sample_a and self.sample_b:
            raise ValueError("SAMPLE_A and SAMPLE_B cannot both be on")
        return self


@pytest.fixture
def environ(monkeypatch):
    for name in list(__import__("os").environ):
        if name.lower().startswith("sample_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_variables_are_converted_by_their_declared_types(environ):
    for name, value in {
        "SAMPLE_FLAG": "yes",
        "SAMPLE_COUNT": " 7 ",
        "sample_ratio": "0.25",  # names are case-insensitive
        "SAMPLE_NAME": "lumina",
        "SAMPLE_COLOUR": "blue",
        "SAMPLE_DIR": "/var/lib/lumina",
        "SAMPLE_URL": "redis://127.0.0.1:6379/3",
        "SAMPLE_HOSTS": "a.example, b.example,",
    }.items():
        environ.setenv(name, value)

    env = Sample()

    assert env.sample_flag is True
    assert env.sample_count == 7
    assert env.sample_ratio == 0.25
    assert env.sample_name == "LUMINA"  # after the after-validator
    assert env.sample_colour is Colour.BLUE
    assert env.sample_dir == Path("/var/lib/lumina")
    assert env.sample_url == "redis://127.0.0.1:6379/3"
    assert env.sample_hosts == ["a.example", "b.example"]


def test_defaults_are_taken_as_declared_and_never_shared(environ):
    first, second = Sample(), Sample()
    first.sample_hosts.append("elsewhere")

    assert second.sample_hosts == ["localhost"]
    assert (second.sample_count, second.sample_name, second.sample_url) == (3, None, None)


def test_every_bad_value_is_named_at_once(environ):
    for name, value in {
        "SAMPLE_FLAG": "maybe",
        "SAMPLE_COUNT": "11",
        "SAMPLE_RATIO": "0",
        "SAMPLE_NAME": "abc",
        "SAMPLE_COLOUR": "green",
        "SAMPLE_URL": "not a url",
    }.items():
        environ.setenv(name, value)

    with pytest.raises(ValidationError) as raised:
        Sample()

    assert [name for name, _ in raised.value.problems] == [
        "SAMPLE_FLAG", "SAMPLE_COUNT", "SAMPLE_RATIO", "SAMPLE_NAME", "SAMPLE_COLOUR", "SAMPLE_URL",
    ]  # fmt: skip
    messages = dict(raised.value.problems)
    assert messages["SAMPLE_COUNT"] == "Input should be less than or equal to 10"
    assert messages["SAMPLE_COLOUR"] == "Input should be one of 'red', 'blue'"


def test_model_validators_see_the_whole_environment(environ):
    environ.setenv("SAMPLE_A", "1")
    environ.setenv("SAMPLE_B", "true")

    with pytest.raises(ValidationError, match="cannot both be on"):
        Sample()


def test_the_environment_wins_over_the_env_file(environ, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("SAMPLE_COUNT=4\nSAMPLE_FLAG=on\n")

    class FromFile(Sample):
        pass

    FromFile.env_file = env_file
    environ.setenv("SAMPLE_COUNT", "9")

    env = FromFile()

    assert (env.sample_count, env.sample_flag) == (9, True)
