"""The wire shape of /files (schemas/File.yaml and requestBodies/FileCreateFromInline.yaml) and of
/attachments (schemas/Attachment.yaml)."""

from typing import Annotated, Any, Literal, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from postroom.api.wire import SecretLine, WireStr, WireTime
from postroom.core.listing import FieldKind, ListField
from postroom.files.models import FileAttachment, StoredFile

SourceType = Literal["upload", "camera", "organization-export", "organization-closure-export"]


def _private_only(value: bool | None) -> bool | None:
    if value:
        raise ValueError("public files are not supported; files are private to the organization")
    return value


# A name becomes a Content-Disposition and a MIME filename.
FileName = Annotated[SecretLine, StringConstraints(min_length=1, max_length=255)]
Description = Annotated[str, StringConstraints(max_length=255)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=255)]
IsPublic = Annotated[bool | None, AfterValidator(_private_only)]


class FileMetadata(BaseModel):
    """The properties an upload may set (JSON names; multipart uses the same names). Read-only
    fields a client sends (id, mime, size, sha1, times, _links) are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, strict=True)

    name: FileName | None = None
    description: Description | None = None
    tags: list[Tag] | None = Field(None, max_length=100)
    is_public: IsPublic = Field(None, alias="isPublic")
    source_type: SourceType | None = Field(None, alias="sourceType")


class FileCreateFromInline(FileMetadata):
    """For the OpenAPI document: a JSON upload carries the content base64-encoded in `file`."""

    file: str = Field(description="The content, base64-encoded (a data: URL is accepted too).")


class FilePatch(FileMetadata):
    """PATCH (and PUT, as Rebilly's SDK sends it): name, description, tags; nothing else changes."""


class FileLink(BaseModel):
    rel: Literal["self", "download"]
    href: str


class FileRead(BaseModel):
    """Every property of File.yaml is present; width, height and exifData are not computed."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    name: str
    extension: str
    description: str
    source_type: SourceType | None = Field(alias="sourceType")
    tags: list[str]
    mime: str = Field(description="Detected from the content, never taken from the client.")
    size: int
    width: int | None = None
    height: int | None = None
    sha1: str
    exif_data: dict[str, Any] | None = Field(None, alias="exifData")
    is_public: bool = Field(False, alias="isPublic")
    created_time: WireTime = Field(alias="createdTime")
    updated_time: WireTime = Field(alias="updatedTime")
    links: list[FileLink] = Field(alias="_links")

    @classmethod
    def of(cls, file: StoredFile, href: str) -> "FileRead":
        return cls(
            id=file.id,
            name=file.name,
            extension=file.extension,
            description=file.description,
            source_type=cast(SourceType | None, file.source_type),
            tags=file.tags,
            mime=file.mime,
            size=file.size,
            sha1=file.sha1,
            created_time=file.created_at,
            updated_time=file.updated_at,
            links=[
                FileLink(rel="self", href=href),
                FileLink(rel="download", href=f"{href}/download"),
            ],
        )


_TIME = FieldKind.DATETIME
LIST_FIELDS: dict[str, ListField] = {
    "id": ListField("id"),
    "name": ListField("name"),
    "extension": ListField("extension"),
    "mime": ListField("mime"),
    "size": ListField("size", FieldKind.INTEGER),
    "sha1": ListField("sha1"),
    "createdTime": ListField("created_at", _TIME),
    "updatedTime": ListField("updated_at", _TIME),
}


RELATED_TYPES = ("email-message", "organization")


class AttachmentWrite(BaseModel):
    """POST and PUT of an attachment. Read-only fields a client sends (id, times, _links) are
    ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, strict=True)

    file_id: WireStr = Field(alias="fileId", min_length=1, max_length=50)
    related_type: WireStr = Field(
        alias="relatedType",
        min_length=1,
        max_length=40,
        description="postroom links files to `email-message` (relatedId: a message of the "
        "organization) and `organization` (relatedId: the organization's own id); Rebilly's "
        "other types name objects postroom does not have, and are refused.",
        json_schema_extra={"enum": list(RELATED_TYPES)},
    )
    related_id: WireStr = Field(alias="relatedId", min_length=1, max_length=50)
    name: FileName | None = Field(None, description="The file's name when not given.")
    description: Description | None = None


class AttachmentLink(BaseModel):
    rel: Literal["self", "file"]
    href: str


class AttachmentRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    file_id: str = Field(alias="fileId")
    related_type: str = Field(alias="relatedType")
    related_id: str = Field(alias="relatedId")
    name: str
    description: str
    created_time: WireTime = Field(alias="createdTime")
    updated_time: WireTime = Field(alias="updatedTime")
    links: list[AttachmentLink] = Field(alias="_links")

    @classmethod
    def of(cls, attachment: FileAttachment, href: str, file_href: str) -> "AttachmentRead":
        return cls(
            id=attachment.id,
            file_id=attachment.file_id,
            related_type=attachment.related_type,
            related_id=attachment.related_id,
            name=attachment.name,
            description=attachment.description,
            created_time=attachment.created_at,
            updated_time=attachment.updated_at,
            links=[
                AttachmentLink(rel="self", href=href),
                AttachmentLink(rel="file", href=file_href),
            ],
        )


ATTACHMENT_LIST_FIELDS: dict[str, ListField] = {
    "id": ListField("id"),
    "name": ListField("name"),
    "fileId": ListField("file_id"),
    "relatedType": ListField("related_type"),
    "relatedId": ListField("related_id"),
    "createdTime": ListField("created_at", _TIME),
    "updatedTime": ListField("updated_at", _TIME),
}
