"""Reading a received report into events, without a server: the odd shapes a report can take."""

from datetime import UTC, datetime

from postroom.events.models import BounceType, EventKind, EventSource
from postroom.events.reports import MAX_RECIPIENTS, read_report
from tests.events.reports import arf, dsn

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
TO = "bounces+x@bounces.example.net"


def _multi_recipient_dsn(blocks: list[str]) -> bytes:
    text = (
        "From: MAILER-DAEMON@mx.example.net\n"
        f"To: {TO}\n"
        "Subject: Delivery Status Notification\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="X"\n'
        "\n"
        "--X\n"
        "Content-Type: text/plain\n"
        "\n"
        "Some recipients failed.\n"
        "\n"
        "--X\n"
        "Content-Type: message/delivery-status\n"
        "\n"
        "Reporting-MTA: dns; mx.example.net\n"
        "\n" + "\n".join(blocks) + "\n--X--\n"
    )
    return text.replace("\n", "\r\n").encode()


class TestReadReport:
    def test_dsn_hard_bounce(self) -> None:
        [event] = read_report(dsn(to=TO, recipient="gone@example.org"), NOW)

        assert event.kind == EventKind.BOUNCED
        assert event.bounce_type == BounceType.HARD
        assert event.source == EventSource.SMTP
        assert event.recipient == "gone@example.org"
        assert event.occurred_at == NOW
        assert event.message_id is None  # the caller knows it from the bounce address
        assert event.provider_event_id == "<20261204100000.4F1A2B3C4D@mx.example.net>"

    def test_each_recipient_block_is_an_event_and_relayed_is_none(self) -> None:
        report = _multi_recipient_dsn(
            [
                "Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.7.1\n",
                "Final-Recipient: rfc822; b@example.org\nAction: relayed\nStatus: 2.0.0\n",
                "Final-Recipient: rfc822; c@example.org\nAction: Delayed (retrying)\n"
                "Status: 4.4.7\n",
                "Final-Recipient: x400; /C=US/\nAction: failed\n",
            ]
        )

        events = read_report(report, NOW)

        assert [(e.kind, e.recipient, e.bounce_type, e.diagnostic) for e in events] == [
            (EventKind.BOUNCED, "a@example.org", BounceType.HARD, "5.7.1"),
            (EventKind.DEFERRED, "c@example.org", None, "4.4.7"),
            # No mail address, no readable status: a failure is permanent (RFC 3464 2.3.3).
            (EventKind.BOUNCED, None, BounceType.HARD, None),
        ]

    def test_recipients_read_from_one_report_are_bounded(self) -> None:
        block = "Final-Recipient: rfc822; r{}@example.org\nAction: failed\nStatus: 5.1.1\n"
        report = _multi_recipient_dsn([block.format(i) for i in range(MAX_RECIPIENTS + 50)])

        assert len(read_report(report, NOW)) == MAX_RECIPIENTS

    def test_arf_with_several_original_recipients(self) -> None:
        report = arf(to=TO, recipient="a@example.org").replace(
            b"Original-Rcpt-To: <a@example.org>\r\n",
            b"Original-Rcpt-To: <a@example.org>\r\nOriginal-Rcpt-To: b@example.org\r\n",
        )

        events = read_report(report, NOW)

        assert [(e.kind, e.recipient) for e in events] == [
            (EventKind.COMPLAINED, "a@example.org"),
            (EventKind.COMPLAINED, "b@example.org"),
        ]

    def test_report_without_its_machine_readable_part_falls_back_to_detection(self) -> None:
        report = (
            b"From: MAILER-DAEMON@mx.example.net\r\n"
            b'Content-Type: multipart/report; report-type=delivery-status; boundary="X"\r\n'
            b"\r\n--X\r\nContent-Type: text/plain\r\n\r\nnothing here\r\n--X--\r\n"
        )

        assert read_report(report, NOW) == []

    def test_garbage_reads_as_nothing(self) -> None:
        assert read_report(b"\x00\xff\xfe" * 1000, NOW) == []
        assert read_report(b"", NOW) == []
