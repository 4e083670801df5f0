from pathlib import Path

import pytest

from ztos.controller.dns import DnsSettings
from ztos.errors import InvalidInput


def test_dns_settings_parse_and_refuse_bad_input() -> None:
    settings = DnsSettings.parse("[2001:db8::1]:53", "embedded", Path("/x"), None, "64:ff9b::/96")
    assert (settings.listen, settings.port, settings.advertise) == ("2001:db8::1", 53, "2001:db8::1")
    assert settings.dns64 is not None
    cases = [
        (("dns.example:53", "embedded", None, None), "must be ADDRESS:PORT"),
        (("[2001:db8::1]:53", "powerdns", None, None), "'embedded' or 'bind'"),
        (("[2001:db8::1]:0", "embedded", None, None), "port 1..65535"),
        (("[::]:53", "embedded", None, None), "--dns-advertise"),
        (("[2001:db8::1]:53", "bind", None, "64:ff9b::/96"), "option of the embedded server"),
        (("[2001:db8::1]:53", "embedded", None, "64:ff9b::/120"), "--dns64"),
    ]
    for (listen, backend, advertise, dns64), message in cases:
        with pytest.raises(InvalidInput, match=message):
            DnsSettings.parse(listen, backend, Path("/x"), advertise, dns64)
