"""Syntax rules for everything an operator types: names, endpoints, weights, mirrors.

Each ``parse_*`` function turns the CLI's text into model values and each
``validate_*`` function checks values that arrive over the API from any client;
the parsers call the validators, so one rule has one home. Messages name the
problem and the fix.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable
from decimal import Decimal

from xds_server.errors import InvalidRequest
from xds_server.model.state import WILDCARD_DOMAIN, Endpoint, Mirror

_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_HOST_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", re.IGNORECASE)
_LABEL_KEY = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?")
# Plain ASCII digits only: Python's int() and \\d also take other scripts' digits
# (Arabic-Indic, fullwidth, superscripts), which an operator never means to type.
_WEIGHT = re.compile(r"0|[1-9][0-9]*")
_PORT = re.compile(r"[0-9]{1,5}")
_PERCENT = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")
# Longer numbers are out of range anyway; int() of thousands of digits is slow.
_MAX_DIGITS = 6

MAX_WEIGHT = 100

DNS_LABEL_RULE = (
    "a lowercase DNS label: a-z, 0-9 and '-', at most 63 characters, "
    "starting and ending with a letter or digit"
)


def validate_dns_label(kind: str, value: str) -> str:
    """Check a service or tag name; returns it unchanged."""
    if not isinstance(value, str) or not _DNS_LABEL.fullmatch(value):
        # At most 63 characters are valid, so a longer echo says nothing more.
        shown = value[:70] if isinstance(value, str) else value
        raise InvalidRequest(f"{kind} {shown!r} is not valid: use {DNS_LABEL_RULE}")
    return value


def _is_hostname(value: str) -> bool:
    labels = value.split(".")
    return (
        len(value) <= 253
        and all(_HOST_LABEL.fullmatch(label) for label in labels)
        # A name whose last label is all digits is a mistyped IPv4 address.
        and not labels[-1].isdigit()
    )


def validate_domain(domain: str) -> str:
    """Check one domain a service answers; returns it in lowercase.

    Accepted: ``*``, a host name, or a host name with a leading ``*.`` wildcard.
    A port is refused: the listener strips the port from Host before matching.
    """
    lowered = domain.lower()
    if lowered == WILDCARD_DOMAIN:
        return lowered
    name = lowered.removeprefix("*.")
    if ":" in name:
        raise InvalidRequest(
            f"domain {domain!r} has a port: give the host name alone "
            "(Envoy matches Host without its port)"
        )
    if not _is_hostname(name):
        raise InvalidRequest(
            f"domain {domain!r} is not valid: use a host name such as shop.example.com, "
            "a wildcard such as *.example.com, or * for every host"
        )
    return lowered


def validate_endpoint(host: str, port: int) -> Endpoint:
    """Check a host (IPv4, IPv6 or DNS name) and a port 1-65535."""
    if not 1 <= port <= 65535:
        raise InvalidRequest(f"endpoint {host}:{port}: the port must be from 1 to 65535")
    try:
        return Endpoint(host=str(ipaddress.ip_address(host)), port=port)
    except ValueError:
        pass
    if not _is_hostname(host):
        raise InvalidRequest(
            f"endpoint host {host!r} is not an IP address or a DNS name: "
            "use e.g. 10.0.0.5:8080, [::1]:8080 or app.internal:8080"
        )
    return Endpoint(host=host.lower(), port=port)


def parse_endpoint(text: str) -> Endpoint:
    """Parse ``HOST:PORT`` where HOST is IPv4, ``[IPv6]`` or a DNS name."""
    usage = "write HOST:PORT, e.g. 10.0.0.5:8080, [::1]:8080 or app.internal:8080"
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep or not host:
            raise InvalidRequest(f"endpoint {text!r} is malformed: {usage}")
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise InvalidRequest(f"endpoint {text!r} has no port: {usage}")
        if not host:
            raise InvalidRequest(
                f"endpoint {text!r} has no host: {usage} (0.0.0.0 to listen on every address)"
            )
        if ":" in host:
            raise InvalidRequest(
                f"endpoint {text!r}: put an IPv6 address in brackets, e.g. [{host}]:{port}"
            )
    if not _PORT.fullmatch(port):
        raise InvalidRequest(
            f"endpoint {text!r}: the port {port!r} is not a number from 1 to 65535 "
            f"in plain digits: {usage}"
        )
    return validate_endpoint(host, int(port))


def validate_endpoints(endpoints: Iterable[Endpoint]) -> tuple[Endpoint, ...]:
    """Check a deployment's endpoint list: at least one, none twice."""
    result = tuple(endpoints)
    if not result:
        raise InvalidRequest("a deployment needs at least one endpoint: add --endpoint HOST:PORT")
    seen: set[Endpoint] = set()
    for endpoint in result:
        if endpoint in seen:
            raise InvalidRequest(f"endpoint {endpoint} is listed twice: list each endpoint once")
        seen.add(endpoint)
    return result


def validate_label(key: str, value: str) -> tuple[str, str]:
    if not _LABEL_KEY.fullmatch(key):
        raise InvalidRequest(
            f"label key {key!r} is not valid: use letters, digits, '-', '_' and '.', "
            "at most 63 characters, starting and ending with a letter or digit"
        )
    if not _LABEL_VALUE.fullmatch(value):
        raise InvalidRequest(
            f"label {key}={value!r}: the value may hold letters, digits, '-', '_' and '.', "
            "at most 63 characters"
        )
    return key, value


def parse_label(text: str) -> tuple[str, str]:
    """Parse ``KEY=VALUE``."""
    key, sep, value = text.partition("=")
    if not sep:
        raise InvalidRequest(f"label {text!r} is malformed: write KEY=VALUE, e.g. version=v2")
    return validate_label(key, value)


def validate_labels(labels: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    result = tuple(validate_label(key, value) for key, value in labels)
    keys = [key for key, _ in result]
    for key in keys:
        if keys.count(key) > 1:
            raise InvalidRequest(f"label {key} is given twice: give each label once")
    return result


def _split_pairs(flag: str, text: str, example: str) -> list[tuple[str, str]]:
    """Split ``a=1,b=2`` into pairs; an empty part or a missing ``=`` is an error."""
    pairs = []
    for part in text.split(","):
        tag, sep, value = part.strip().partition("=")
        if not sep or not tag or not value:
            raise InvalidRequest(
                f"{flag} {text!r} is malformed at {part.strip()!r}: "
                f"write TAG=VALUE pairs separated by commas, e.g. {flag} {example}"
            )
        pairs.append((tag, value))
    return pairs


def parse_weights(text: str) -> tuple[tuple[str, int], ...]:
    """Parse ``--tags blue=90,green=10`` into (tag, weight) pairs, in order.

    Each weight is plain ASCII digits from 0 to 100 (no sign, no leading zero);
    the sum, duplicate tags and whether deployments hold the tags are the
    policy's rules (``validate_policy``), which the server applies to every client.
    """
    weights = []
    for tag, value in _split_pairs("--tags", text, "blue=90,green=10"):
        if not _WEIGHT.fullmatch(value):
            raise InvalidRequest(
                f"weight {value!r} of tag {tag} is not a whole number in plain digits "
                f"(0 to 100, no sign or leading zero): write e.g. {tag}=90"
            )
        if len(value) > _MAX_DIGITS or int(value) > MAX_WEIGHT:
            raise InvalidRequest(
                f"weight of {tag} must be from 0 to {MAX_WEIGHT} (got {value[:_MAX_DIGITS]}"
                f"{'...' if len(value) > _MAX_DIGITS else ''})"
            )
        weights.append((tag, int(value)))
    return tuple(weights)


def parse_percent(tag: str, text: str) -> int:
    """Parse a mirror percentage into hundredths of a percent, checking its range.

    Plain ASCII digits with an optional fraction (``5``, ``0.25``); no exponent,
    no ``+``, no other scripts' digits.
    """
    if not _PERCENT.fullmatch(text):
        raise InvalidRequest(
            f"mirror percent {text[:20]!r} for {tag} is not a number in plain digits: "
            f"write e.g. {tag}=5 or {tag}=0.25"
        )
    value = Decimal(text)
    if not Decimal(0) < value <= Decimal(100):
        raise InvalidRequest(
            f"mirror percent for {tag} must be above 0 and at most 100 (got {text[:20]})"
        )
    hundredths = value * 100
    if hundredths != hundredths.to_integral_value():
        raise InvalidRequest(
            f"mirror percent for {tag} may have at most two decimals (got {text[:20]})"
        )
    return int(hundredths)


def parse_mirrors(text: str) -> tuple[Mirror, ...]:
    """Parse ``--mirror green=5[,canary=0.5]``."""
    return tuple(
        Mirror(tag=tag, hundredths=parse_percent(tag, value))
        for tag, value in _split_pairs("--mirror", text, "green=5")
    )


# RFC 9110 token characters, lower case: Envoy matches header names in lower case
# (HTTP/2 and /3 carry nothing else), so an upper-case name would never match.
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]{1,100}")
# Connection-specific headers never reach a route (RFC 9110 7.6.1); Host is routing's.
_UNUSABLE_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "trailer",
        "proxy-authenticate",
        "proxy-authorization",
        "host",
    }
)


def validate_header_name(flag: str, name: str) -> str:
    """Check a request header name an operator picks for routing; returns it unchanged."""
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{flag} needs a header name, e.g. {flag} x-deployment-tag")
    shown = name[:100]
    if name.startswith(":"):
        raise InvalidRequest(
            f"{flag} {shown!r} is an HTTP/2 pseudo-header, which Envoy routes on itself: "
            "pick an ordinary header such as x-deployment-tag"
        )
    if _HEADER_NAME.fullmatch(name.lower()) and name != name.lower():
        raise InvalidRequest(
            f"{flag} {shown!r} has upper-case letters; Envoy sees header names in lower "
            f"case, so write {flag} {name.lower()}"
        )
    if not _HEADER_NAME.fullmatch(name):
        raise InvalidRequest(
            f"{flag} {shown!r} is not a valid header name: use at most 100 of a-z, 0-9 "
            "and !#$%&'*+-.^_`|~, e.g. x-deployment-tag"
        )
    if name in _UNUSABLE_HEADERS:
        what = "what virtual hosts match" if name == "host" else "hop-by-hop, gone before routing"
        raise InvalidRequest(
            f"{flag} {name!r} cannot be used: it is {what}; "
            "pick an ordinary header such as x-deployment-tag"
        )
    if name.startswith("x-envoy-"):
        raise InvalidRequest(
            f"{flag} {name!r} cannot be used: Envoy owns x-envoy-* headers and strips "
            "them from external requests; pick another name such as x-deployment-tag"
        )
    return name


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``did you mean green? `` for a near miss among ``known`` (a mistyped tag, service,
    hook or event), else ""; put before the rest of the fix."""
    near = difflib.get_close_matches(word, list(known), n=1)
    return f"did you mean {near[0]}? " if near else ""
