"""core/destinations.py: which addresses a tenant's SMTP credential may reach."""

import ipaddress

import pytest

from postroom.core.destinations import DestinationPolicy, literal_address
from postroom.settings import DestinationSettings, Settings

REFUSED = [
    "127.0.0.1",
    "127.1",
    "0x7f000001",
    "0x7F.0.0.1",
    "2130706433",
    "0177.0.0.1",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "224.0.0.1",
    "239.255.255.250",
    "0.0.0.0",  # noqa: S104 - a destination refused, not an address bound to
    "0",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
    "::1",
    "[::1]",
    "::",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:7f00:1",
    "64:ff9b::a00:1",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808"]
NAMES = ["smtp.example.com", "localhost", "mail-1.example.org", "0x7f000001.example.com"]


class TestLiteralAddress:
    @pytest.mark.parametrize(
        ("spelling", "address"),
        [
            ("2130706433", "127.0.0.1"),
            ("0x7f000001", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("[::1]", "::1"),
            ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ],
    )
    def test_numeric_spellings_are_the_address_they_spell(
        self, spelling: str, address: str
    ) -> None:
        assert literal_address(spelling) == ipaddress.ip_address(address)

    @pytest.mark.parametrize("name", NAMES)
    def test_a_name_is_not_an_address(self, name: str) -> None:
        assert literal_address(name) is None


class TestPolicy:
    @pytest.mark.parametrize("host", REFUSED)
    def test_non_public_addresses_are_refused_in_every_spelling(self, host: str) -> None:
        refusal = DestinationPolicy().refusal(host)
        assert refusal == f"{host} is not an allowed destination (POSTROOM_DESTINATIONS__ALLOW)"

    @pytest.mark.parametrize("host", PUBLIC)
    def test_public_addresses_are_allowed(self, host: str) -> None:
        assert DestinationPolicy().refusal(host) is None

    @pytest.mark.parametrize("host", NAMES)
    def test_names_wait_for_their_resolution(self, host: str) -> None:
        assert DestinationPolicy().refusal(host) is None

    def test_the_allow_list_admits_its_networks_in_any_spelling_and_no_more(self) -> None:
        policy = DestinationPolicy(["127.0.0.1/32", "::1", "10.1.0.0/16"])
        for host in ["127.0.0.1", "2130706433", "127.1", "::ffff:127.0.0.1", "::1", "10.1.2.3"]:
            assert policy.refusal(host) is None, host
        for host in ["127.0.0.2", "10.2.0.1", "169.254.169.254", "::2"]:
            assert policy.refusal(host) is not None, host

    def test_an_allowed_name_is_allowed_whatever_it_resolves_to(self) -> None:
        policy = DestinationPolicy(["smtp.internal"])
        assert policy.allows_name("SMTP.internal.")
        assert not policy.allows_name("other.internal")
        assert not policy.allows_address(ipaddress.ip_address("10.0.0.1"))

    def test_an_entry_that_is_neither_network_nor_name_is_refused(self) -> None:
        with pytest.raises(ValueError, match="POSTROOM_DESTINATIONS__ALLOW"):
            DestinationPolicy(["10.0.0.0/33"])
        with pytest.raises(ValueError, match="neither"):
            DestinationPolicy(["not a host"])


class TestSettings:
    def test_the_setting_is_a_comma_separated_list(self) -> None:
        settings = Settings(destinations=DestinationSettings(allow="127.0.0.1/32, ::1"))
        policy = settings.destination_policy()
        assert policy.refusal("127.0.0.1") is None
        assert policy.refusal("::1") is None
        assert policy.refusal("127.0.0.2") is not None

    def test_development_allows_loopback_by_default(self) -> None:
        policy = Settings(destinations=DestinationSettings()).destination_policy()
        assert policy.refusal("127.0.0.1") is None
        assert policy.refusal("::1") is None
        assert policy.refusal("10.0.0.1") is not None

    def test_production_allows_nothing_by_default(self) -> None:
        settings = Settings(
            environment="production",
            database_url="postgresql+asyncpg://db/postroom",
            secret_key="a-production-secret-key",
            destinations=DestinationSettings(),
        )
        assert settings.destination_policy().refusal("127.0.0.1") is not None

    def test_an_empty_setting_allows_nothing(self) -> None:
        policy = Settings(destinations=DestinationSettings(allow="")).destination_policy()
        assert policy.refusal("127.0.0.1") is not None

    def test_a_bad_entry_stops_the_settings(self) -> None:
        with pytest.raises(ValueError, match="POSTROOM_DESTINATIONS__ALLOW"):
            DestinationSettings(allow="127.0.0.1,bad entry")
