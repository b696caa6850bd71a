"""The language default follows the user's locale, falling back to Vietnamese."""

import pytest

from psmon.settings import Settings, locale_lang


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({"LANG": "vi_VN.UTF-8"}, "vi"),
        ({"LANG": "C.UTF-8"}, "vi"),  # no language in the locale: Vietnamese
        ({}, "vi"),
        ({"LANG": "vi_VN.UTF-8", "LC_MESSAGES": "en_GB.UTF-8"}, "en"),  # LC_MESSAGES wins over LANG
        ({"LC_MESSAGES": "en_GB.UTF-8", "LC_ALL": "vi_VN"}, "vi"),  # LC_ALL wins over both
    ],
)
def test_the_language_follows_the_locale(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str) -> None:
    for name in ("LC_ALL", "LC_MESSAGES", "LANG", "PSMON_LANG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert locale_lang() == expected
    assert Settings().lang == expected


def test_psmon_lang_wins_over_the_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    monkeypatch.setenv("PSMON_LANG", "vi")
    assert Settings().lang == "vi"
