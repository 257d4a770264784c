"""db/base.py: `Base.transient`, the cheap constructor of objects a Core INSERT writes."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.auth import service as auth
from postroom.messages import repository
from postroom.messages.models import EmailMessage

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
COLUMNS = [attribute.key for attribute in sa_inspect(EmailMessage).column_attrs]


def _values(organization_id: str, id: str) -> dict[str, object]:
    return {
        "id": id,
        "organization_id": organization_id,
        "status": "draft",
        "from_address": "a@example.com",
        "to_addresses": ["b@example.com"],
        "cc_addresses": [],
        "bcc_addresses": [],
        "subject": "s",
        "text": "t",
        "html": "<p>h</p>",
        "metadata_": {"k": "v"},
        "attachments": [],
        "created_at": NOW,
        "updated_at": NOW,
        "search_text": "s",
    }


class TestTransient:
    def test_holds_the_values_as_the_constructor_does(self) -> None:
        made = EmailMessage.transient(**_values("org_1", "em_1"))
        built = EmailMessage(**_values("org_1", "em_1"))
        for key in COLUMNS:
            assert getattr(made, key) == getattr(built, key), key
        assert made.response_code is None
        assert sa_inspect(made).transient

    def test_a_later_change_is_kept(self) -> None:
        made = EmailMessage.transient(**_values("org_1", "em_1"))
        made.resent_from_id = "em_0"
        assert made.resent_from_id == "em_0"

    def test_an_unknown_name_is_refused_as_by_the_constructor(self) -> None:
        with pytest.raises(TypeError, match="sent_to"):
            EmailMessage.transient(sent_to="x")

    async def test_written_and_read_back_as_the_constructors_object(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        organization: auth.NewOrganization,
    ) -> None:
        org = organization.organization_id
        async with sessionmaker() as session, session.begin():
            await repository.insert_messages(
                session,
                [
                    EmailMessage.transient(**_values(org, "em_transient")),
                    EmailMessage(**_values(org, "em_built")),
                ],
            )
        async with sessionmaker() as session:
            made = await repository.get(session, org, "em_transient")
            built = await repository.get(session, org, "em_built")
            assert made is not None and built is not None
            for key in COLUMNS:
                if key != "id":
                    assert getattr(made, key) == getattr(built, key), key
