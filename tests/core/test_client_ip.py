"""Per-IP limits see the client, not the load balancer, and nobody can pick their address by a header."""

import pytest

from backend.core.clientip import client_address, from_scope
from tests.conftest import REQUEST_CODE

pytestmark = pytest.mark.django_db

LB = "10.0.0.5"


@pytest.fixture
def behind_balancer(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24", "fd00::/8"]


def test_forwarded_for_from_an_untrusted_peer_is_ignored(behind_balancer):
    assert client_address("198.51.100.7", "1.2.3.4") == "198.51.100.7"
    assert client_address("198.51.100.7", None) == "198.51.100.7"


def test_rightmost_untrusted_address_through_trusted_proxies(behind_balancer):
    # The client forged "6.6.6.6"; our balancer appended the address it saw.
    assert client_address(LB, "6.6.6.6, 203.0.113.9") == "203.0.113.9"
    assert client_address(LB, "6.6.6.6, 203.0.113.9, 10.0.0.7") == "203.0.113.9"  # two of our hops
    assert client_address(LB, "not-an-ip, 203.0.113.9") == "203.0.113.9"
    assert client_address(LB, "203.0.113.9, garbage") == LB  # cannot vouch past garbage
    assert client_address("fd00::1", "[2001:db8::5]:443") == "2001:db8::5"


def test_no_trusted_proxies_configured_means_the_peer(settings):
    settings.TRUSTED_PROXIES = []
    assert client_address(LB, "203.0.113.9") == LB


def test_the_socket_reads_the_same_rule_from_its_scope(behind_balancer):
    scope = {"client": [LB, 40000], "headers": [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.9")]}
    assert from_scope(scope) == "203.0.113.9"
    assert from_scope({**scope, "client": ["198.51.100.7", 1]}) == "198.51.100.7"


def test_per_ip_code_limits_count_the_real_client(gql, settings, behind_balancer):
    settings.QUANZI = {**settings.QUANZI, "OTP_PER_IP_PER_HOUR": 2}

    def ask(phone, *, peer, xff):
        return gql(REQUEST_CODE, {"phone": phone}, REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=xff
                   )["data"]["requestLoginCode"]["errors"]

    # Through the balancer, two different customers have their own allowance.
    assert ask("+8613900000101", peer=LB, xff="203.0.113.1") == []
    assert ask("+8613900000102", peer=LB, xff="203.0.113.1") == []
    assert ask("+8613900000103", peer=LB, xff="203.0.113.1")[0]["code"] == "RATE_LIMITED"
    assert ask("+8613900000104", peer=LB, xff="203.0.113.2") == []
    # A client talking to us directly cannot escape its limit by inventing a new X-Forwarded-For each time.
    assert ask("+8613900000105", peer="198.51.100.7", xff="1.1.1.1") == []
    assert ask("+8613900000106", peer="198.51.100.7", xff="1.1.1.2") == []
    assert ask("+8613900000107", peer="198.51.100.7", xff="1.1.1.3")[0]["code"] == "RATE_LIMITED"
