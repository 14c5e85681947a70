"""/api/docs/ speaks to API users: every route, component, field, parameter and answer of the
published schema says what it means, in words a user of the API reads, never the code's."""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from connector.api import serializers as api_serializers
from connector.api import views as api_views

ROOT = Path(__file__).resolve().parents[3]

# Words that belong to the code, not to the API: the framework's, Python's, our own jargon for
# App Connect's server ("the peer") and for the spec's sections.
DEVELOPER_WORDS = re.compile(
    r"serializer|queryset|bound field|`|self\.|\bpeer\b|\.py\b|§|kwargs|docstring|appconnect-api|__"
    r"|(?-i:\bORM\b|\bNone\b|\bTODO\b)",
    re.IGNORECASE,
)
# What /api/docs/ would read as an HTML tag, and drop from the page ("Bearer <token>").
HTML_TAG = re.compile(r"<[A-Za-z/!][^>]*>")


def _code_names() -> set[str]:
    """Names of our functions and classes that read as code: snake_case with an underscore
    (call_log_create) or CamelCase with two capitals or more (CachedFieldsSerializer)."""
    names: set[str] = set()
    for app in ("connector", "rules", "logs", "config"):
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(node.name)
    return {
        name
        for name in names
        if ("_" in name.strip("_") and len(name) > 4) or len(re.findall(r"[A-Z]", name)) >= 2
    }


CODE_NAMES = _code_names()


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def _texts(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every summary and description in the document, with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("summary", "description") and isinstance(value, str):
                yield f"{where}.{key}", value
            else:
                yield from _texts(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _texts(value, f"{where}[{index}]")


def _operations(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def test_every_operation_has_a_summary_and_a_description(schema: dict[str, Any]) -> None:
    operations = dict(_operations(schema))
    assert len(operations) >= 20  # every route of App Connect's API we serve

    missing = [name for name, op in operations.items() if not op.get("summary") or not op.get("description")]

    assert missing == []
    summaries = [op["summary"] for op in operations.values()]
    assert len(set(summaries)) == len(summaries), "two operations read the same in the list"


def test_every_operation_is_filed_under_a_described_topic(schema: dict[str, Any]) -> None:
    described = {tag["name"] for tag in schema["tags"] if tag.get("description")}

    unfiled = [name for name, op in _operations(schema) if not set(op.get("tags", [])) <= described]

    assert unfiled == []


def test_every_parameter_and_answer_is_described(schema: dict[str, Any]) -> None:
    missing = []
    for name, operation in _operations(schema):
        missing += [
            f"{name} ?{p['name']}" for p in operation.get("parameters", []) if not p.get("description")
        ]
        missing += [
            f"{name} -> {code}" for code, r in operation["responses"].items() if not r.get("description")
        ]

    assert missing == []


def test_every_component_and_field_is_described(schema: dict[str, Any]) -> None:
    missing = []
    for name, component in schema["components"]["schemas"].items():
        if not component.get("description"):
            missing.append(name)
        for field, spec in component.get("properties", {}).items():
            if not spec.get("description"):
                missing.append(f"{name}.{field}")

    assert missing == []


def test_no_text_uses_developer_vocabulary(schema: dict[str, Any]) -> None:
    texts = list(_texts(schema))
    assert len(texts) > 200

    jargon = [(where, text) for where, text in texts if DEVELOPER_WORDS.search(text) or HTML_TAG.search(text)]
    code = [
        (where, sorted(set(re.findall(r"\w+", text)) & CODE_NAMES))
        for where, text in texts
        if set(re.findall(r"\w+", text)) & CODE_NAMES
    ]

    assert jargon == []
    assert code == []


def test_the_vocabulary_check_catches_what_leaked_before() -> None:
    """The texts /api/docs/ showed before it was written for users are caught."""
    leaked = [
        "A Serializer whose bound fields are built on first use and shared by every instance.",
        "Leaves out keys whose value is None (the peer's JSON omits undefined keys).",
        "/contact: GET looks up (`ContactLookupApi`), POST creates (`ContactCreateApi`).",
    ]

    assert all(DEVELOPER_WORDS.search(text) for text in leaked)
    assert HTML_TAG.search("send it as Authorization: Bearer <token>")
    assert not HTML_TAG.search("at most 5 sessions, a value < 10 or > 2")
    assert {"CachedFieldsSerializer", "ContactLookupApi", "call_log_create"} <= CODE_NAMES


def test_no_docstring_reaches_the_schema(schema: dict[str, Any]) -> None:
    """Docstrings are for developers: not one of the API's classes shows in the schema."""
    texts = "\n".join(text for _, text in _texts(schema))
    classes = [
        cls
        for module in (api_views, api_serializers)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__ and cls.__doc__
    ]
    assert len(classes) > 30

    leaked = [cls.__name__ for cls in classes if inspect.getdoc(cls).split("\n")[0] in texts]

    assert leaked == []
