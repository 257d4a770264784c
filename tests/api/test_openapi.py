"""The OpenAPI document at /openapi.json describes the /email-messages contract as Rebilly does."""

from typing import Any

import httpx
import pytest

from tests.messages.test_router import PROPERTIES as EMAIL_MESSAGE_PROPERTIES

OPERATIONS = {
    ("/email-messages", "get"): "GetEmailMessageCollection",
    ("/email-messages", "post"): "PostEmailMessage",
    ("/email-messages/{id}", "get"): "GetEmailMessage",
    ("/email-messages/{id}", "patch"): "PatchEmailMessage",
    ("/email-messages/{id}", "delete"): "DeleteEmailMessage",
    ("/api-keys", "get"): "GetApiKeyCollection",
    ("/api-keys", "post"): "PostApiKey",
    ("/api-keys/{id}", "get"): "GetApiKey",
    ("/api-keys/{id}", "put"): "PutApiKey",
    ("/api-keys/{id}", "delete"): "DeleteApiKey",
    ("/organizations", "get"): "GetOrganizationCollection",
    ("/organizations/{id}", "get"): "GetOrganization",
    ("/attachments", "get"): "GetAttachmentCollection",
    ("/attachments", "post"): "PostAttachment",
    ("/attachments/{id}", "get"): "GetAttachment",
    ("/attachments/{id}", "put"): "PutAttachment",
    ("/attachments/{id}", "delete"): "DeleteAttachment",
    ("/service-credentials/{type}/{id}", "patch"): "PatchServiceCredential",
    ("/blocklists", "get"): "GetBlocklistCollection",
    ("/blocklists", "post"): "PostBlocklist",
    ("/blocklists/{id}", "get"): "GetBlocklist",
    ("/blocklists/{id}", "put"): "PutBlocklist",
    ("/blocklists/{id}", "delete"): "DeleteBlocklist",
}


@pytest.fixture(scope="module")
async def spec(api_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=api_url) as http:
        response = await http.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operation(spec: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    found: dict[str, Any] = spec["paths"][path][method]
    return found


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" not in schema:
        return schema
    name = schema["$ref"].removeprefix("#/components/schemas/")
    resolved: dict[str, Any] = spec["components"]["schemas"][name]
    return resolved


class TestOpenApi:
    @pytest.mark.parametrize(("path", "method"), list(OPERATIONS))
    def test_operation_has_rebillys_operation_id(
        self, spec: dict[str, Any], path: str, method: str
    ) -> None:
        assert operation(spec, path, method)["operationId"] == OPERATIONS[path, method]

    def test_operation_ids_are_unique(self, spec: dict[str, Any]) -> None:
        ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
        assert len(ids) == len(set(ids))

    def test_organization_scoped_paths_are_documented_once_through_servers(
        self, spec: dict[str, Any]
    ) -> None:
        assert not any(path.startswith("/organizations/{organizationId}") for path in spec["paths"])
        assert "/organizations/{organizationId}" in [s["url"] for s in spec["servers"]]

    def test_post_201_documents_the_location_header(self, spec: dict[str, Any]) -> None:
        created = operation(spec, "/email-messages", "post")["responses"]["201"]
        assert created["headers"]["Location"]["schema"] == {"type": "string", "format": "uri"}

    def test_delete_answers_204(self, spec: dict[str, Any]) -> None:
        assert "204" in operation(spec, "/email-messages/{id}", "delete")["responses"]

    def test_collection_documents_the_pagination_headers(self, spec: dict[str, Any]) -> None:
        listed = operation(spec, "/email-messages", "get")["responses"]["200"]
        assert set(listed["headers"]) >= {
            "Pagination-Total",
            "Pagination-Limit",
            "Pagination-Offset",
        }
        for header in listed["headers"].values():
            assert header["schema"] == {"type": "integer"}

    def test_collection_documents_its_query_parameters(self, spec: dict[str, Any]) -> None:
        parameters = operation(spec, "/email-messages", "get")["parameters"]
        assert {p["name"] for p in parameters if p["in"] == "query"} == {
            "limit",
            "offset",
            "sort",
            "filter",
            "q",
        }

    @pytest.mark.parametrize(("path", "method"), list(OPERATIONS))
    def test_every_error_response_is_a_problem_document(
        self, spec: dict[str, Any], path: str, method: str
    ) -> None:
        responses = operation(spec, path, method)["responses"]
        errors = {code: r for code, r in responses.items() if code.startswith(("4", "5"))}
        assert "401" in errors
        for code, response in errors.items():
            assert list(response["content"]) == ["application/problem+json"], code
            schema = response["content"]["application/problem+json"]["schema"]
            assert set(schema["required"]) >= {"type", "title", "status"}

    def test_validation_problems_document_invalid_fields(self, spec: dict[str, Any]) -> None:
        responses = operation(spec, "/email-messages", "post")["responses"]
        schema = responses["422"]["content"]["application/problem+json"]["schema"]
        assert "invalidFields" in schema["properties"]

    @pytest.mark.parametrize(
        ("path", "method", "status"),
        [
            ("/email-messages/{id}", "get", "404"),
            ("/email-messages/{id}", "patch", "404"),
            ("/email-messages/{id}", "patch", "409"),
            ("/email-messages/{id}", "delete", "409"),
            ("/email-messages", "post", "400"),
            ("/email-messages", "post", "422"),
            ("/attachments", "post", "422"),
            ("/attachments/{id}", "put", "404"),
            ("/attachments/{id}", "put", "422"),
            ("/service-credentials/{type}/{id}", "patch", "422"),
            ("/blocklists", "post", "409"),
            ("/blocklists/{id}", "put", "409"),
            ("/blocklists/{id}", "delete", "404"),
        ],
    )
    def test_documented_error_statuses(
        self, spec: dict[str, Any], path: str, method: str, status: str
    ) -> None:
        assert status in operation(spec, path, method)["responses"]

    def test_request_body_requires_from_to_subject_text_and_html(
        self, spec: dict[str, Any]
    ) -> None:
        body = operation(spec, "/email-messages", "post")["requestBody"]
        assert body["required"] is True
        schema = resolve(spec, body["content"]["application/json"]["schema"])
        assert set(schema["required"]) == {"from", "to", "subject", "text", "html"}
        assert schema["properties"]["subject"]["maxLength"] == 998
        assert schema["properties"]["to"]["minItems"] == 1

    def test_response_schema_has_every_email_message_property(self, spec: dict[str, Any]) -> None:
        created = operation(spec, "/email-messages", "post")["responses"]["201"]
        schema = resolve(spec, created["content"]["application/json"]["schema"])
        assert set(schema["properties"]) >= EMAIL_MESSAGE_PROPERTIES

    def test_both_security_schemes_are_declared(self, spec: dict[str, Any]) -> None:
        schemes = spec["components"]["securitySchemes"]
        assert schemes["SecretApiKey"] == {"type": "apiKey", "in": "header", "name": "REB-APIKEY"}
        assert schemes["BearerApiKey"] == {"type": "http", "scheme": "bearer"}

    @pytest.mark.parametrize(("path", "method"), list(OPERATIONS))
    def test_operation_accepts_either_security_scheme(
        self, spec: dict[str, Any], path: str, method: str
    ) -> None:
        security = operation(spec, path, method)["security"]
        assert {"SecretApiKey": []} in security
        assert {"BearerApiKey": []} in security

    def test_the_webhook_event_types_are_documented_with_their_payload(
        self, spec: dict[str, Any]
    ) -> None:
        assert sorted(spec["webhooks"]) == [
            "email-message-attempt-failed",
            "email-message-bounced",
            "email-message-complained",
            "email-message-deferred",
            "email-message-delivered",
            "email-message-failed",
            "email-message-outcome-unknown",
            "email-message-sent",
            "email-message-unsubscribed",
        ]
        for event in spec["webhooks"].values():
            body = event["post"]["requestBody"]["content"]["application/json"]["schema"]
            payload = resolve(spec, body)
            assert set(payload["properties"]) == {"id", "type", "occurredTime", "data"}
            data = resolve(spec, payload["properties"]["data"])
            assert set(data["properties"]) == {"emailMessage", "attempt", "event"}

    def test_webhook_paths_have_rebillys_operation_ids(self, spec: dict[str, Any]) -> None:
        assert operation(spec, "/webhooks", "get")["operationId"] == "GetWebhookCollection"
        assert operation(spec, "/webhooks", "post")["operationId"] == "PostWebhook"
        assert operation(spec, "/webhooks/{id}", "put")["operationId"] == "PutWebhook"
        assert operation(spec, "/webhooks/{id}", "delete")["operationId"] == "DeleteWebhook"
        resend = operation(spec, "/tracking/webhooks/{id}/resend", "post")
        assert resend["operationId"] == "PostTrackingWebhookResendRequest"

    def test_document_is_valid_openapi(self, spec: dict[str, Any]) -> None:
        # Not a dependency of postroom: checked where it happens to be installed.
        validator = pytest.importorskip("openapi_spec_validator")
        validator.validate(spec)


class TestCredentialPatchDocument:
    def test_patch_documents_every_field_of_each_type(self, spec: dict[str, Any]) -> None:
        body = operation(spec, "/service-credentials/{type}/{id}", "patch")["requestBody"]
        union = body["content"]["application/json"]["schema"]
        schemas = [resolve(spec, option) for option in union["oneOf"]]
        properties = {s["properties"]["type"]["const"]: set(s["properties"]) for s in schemas}
        assert {"host", "port", "encryption", "auth", "status"} <= properties["smtp"]
        assert {"key", "secret", "region", "configurationSetName"} <= properties["aws-ses"]
        assert (
            "409" not in operation(spec, "/service-credentials/{type}/{id}", "patch")["responses"]
        )
