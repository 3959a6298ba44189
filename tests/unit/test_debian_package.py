"""The Debian package's sources (debian/) agree with the code they package.

deploy/build-deb.sh names the .deb after failoverd.__version__, while
dpkg-buildpackage takes the version from debian/changelog's top entry: when the
two differ, the build is refused at the end or ships a package whose name and
`failoverd --version` disagree. Bump both together (dch -v VERSION, or edit the
top entry by hand).
"""

from __future__ import annotations

import re

import failoverd
from tests.support.checkout import REPO

DEBIAN = REPO / "debian"


def changelog_version(text: str) -> str:
    """The version of the top entry: `failoverd (0.2.0) bookworm; urgency=medium`."""
    m = re.match(r"failoverd \(([^)\s]+)\) \S+; urgency=\w+\n", text)
    assert m, "debian/changelog must start with a `failoverd (VERSION) DIST; urgency=...` line"
    return m.group(1)


def debian_form(version: str) -> str:
    """PEP 440 to Debian: a pre-release sorts before its release only with `~`
    (0.2.0rc1 -> 0.2.0~rc1, which dpkg orders before 0.2.0)."""
    return re.sub(r"(\d)[.-]?(a|b|rc|dev)(\d*)", r"\1~\2\3", version)


def test_the_changelog_names_the_version_the_code_reports() -> None:
    top = changelog_version((DEBIAN / "changelog").read_text())
    assert top == debian_form(failoverd.__version__), (
        f"debian/changelog says {top}, failoverd/__init__.py {failoverd.__version__}"
    )


def test_a_changelog_behind_the_code_is_caught() -> None:
    planted = "failoverd (0.0.9) bookworm; urgency=medium\n\n  * old\n"
    assert changelog_version(planted) == "0.0.9" != debian_form(failoverd.__version__)


def test_pre_releases_sort_before_their_release() -> None:
    assert debian_form("0.2.0rc1") == "0.2.0~rc1"
    assert debian_form("0.2.0") == "0.2.0"


def test_the_venv_installs_the_lock_hash_checked_and_the_unit_stays_off() -> None:
    rules = (DEBIAN / "rules").read_text()
    assert "--requirements=requirements.lock --extra-pip-arg=--require-hashes" in rules
    assert "dh_installsystemd --no-enable --no-start" in rules
    assert (DEBIAN / "failoverd.service").resolve() == REPO / "deploy/failoverd.service"


def test_every_listed_man_page_exists() -> None:
    pages = (DEBIAN / "failoverd.manpages").read_text().split()
    assert sorted(p.rsplit("/", 1)[1] for p in pages) == [
        "failoverctl.8",
        "failoverd.8",
        "failoverd.yaml.5",
    ]
    for page in pages:
        assert (REPO / page).is_file(), page


def test_the_unit_runs_the_path_both_installs_provide() -> None:
    unit = (REPO / "deploy/failoverd.service").read_text()
    assert "\nExecStart=/usr/bin/failoverd -c /etc/failoverd/failoverd.yaml\n" in unit
    links = (DEBIAN / "failoverd.links").read_text()
    assert "opt/venvs/failoverd/bin/failoverd usr/bin/failoverd" in links
