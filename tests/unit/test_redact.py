"""`psmon.redact`: no password, token or secret query parameter of a URL survives, whatever its
shape; what is not secret (scheme, user, host, port, path, other parameters) stays readable."""

import pytest

from psmon.redact import MASK, redact_text, redact_url

SECRET = "hunter2"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://default:hunter2@ch:8123/psmon", f"http://default:{MASK}@ch:8123/psmon"),
        ("https://admin:hunter2@grafana:3000", f"https://admin:{MASK}@grafana:3000"),
        # a password with unencoded `/`, `?`, `#` or `@` stays inside the user info
        ("https://admin:hu/n?t#e@r2hunter2@grafana:3000/x?y=1", f"https://admin:{MASK}@grafana:3000/x?y=1"),
        # a lone user name may be a token: masked whole
        ("https://hunter2@grafana:3000", f"https://{MASK}@grafana:3000"),
        ("http://u:@h", f"http://u:{MASK}@h"),
        (
            "clickhouse://h:9000/db?user=u&password=hunter2&secure=1",
            f"clickhouse://h:9000/db?user=u&password={MASK}&secure=1",
        ),
        ("http://g:3000/?token=hunter2#top", f"http://g:3000/?token={MASK}#top"),
        ("http://g/?API_KEY=hunter2&x=1&access_token=hunter2", f"http://g/?API_KEY={MASK}&x=1&access_token={MASK}"),
        # nothing secret: unchanged
        ("chdb:///var/lib/psmon", "chdb:///var/lib/psmon"),
        ("http://prometheus:9090/api/v1/query?query=up", "http://prometheus:9090/api/v1/query?query=up"),
        ("localhost:9092", "localhost:9092"),
        ("", ""),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert SECRET not in redact_url(url)
    assert redact_url(redact_url(url)) == redact_url(url)  # idempotent


def test_redact_text_finds_every_url_in_a_message() -> None:
    message = (
        "cannot open ClickHouse at http://psmon:hunter2@ch:8123/?password=hunter2: refused; "
        "Grafana at 'https://admin:hunter2@grafana:3000/api' said 401 (see http://docs.example/x)"
    )
    out = redact_text(message)
    assert SECRET not in out
    assert out == (
        f"cannot open ClickHouse at http://psmon:{MASK}@ch:8123/?password={MASK}: refused; "
        f"Grafana at 'https://admin:{MASK}@grafana:3000/api' said 401 (see http://docs.example/x)"
    )
