"""The per-message bounce address: made for a message id, read back only with the same secret."""

import pytest

from postroom.core.bounce_address import bounce_address, message_of
from postroom.core.crypto import SecretBox
from postroom.core.ids import new_id

BOX = SecretBox("a-secret-of-enough-length-for-tests")
DOMAIN = "bounces.example.com"


class TestBounceAddress:
    def test_round_trips_to_its_message_id(self) -> None:
        message_id = new_id("mail_msg_")

        address = bounce_address(BOX, message_id, DOMAIN)

        assert address.startswith(f"bounces+{message_id}.")
        assert address.endswith(f"@{DOMAIN}")
        assert len(address.partition("@")[0]) <= 64  # RFC 5321 4.5.3.1.1
        assert message_of(BOX, address, DOMAIN) == message_id

    def test_angle_brackets_and_the_case_of_tag_and_domain_do_not_matter(self) -> None:
        message_id = new_id("mail_msg_")
        local, _, _ = bounce_address(BOX, message_id, DOMAIN).partition("@")
        prefix, _, tag = local.rpartition(".")

        assert (
            message_of(BOX, f"<{prefix}.{tag.upper()}@BOUNCES.example.com>", DOMAIN) == message_id
        )

    @pytest.mark.parametrize(
        "address",
        [
            "",
            "bounces@bounces.example.com",
            "postmaster@bounces.example.com",
            "bounces+@bounces.example.com",
            "bounces+mail_msg_01JD00000000000000000000.aaaaaaaaaaaaaaaa@bounces.example.com",
            "bounces+mail_msg_\udcff.aaaaaaaaaaaaaaaa@bounces.example.com",
            "no-at-sign",
        ],
    )
    def test_other_addresses_stand_for_no_message(self, address: str) -> None:
        assert message_of(BOX, address, DOMAIN) is None

    def test_another_domain_or_secret_stands_for_no_message(self) -> None:
        message_id = new_id("mail_msg_")
        address = bounce_address(BOX, message_id, DOMAIN)

        assert message_of(BOX, address, "example.com") is None
        assert message_of(SecretBox("another-secret-of-enough-length"), address, DOMAIN) is None

    def test_a_tag_for_one_message_does_not_serve_another(self) -> None:
        first, second = new_id("mail_msg_"), new_id("mail_msg_")
        tag = bounce_address(BOX, first, DOMAIN).partition("@")[0].rpartition(".")[2]

        assert message_of(BOX, f"bounces+{second}.{tag}@{DOMAIN}", DOMAIN) is None
