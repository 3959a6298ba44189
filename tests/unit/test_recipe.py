"""The Postfix + Dovecot recipe says one thing: docs/postfix-dovecot.md and the files
in deploy/examples/postfix-dovecot/ that an operator copies hold the same settings.

Compared as settings, not as text: the failoverd config as YAML data, main.cf and
Dovecot's local.conf as `name = value` pairs (comments differ on purpose: the page
explains below each block, the files explain inline).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from failoverd.config.order import plan
from tests.support.checkout import REPO

PAGE = REPO / "docs" / "postfix-dovecot.md"
FILES = REPO / "deploy" / "examples" / "postfix-dovecot"


def blocks(kind: str) -> list[str]:
    """The page's fenced blocks of one kind (```yaml, ```ini), in order."""
    return re.findall(rf"^```{kind}\n(.*?)^```$", PAGE.read_text(), re.M | re.S)


def settings(text: str) -> dict[str, str]:
    """`name = value` lines of main.cf or dovecot.conf, comments left out."""
    found = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, value = line.partition("=")
            found[name.strip()] = value.strip()
    return found


def page_config() -> Any:
    [config] = blocks("yaml")
    return yaml.safe_load(config)


def test_the_page_and_the_example_config_are_the_same_config() -> None:
    assert page_config() == yaml.safe_load((FILES / "failoverd.yaml").read_text())


def test_the_page_and_main_cf_set_the_same() -> None:
    main_cf, _ = blocks("ini")
    assert settings(main_cf) == settings((FILES / "main.cf").read_text())


def test_the_page_and_dovecot_conf_set_the_same() -> None:
    _, dovecot = blocks("ini")
    assert settings(dovecot) == settings((FILES / "dovecot.conf").read_text())


def test_the_recipe_listens_everywhere_starts_the_vip_last_and_uses_sasl() -> None:
    config = page_config()
    assert [r["type"] for r in config["resources"]] == ["ocf", "systemd", "systemd", "vip"]
    # The scheme docs/install.md sets up: SASL against the servers' JAAS file.
    assert config["zookeeper"]["auth"]["scheme"] == "sasl"
    assert settings(blocks("ini")[0])["inet_interfaces"] == "all"
    assert settings(blocks("ini")[1])["listen"] == "*"
    assert "auth: {scheme: sasl," in (REPO / "docs" / "install.md").read_text()


def test_the_recipe_starts_both_daemons_together_between_the_store_and_the_vip() -> None:
    resources = page_config()["resources"]
    names = [r["name"] for r in resources]
    order = plan(names, [tuple(r["after"]) if "after" in r else None for r in resources])
    assert [[names[i] for i in g] for g in order.groups()] == [
        ["store"],
        ["postfix", "dovecot"],
        ["vip"],
    ]
