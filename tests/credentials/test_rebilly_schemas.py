"""Every credential type's answers (create, get, list, PATCH) validate against Rebilly's own
schemas (tests/contract/rebilly: components/schemas/*Credential.yaml), read with `jsonschema`."""

from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.contract.reference import SCHEMAS as SCHEMA_DIR
from tests.credentials.test_provider_types import AWS_KEY

# Secrets are write-only in postroom (DESIGN.md: never returned); Rebilly's schemas list them as
# required without marking them writeOnly, so they are not required of an answer here.
WRITE_ONLY = {"password", "apiKey", "secret", "serverApiToken"}

SCHEMAS = {
    "smtp": "SmtpCredential.yaml",
    "sendgrid": "SendGridCredential.yaml",
    "mailgun": "MailgunCredential.yaml",
    "postmark": "PostmarkCredential.yaml",
    "aws-ses": "SESCredential.yaml",
}
BODIES: list[tuple[str, dict[str, Any]]] = [
    ("smtp", {"host": "smtp.example.com"}),
    (
        "smtp",
        {
            "host": "smtp.example.com",
            "port": 587,
            "encryption": "tls",
            "auth": {"type": "login", "username": "u", "password": "p"},
        },
    ),
    ("sendgrid", {"apiKey": "SG.k"}),
    ("mailgun", {"emailFrom": "a@example.com", "apiKey": "k", "domain": "mg.example.com"}),
    ("postmark", {"serverApiToken": "t"}),
    ("aws-ses", {"key": AWS_KEY, "secret": "s", "region": "us-east-1"}),
    (
        "aws-ses",
        {"key": AWS_KEY, "secret": "s", "region": "us-east-1", "configurationSetName": "Set1"},
    ),
]


def _readable(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _readable(v) for k, v in node.items()}
        if isinstance(out.get("required"), list):
            out["required"] = [name for name in out["required"] if name not in WRITE_ONLY]
        return out
    if isinstance(node, list):
        return [_readable(v) for v in node]
    return node


@cache
def _validator(file_name: str) -> jsonschema.Draft202012Validator:
    folder = SCHEMA_DIR

    def load(path: Path) -> Any:
        return _readable(yaml.safe_load(path.read_text()))

    def retrieve(uri: str) -> Resource[Any]:
        contents = load(Path(uri.removeprefix("file://")))
        return Resource.from_contents(contents, default_specification=DRAFT202012)

    path = folder / file_name
    registry: Registry[Any] = Registry(retrieve=retrieve)  # type: ignore[call-arg]
    schema = {**load(path), "$id": path.as_uri()}
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _errors(type_: str, answer: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator(SCHEMAS[type_]).iter_errors(answer)
    ]


def _check(type_: str, answer: dict[str, Any]) -> None:
    assert _errors(type_, answer) == [], answer


@pytest.mark.parametrize(
    ("type_", "body"), BODIES, ids=[f"{t}-{i}" for i, (t, _) in enumerate(BODIES)]
)
async def test_every_answer_validates_against_rebillys_schema(
    client: httpx.AsyncClient, type_: str, body: dict[str, Any]
) -> None:
    created = await client.post(f"/service-credentials/{type_}", json={"type": type_, **body})
    assert created.status_code == 201, created.text
    _check(type_, created.json())
    url = f"/service-credentials/{type_}/{created.json()['id']}"
    fetched = await client.get(url)
    _check(type_, fetched.json())
    for item in (await client.get(f"/service-credentials/{type_}")).json():
        _check(type_, item)
    patched = await client.patch(url, json={"type": type_, "status": "inactive"})
    assert patched.status_code == 200, patched.text
    _check(type_, patched.json())


async def test_an_unset_configuration_set_is_left_out(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/service-credentials/aws-ses",
        json={"key": AWS_KEY, "secret": "s", "region": "us-east-1"},
    )
    assert "configurationSetName" not in created.json()


def test_a_null_configuration_set_fails_the_check() -> None:
    answer = {"type": "aws-ses", "key": AWS_KEY, "region": "us-east-1"}
    assert _errors("aws-ses", answer) == []
    assert _errors("aws-ses", {**answer, "configurationSetName": None}) == [
        "configurationSetName: None is not of type 'string'"
    ]
