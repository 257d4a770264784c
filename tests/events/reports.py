"""Reports as mail servers send them back: a DSN (RFC 3464, the way Postfix writes one), an ARF
feedback report (RFC 5965, after its appendix B example), a bounce in qmail's own format, and a
vacation auto-reply (no report at all)."""

_DSN = """\
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: {to}
Subject: Undelivered Mail Returned to Sender
Date: Fri, 4 Dec 2026 10:00:00 +0000
Message-ID: <{report_id}@mx.example.net>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
 boundary="B0UND.1733306400/mx.example.net"

This is a MIME-encapsulated message.

--B0UND.1733306400/mx.example.net
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

--B0UND.1733306400/mx.example.net
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: 4F1A2B3C4D
Arrival-Date: Fri, 4 Dec 2026 09:59:58 +0000

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.org
Diagnostic-Code: smtp; {diagnostic}

--B0UND.1733306400/mx.example.net
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: sender@example.com
To: {recipient}
Subject: Welcome dear customer!

--B0UND.1733306400/mx.example.net--
"""


def dsn(
    *,
    to: str,
    recipient: str,
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str = "550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown",
    report_id: str = "20261204100000.4F1A2B3C4D",
) -> bytes:
    text = _DSN.format(
        to=to,
        recipient=recipient,
        action=action,
        status=status,
        diagnostic=diagnostic,
        report_id=report_id,
    )
    return text.replace("\n", "\r\n").encode()


_ARF = """\
From: <abusedesk@example.net>
Date: Fri, 4 Dec 2026 11:00:00 +0000
Subject: FW: Welcome dear customer!
To: {to}
Message-ID: <arf.{report_id}@example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
     boundary="part1_13d.2e68ed54_boundary"

--part1_13d.2e68ed54_boundary
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
192.0.2.1 on Fri, 4 Dec 2026 10:00:00 +0000.
For more information about this format please see
https://www.rfc-editor.org/rfc/rfc5965.

--part1_13d.2e68ed54_boundary
Content-Type: message/feedback-report

Feedback-Type: {feedback_type}
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <bounces@example.com>
{rcpt_to_line}Arrival-Date: Fri, 4 Dec 2026 10:00:00 +0000
Reporting-MTA: dns; mail.example.net
Source-IP: 192.0.2.1
Authentication-Results: mail.example.net; spf=pass smtp.mail=example.com
Reported-Domain: example.com

--part1_13d.2e68ed54_boundary
Content-Type: text/rfc822-headers

From: <sender@example.com>
Received: from mailserver.example.com (mailserver.example.com [192.0.2.1])
 by mail.example.net with ESMTP id M63d4137594e46
Subject: Welcome dear customer!

--part1_13d.2e68ed54_boundary--
"""


def arf(
    *,
    to: str,
    recipient: str | None,
    feedback_type: str = "abuse",
    report_id: str = "1",
) -> bytes:
    rcpt_to_line = f"Original-Rcpt-To: <{recipient}>\n" if recipient else ""
    text = _ARF.format(
        to=to, feedback_type=feedback_type, rcpt_to_line=rcpt_to_line, report_id=report_id
    )
    return text.replace("\n", "\r\n").encode()


_QMAIL = """\
From: MAILER-DAEMON@mx.example.net
To: {to}
Subject: failure notice

Hi. This is the qmail-send program at mx.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<{recipient}>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

Subject: Welcome dear customer!
"""


def qmail_bounce(*, to: str, recipient: str) -> bytes:
    return _QMAIL.format(to=to, recipient=recipient).replace("\n", "\r\n").encode()


def vacation_reply(*, to: str) -> bytes:
    text = (
        "From: someone@example.org\n"
        f"To: {to}\n"
        "Subject: Out of office: Welcome dear customer!\n"
        "Auto-Submitted: auto-replied\n"
        "\n"
        "I am away until Monday and will read your message then.\n"
    )
    return text.replace("\n", "\r\n").encode()
