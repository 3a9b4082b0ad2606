"""How a setting is declared: a described field, and the value rules every group shares
(``VAR=""`` counts as unset, comma-separated lists, secrets read only where used)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr
from pydantic.json_schema import JsonDict
from pydantic_settings import NoDecode


def _empty_is_unset(value: Any) -> Any:
    return None if value == "" else value


def split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


#: An optional value for which ``VAR=""`` means the same as not setting ``VAR``.
Unset = BeforeValidator(_empty_is_unset)
#: A comma-separated list (``a, b,c``); empty parts are dropped, ``""`` is the empty list.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(split_commas)]


def setting(description: str, default: Any = None, *, default_text: str | None = None, **extra: Any) -> Any:
    """A field with its description and, when the real default is computed, how docs show it."""
    schema_extra: JsonDict | None = {"default_text": default_text} if default_text else None
    return Field(default=default, description=description, json_schema_extra=schema_extra, **extra)


def secret_value(value: SecretStr | None) -> str | None:
    """The plain value of an optional secret, where it is used (never in a repr or a log)."""
    return value.get_secret_value() if value is not None else None
