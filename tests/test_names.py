"""Syntax rules for names, endpoints, labels, weights and mirrors."""

import pytest

from xds_server.errors import InvalidRequest
from xds_server.model.names import (
    parse_endpoint,
    parse_label,
    parse_mirrors,
    parse_percent,
    parse_weights,
    validate_dns_label,
    validate_domain,
    validate_endpoints,
)
from xds_server.model.state import Endpoint, Mirror


class TestParseEndpoint:
    @pytest.mark.parametrize(
        ("text", "host", "port", "is_ip"),
        [
            ("10.0.0.5:8080", "10.0.0.5", 8080, True),
            ("[::1]:8080", "::1", 8080, True),
            ("[2001:DB8::1]:443", "2001:db8::1", 443, True),
            ("app.internal:8080", "app.internal", 8080, False),
            ("localhost:1", "localhost", 1, False),
            ("App.Example.COM:65535", "app.example.com", 65535, False),
        ],
    )
    def test_valid(self, text: str, host: str, port: int, is_ip: bool) -> None:
        """IPv4, bracketed IPv6 and DNS names parse; names and v6 are normalised."""
        endpoint = parse_endpoint(text)
        assert endpoint == Endpoint(host=host, port=port)
        assert endpoint.is_ip is is_ip

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("10.0.0.5", "has no port"),
            ("10.0.0.5:0", "port must be from 1 to 65535"),
            ("10.0.0.5:65536", "port must be from 1 to 65535"),
            ("10.0.0.5:http", "is not a number"),
            ("10.0.0.5:\u00b2", "is not a number"),  # superscript two: int() would crash
            ("10.0.0.5:\u0668\u0660", "is not a number"),  # Arabic-Indic 80
            ("10.0.0.5:" + "9" * 5000, "is not a number"),
            ("::1:8080", "put an IPv6 address in brackets"),
            ("[::1]8080", "is malformed"),
            ("[]:80", "is malformed"),
            ("bad_host:80", "is not an IP address or a DNS name"),
            ("999.1.1.1:80", "is not an IP address or a DNS name"),
            (":8080", "has no host"),
            ("-app:80", "is not an IP address or a DNS name"),
        ],
    )
    def test_invalid(self, text: str, message: str) -> None:
        """Malformed endpoints are refused with a message that shows the right form."""
        with pytest.raises(InvalidRequest, match=message) as error:
            parse_endpoint(text)
        # Each message shows the fix: an example of the right form, or the range.
        assert "e.g." in str(error.value) or "from 1 to 65535" in str(error.value)

    def test_round_trip_text(self) -> None:
        """str() gives back the operator's form, brackets included."""
        for text in ("10.0.0.5:8080", "[::1]:8080", "app:80"):
            assert str(parse_endpoint(text)) == text

    def test_list_rules(self) -> None:
        """A deployment needs one endpoint at least and none twice."""
        with pytest.raises(InvalidRequest, match="at least one endpoint"):
            validate_endpoints([])
        twice = [Endpoint("10.0.0.1", 80), Endpoint("10.0.0.1", 80)]
        with pytest.raises(InvalidRequest, match="listed twice"):
            validate_endpoints(twice)


class TestNames:
    @pytest.mark.parametrize("name", ["blue", "green", "canary-2", "a", "v1", "a" * 63])
    def test_valid_labels(self, name: str) -> None:
        """Lowercase DNS labels are valid tag and service names."""
        assert validate_dns_label("tag", name) == name

    @pytest.mark.parametrize("name", ["Blue", "-blue", "blue-", "bl_ue", "", "a" * 64, "b.c"])
    def test_invalid_labels(self, name: str) -> None:
        """Anything else is refused, naming the rule."""
        with pytest.raises(InvalidRequest, match="lowercase DNS label"):
            validate_dns_label("tag", name)

    @pytest.mark.parametrize(
        ("domain", "expected"),
        [
            ("*", "*"),
            ("shop.example.com", "shop.example.com"),
            ("*.Example.com", "*.example.com"),
            ("localhost", "localhost"),
        ],
    )
    def test_valid_domains(self, domain: str, expected: str) -> None:
        """Host names, leading wildcards and * are domains; case is folded."""
        assert validate_domain(domain) == expected

    @pytest.mark.parametrize(
        ("domain", "message"),
        [
            ("shop.example.com:10000", "has a port"),
            ("shop..com", "is not valid"),
            ("sh op.com", "is not valid"),
            ("*shop.com", "is not valid"),
            ("", "is not valid"),
        ],
    )
    def test_invalid_domains(self, domain: str, message: str) -> None:
        """Ports, empty labels and stray wildcards are refused."""
        with pytest.raises(InvalidRequest, match=message):
            validate_domain(domain)

    def test_labels(self) -> None:
        """KEY=VALUE labels parse; malformed ones are refused."""
        assert parse_label("version=v2") == ("version", "v2")
        assert parse_label("empty=") == ("empty", "")
        with pytest.raises(InvalidRequest, match="write KEY=VALUE"):
            parse_label("version")
        with pytest.raises(InvalidRequest, match="label key"):
            parse_label("=v2")


class TestParseWeights:
    def test_valid(self) -> None:
        """Pairs keep the operator's order; spaces around pairs are allowed."""
        assert parse_weights("blue=90, green=10") == (("blue", 90), ("green", 10))
        assert parse_weights("blue=0,green=100") == (("blue", 0), ("green", 100))

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("blue", "is malformed"),
            ("blue=", "is malformed"),
            ("=90", "is malformed"),
            ("blue=90,", "is malformed"),
            ("blue=9.5", "not a whole number"),
            ("blue=ninety", "not a whole number"),
            ("blue=90;green=10", "not a whole number"),
            # Plain ASCII digits only: no sign, no leading zero, no other scripts' digits.
            ("blue=-5", "not a whole number in plain digits"),
            ("blue=+100", "not a whole number in plain digits"),
            ("blue=050", "no sign or leading zero"),
            ("blue=\u0661\u0660\u0660", "not a whole number"),  # Arabic-Indic 100
            ("blue=\uff11\uff10\uff10", "not a whole number"),  # fullwidth 100
            ("blue=\u00b2", "not a whole number"),  # superscript two: int() would crash
            ("blue=101", r"must be from 0 to 100 \(got 101\)"),
            ("blue=4294967396", r"must be from 0 to 100 \(got 429496\.\.\.\)"),
            ("blue=" + "9" * 5000, "must be from 0 to 100"),  # beyond int()'s digit limit
        ],
    )
    def test_invalid(self, text: str, message: str) -> None:
        """Malformed --tags are refused with an example of the right form."""
        with pytest.raises(InvalidRequest, match=message):
            parse_weights(text)


class TestParseMirrors:
    @pytest.mark.parametrize(
        ("text", "hundredths", "shown"),
        [
            ("5", 500, "5"),
            ("0.25", 25, "0.25"),
            ("100", 10000, "100"),
            ("12.5", 1250, "12.5"),
            ("0.01", 1, "0.01"),
            ("7.50", 750, "7.5"),
        ],
    )
    def test_percent(self, text: str, hundredths: int, shown: str) -> None:
        """Percentages are kept exactly, in hundredths, and shown as written."""
        assert parse_percent("green", text) == hundredths
        assert Mirror("green", hundredths).percent == shown

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("0", "above 0 and at most 100"),
            ("-1", "above 0 and at most 100"),
            ("100.01", "above 0 and at most 100"),
            ("5.125", "at most two decimals"),
            ("five", "not a number"),
            ("nan", "not a number"),
            ("inf", "not a number"),
            ("1e1", "not a number"),
            ("+5", "not a number"),
            ("\u0665", "not a number"),  # Arabic-Indic five
        ],
    )
    def test_invalid_percent(self, text: str, message: str) -> None:
        """Out-of-range, over-precise and non-numeric percentages are refused."""
        with pytest.raises(InvalidRequest, match=message):
            parse_percent("green", text)

    def test_several_targets(self) -> None:
        """One --mirror may list several targets."""
        assert parse_mirrors("green=5,canary=0.5") == (Mirror("green", 500), Mirror("canary", 50))
