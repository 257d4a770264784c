"""Configuration from POSTROOM_* environment variables; built once (load_settings) and passed
down. A setting the service cannot work with (an SMTP URL that does not parse, a CA file that is
not there) is refused here, at start, rather than by the first message it would have sent."""

import ssl
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from postroom.core.crypto import load_or_create_secret
from postroom.core.destinations import DestinationPolicy
from postroom.delivery.transports.smtp import SmtpConfig

ENV_PREFIX = "POSTROOM_"

# What development allows when POSTROOM_DESTINATIONS__ALLOW is unset: a mail server on this
# machine (the README's). Production allows nothing beyond public addresses unless told.
DEVELOPMENT_DESTINATIONS = ("127.0.0.0/8", "::1")


class DeliverySettings(BaseModel):
    """How the worker claims, sends and retries (POSTROOM_DELIVERY__<FIELD>)."""

    # A claim and a record cost about the same for 1 message as for 100 (bench/RESULTS.md).
    # One key's share covers a claim's round trips at full speed: with 40 (claims of 20 at half
    # a share), one busy key's sends ran dry during most claims; with 80 of 400 a silent server
    # still holds a fifth of the worker, as 40 of 200 did.
    batch_size: int = Field(100, ge=1, le=1000, description="messages claimed in one go")
    batches_in_flight: int = Field(
        4,
        ge=1,
        le=16,
        description="a worker holds at most batches_in_flight * batch_size messages claimed and "
        "not yet recorded, claiming more as outcomes are recorded; a worker killed outright may "
        "send up to this many batches twice",
    )
    in_flight_per_key: int = Field(
        80,
        ge=1,
        description="messages of one organization through one credential (or through the "
        "server-wide transport) a worker is sending at once, at most: a slow or "
        "silent server holds only this share of the worker's batches_in_flight * batch_size, "
        "and the worker goes on claiming and sending for the others",
    )
    lease_seconds: float = Field(120, gt=0, description="a claim expires after this long")
    poll_seconds: float = Field(1.0, gt=0, description="idle wait between empty claims")
    max_attempts: int = Field(8, ge=1, description="attempts before a message is failed")
    backoff_base_seconds: float = Field(30, ge=0, description="first retry delay")
    backoff_max_seconds: float = Field(3600, ge=0, description="longest retry delay")
    max_retry_after_seconds: float = Field(6 * 3600, ge=0, description="cap on a server's hint")
    connect_timeout_seconds: float = Field(
        15, gt=0, description="SMTP/HTTP: resolving the host and opening the connection"
    )
    send_timeout_seconds: float = Field(
        60,
        gt=0,
        description="SMTP: each command (MAIL, RCPT, DATA, RSET) and each chunk of the message "
        "written; HTTP: each read and write of a provider's request",
    )
    smtp_greeting_timeout_seconds: float = Field(
        30, gt=0, description="SMTP: the server's 220 greeting (and the TLS handshake of ssl)"
    )
    smtp_handshake_timeout_seconds: float = Field(
        30, gt=0, description="SMTP: each of EHLO, STARTTLS and AUTH"
    )
    smtp_data_end_timeout_seconds: float = Field(
        60,
        gt=0,
        description="SMTP: the reply to the end of the message (after it, the outcome is unknown)",
    )
    message_timeout_seconds: float = Field(
        100,
        gt=0,
        description="SMTP/HTTP: one message's send from start to the service's answer, every "
        "step included; keep it below lease_seconds",
    )
    connections_per_credential: int = Field(4, ge=1, description="concurrent sends per mailer")
    smtp_ca_file: Path | None = Field(
        None, description="PEM bundle of CAs to trust for SMTP TLS besides the system's"
    )
    worker_stale_seconds: float = Field(
        60,
        ge=10,
        description="a worker not heard from for this long (each writes a heartbeat every 5 s) "
        "is not counted as live: /readyz answers 503 while mail is due and no worker is live",
    )
    pacing_horizon_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="a worker holds a rate-limited credential's messages whose send slot is at "
        "most this far ahead (waiting for it); later ones go back to the queue until their slot",
    )
    max_schedule_days: float = Field(
        30,
        gt=0,
        le=3650,
        description="how far ahead a message's scheduledTime may be, in days",
    )
    unknown_outcome: Literal["retry", "hold"] = Field(
        "retry",
        description="after an attempt whose outcome is unknown (crash, timeout after DATA): "
        "send again (a duplicate the Message-ID lets receivers drop) or hold the message "
        "as failed for an operator to look at",
    )

    @field_validator("smtp_ca_file")
    @classmethod
    def _ca_file_loads(cls, path: Path | None) -> Path | None:
        if path is None:
            return None
        if not path.is_file():
            raise ValueError(f"no such file: {path}")
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError):
            raise ValueError(f"not a readable PEM bundle of CA certificates: {path}") from None
        return path


class DestinationSettings(BaseModel):
    """Where SMTP credentials may point (POSTROOM_DESTINATIONS__<FIELD>)."""

    allow: str | None = Field(
        None,
        description="comma-separated networks, addresses and host names an SMTP credential may "
        'reach besides public addresses, e.g. "127.0.0.1/32,::1,smtp.internal"; unset: '
        "loopback in development, nothing in production",
    )

    @model_validator(mode="after")
    def _entries_are_networks_or_names(self) -> "DestinationSettings":
        DestinationPolicy(self.entries() or ())
        return self

    def entries(self) -> list[str] | None:
        if self.allow is None:
            return None
        return [e.strip() for e in self.allow.split(",") if e.strip()]


class SenderSettings(BaseModel):
    """Who may send through the server-wide transport, and the mail that verifies a sender
    (POSTROOM_SENDERS__<FIELD>)."""

    allowed_domains: str | None = Field(
        None,
        description="comma-separated domains (each with its subdomains) a message may be From "
        "through the server-wide transport without a verified email delivery setting; `*` "
        "allows any; unset: any while the server-wide transport writes .eml files (nothing "
        "leaves the machine), none once POSTROOM_SMTP_URL is set",
    )
    verification_from: str = Field(
        "postroom@localhost",
        description="From address of the mail that carries a sender's verification token; it "
        "goes out through the server-wide transport",
    )
    verification_token_hours: float = Field(
        48, gt=0, description="how long a verification token stays valid"
    )
    public_url: str | None = Field(
        None,
        description="the API's address as clients reach it, for the link in the verification "
        "mail; default: the address the request that started the verification came to",
    )

    def domains(self) -> list[str] | None:
        if self.allowed_domains is None:
            return None
        return [d.strip().lower().rstrip(".") for d in self.allowed_domains.split(",") if d.strip()]


class LimitSettings(BaseModel):
    """Request limits (POSTROOM_LIMITS__<FIELD>)."""

    rate_limit_write: str = Field(
        "3000/10 minutes", description="per API key, for POST/PATCH/DELETE (`limits` notation)"
    )
    rate_limit_read: str = Field("10000/10 minutes", description="per API key, for GET")
    rate_limit_storage_url: str | None = Field(
        None, description="redis://host:port to share rate limits between API processes"
    )
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="largest JSON request body")
    api_key_cache_seconds: float = Field(
        10,
        ge=0,
        description="how long an API process remembers which organization a key reaches "
        "without asking the database; a revoked key keeps working there for at most this "
        "long (0: ask every time)",
    )
    idempotency_retention_hours: float = Field(
        7 * 24, gt=0, description="how long an Idempotency-Key's answer is kept"
    )
    max_batch_messages: int = Field(
        500, ge=1, description="most messages in one POST /email-message-batches (422 beyond)"
    )
    max_batch_body_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="largest body of POST /email-message-batches (413 beyond)",
    )


class FileSettings(BaseModel):
    """Uploaded files and message attachments (POSTROOM_FILES__<FIELD>)."""

    blob_dir: Path | None = Field(
        None, description="where file contents are kept; default: data_dir/blobs"
    )
    max_file_bytes: int = Field(
        10 * 1024 * 1024, ge=1, description="largest file one upload may carry (413 beyond)"
    )
    max_message_bytes: int = Field(
        25 * 1024 * 1024, ge=1, description="total size of the files one message attaches"
    )
    reserve_bytes: int = Field(
        64 * 1024 * 1024,
        ge=0,
        description="free disk space (where data and file contents are kept) below which "
        "uploads and other writes answer 507; deletes still work, to free space",
    )
    storage_url: str | None = Field(
        None,
        description="s3://bucket/prefix: file contents in an object store through the S3 API "
        "(shared by every host) instead of blob_dir",
    )
    s3_endpoint_url: str | None = Field(
        None, description="the S3 API's address (SeaweedFS, MinIO, ...); default: AWS's"
    )
    s3_region: str = Field("us-east-1", description="the bucket's region")
    s3_access_key_id: str | None = Field(None, description="S3 access key id")
    s3_secret_access_key: SecretStr | None = Field(None, description="S3 secret access key")

    @field_validator("storage_url")
    @classmethod
    def _storage_url_names_a_bucket(cls, url: str | None) -> str | None:
        if url is None or url == "":
            return None
        scheme, _, rest = url.partition("://")
        if scheme != "s3" or not rest.split("/", 1)[0]:
            raise ValueError("must be s3://bucket or s3://bucket/prefix")
        return url


class ProviderSettings(BaseModel):
    """Where the email service providers' APIs are (POSTROOM_PROVIDERS__<FIELD>); tests and
    proxies point them elsewhere."""

    sendgrid_url: str = Field("https://api.sendgrid.com", description="SendGrid v3 API")
    mailgun_url: str = Field("https://api.mailgun.net", description="Mailgun, US region")
    mailgun_eu_url: str = Field("https://api.eu.mailgun.net", description="Mailgun, EU region")
    postmark_url: str = Field("https://api.postmarkapp.com", description="Postmark API")
    ses_endpoint: str = Field(
        "https://email.{region}.amazonaws.com",
        description="Amazon SES v2 endpoint; {region} becomes the credential's region",
    )


class WebhookSettings(BaseModel):
    """How the workers send webhooks (POSTROOM_WEBHOOKS__<FIELD>)."""

    connect_timeout_seconds: float = Field(
        10, gt=0, description="resolving the endpoint's host and opening the connection"
    )
    timeout_seconds: float = Field(
        30,
        gt=0,
        description="one attempt from start to the end of the answer; keep it below lease_seconds",
    )
    concurrency_per_endpoint: int = Field(
        4,
        ge=1,
        description="requests a worker has in flight to one webhook at once, at most: a slow "
        "or dead endpoint ties up only this share, never another endpoint's events",
    )
    batch_size: int = Field(100, ge=1, le=1000, description="deliveries claimed in one go")
    lease_seconds: float = Field(
        120, gt=0, description="a claimed delivery is claimed again after this long (crash)"
    )
    poll_seconds: float = Field(1.0, gt=0, description="idle wait between empty claims")
    max_retry_after_seconds: float = Field(
        6 * 3600, ge=0, description="cap on an endpoint's Retry-After"
    )
    inactive_after_hours: float = Field(
        120,
        gt=0,
        description="a webhook whose attempts have all failed for this long is set inactive "
        "(with the reason) and its pending deliveries failed",
    )
    secret_overlap_hours: float = Field(
        24,
        ge=0,
        description="after a secret is rotated, requests carry a signature with the previous "
        "secret too for this long",
    )
    max_per_organization: int = Field(
        100, ge=1, description="webhooks an organization may have; one more is a 409"
    )

    @model_validator(mode="after")
    def _attempt_within_lease(self) -> "WebhookSettings":
        if self.timeout_seconds >= self.lease_seconds:
            # Another worker would claim the delivery while its attempt is still under way.
            raise ValueError("webhooks: timeout_seconds must be below lease_seconds")
        return self


class DashboardSettings(BaseModel):
    """The dashboard at /dashboard (POSTROOM_DASHBOARD__<FIELD>)."""

    session_hours: float = Field(8, gt=0, description="a sign-in lasts this long")
    trust_forwarded_proto: bool = Field(
        False,
        description="X-Forwarded-Proto from any peer decides whether the session cookie is "
        "Secure; otherwise the request's scheme does (uvicorn applies the header only from "
        "its --forwarded-allow-ips, 127.0.0.1 by default)",
    )


class EventSettings(BaseModel):
    """Provider events, bounces and the blocklist (POSTROOM_EVENTS__<FIELD>)."""

    auto_blocklist: bool = Field(
        True,
        description="a hard bounce or a complaint puts the recipient on the blocklist "
        "(source automated-blocklists)",
    )
    soft_bounce_limit: int = Field(
        3,
        ge=1,
        description="soft bounces of one recipient (across the organization's messages) that "
        "put it on the blocklist",
    )
    blocklist_days: float | None = Field(
        None,
        gt=0,
        description="how long an automated entry lasts; unset: until removed",
    )
    timestamp_tolerance_seconds: float = Field(
        300,
        gt=0,
        description="a signed inbound request whose timestamp is further from now than this "
        "is refused (a replay)",
    )
    bounce_domain: str | None = Field(
        None,
        description="the domain whose MX is `postroom bounces`: SMTP sends get the Return-Path "
        "bounces+<token>@<domain>; unset: the sender's own address",
    )
    bounces_host: str = Field("127.0.0.1", description="address `postroom bounces` listens on")
    bounces_port: int = Field(
        2525, ge=0, le=65535, description="port `postroom bounces` listens on"
    )
    sns_certificate_hosts: str = Field(
        r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$",
        description="a regular expression for the hosts SNS signing certificates and "
        "subscription confirmations are fetched from, over https only",
    )
    sns_ca_file: Path | None = Field(
        None,
        description="a CA bundle trusted when fetching SNS certificates (tests serve their own); "
        "unset: the system's",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore"
    )

    environment: Literal["development", "production"] = Field(
        "development", description="production refuses unsafe defaults"
    )
    data_dir: Path = Field(Path("data"), description="SQLite file, secret key, .eml outbox")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite in the data directory"
    )
    secret_key: SecretStr | None = Field(
        None, description="encrypts stored credentials; default: generated into data_dir"
    )
    smtp_url: SecretStr | None = Field(
        None,
        description="default transport: smtp://user:pass@host:port?encryption=none|tls|ssl; "
        "unset writes .eml files into data_dir/outbox",
    )
    api_key: SecretStr | None = Field(
        None, description="API key of the organization created on first start of an empty db"
    )
    host: str = Field("127.0.0.1", description="address the API listens on")
    port: int = Field(8000, ge=0, le=65535, description="port the API listens on")
    log_level: str = Field("INFO", description="root log level")
    log_json: bool = Field(True, description="one JSON object a log line")
    developer_domains: bool | None = Field(
        None,
        description="accept addresses at .test, .example and localhost (a local SMTP server's "
        "mail); default: on in development, off in production",
    )
    cors_origins: str = Field(
        "",
        description="comma-separated origins a browser may call the API from (e.g. "
        "https://app.example.com), `*` for any; empty (the default): no CORS headers at all",
    )
    delivery: DeliverySettings = DeliverySettings()
    limits: LimitSettings = LimitSettings()
    files: FileSettings = FileSettings()
    providers: ProviderSettings = ProviderSettings()
    destinations: DestinationSettings = DestinationSettings()
    senders: SenderSettings = SenderSettings()
    webhooks: WebhookSettings = WebhookSettings()
    events: EventSettings = EventSettings()
    dashboard: DashboardSettings = DashboardSettings()

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_parses(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None:
            # Its messages never quote the URL, whose password would go into logs and terminals.
            SmtpConfig.from_url(url.get_secret_value())
        return url

    @model_validator(mode="after")
    def _refuse_unsafe_production_defaults(self) -> "Settings":
        if self.environment == "production":
            missing = [n for n in ("database_url", "secret_key") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"production needs POSTROOM_{missing[0].upper()} set")
        return self

    def public_url(self) -> str:
        """The API's address as people outside reach it (links in mail): POSTROOM_SENDERS__
        PUBLIC_URL, or else where it listens (right for a local setup only)."""
        return self.senders.public_url or f"http://{self.host}:{self.port}"

    def stored_secret(self) -> str:
        """The key for secrets at rest: POSTROOM_SECRET_KEY, or one kept in the data dir."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return load_or_create_secret(self.data_dir)

    def destination_policy(self) -> DestinationPolicy:
        allowed = self.destinations.entries()
        if allowed is None:
            allowed = [] if self.environment == "production" else list(DEVELOPMENT_DESTINATIONS)
        return DestinationPolicy(allowed)

    def server_transport_domains(self) -> tuple[str, ...]:
        """The sender domains the server-wide transport takes without a verified setting."""
        domains = self.senders.domains()
        if domains is None:
            domains = ["*"] if self.smtp_url is None else []
        return tuple(domains)

    def developer_domains_allowed(self) -> bool:
        if self.developer_domains is None:
            return self.environment == "development"
        return self.developer_domains

    def cors_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @property
    def blob_dir(self) -> Path:
        return self.files.blob_dir or self.data_dir / "blobs"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'postroom.db').resolve()}"


class InvalidSettings(Exception):
    """Settings the service cannot start with; the message names each setting at fault (as its
    environment variable) and why, on one line, and quotes no value (a value may be a secret)."""


def load_settings() -> Settings:
    """The settings from the environment (and their defaults), or InvalidSettings."""
    try:
        return Settings()
    except ValidationError as error:
        raise InvalidSettings(_describe(error)) from None
    except SettingsError as error:  # a nested group given as JSON that does not parse
        raise InvalidSettings(str(error)) from None


def _describe(error: ValidationError) -> str:
    problems = []
    for detail in error.errors(include_url=False, include_input=False):
        message = detail["msg"].removeprefix("Value error, ")
        location = detail["loc"]
        if location:
            name = ENV_PREFIX + "__".join(str(part) for part in location).upper()
            problems.append(f"{name}: {message}")
        else:
            problems.append(message)
    return "; ".join(problems)
