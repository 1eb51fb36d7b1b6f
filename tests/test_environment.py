"""environment.yml and pyproject.toml describe the same environment."""

from __future__ import annotations

import tomllib

import yaml

from advlens.paths import repo_root


def _pip_section() -> list[str]:
    env = yaml.safe_load((repo_root() / "environment.yml").read_text())
    sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1, "environment.yml needs exactly one pip section"
    return sections[0]


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    listed = {req for req in _pip_section() if not req.startswith("-e")}
    assert listed == wanted, (f"only in pyproject: {sorted(wanted - listed)}; "
                              f"only in environment.yml: {sorted(listed - wanted)}")


def test_environment_yml_python_matches_requires_python() -> None:
    env = yaml.safe_load((repo_root() / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    project = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]
    assert project["requires-python"].startswith(">=3.11")


def test_torch_pins_are_exact() -> None:
    deps = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps


def _readme_words() -> str:
    return " ".join((repo_root() / "README.md").read_text().split())


def test_readme_names_the_pins_pyproject_has() -> None:
    """README's "torch X and torchvision Y are pinned" is pyproject's pins, not a copy of them."""
    import re

    deps = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = dict(d.split("==") for d in deps if d.startswith(("torch==", "torchvision==")))
    stated = re.search(r"\(torch (\S+) and torchvision (\S+) are pinned\)", _readme_words())
    assert stated, "README no longer says which torch and torchvision it pins"
    assert stated.groups() == (pins["torch"], pins["torchvision"])


def test_readme_names_every_peer_make_test_installs() -> None:
    """README listed the peers `make test` installs into .peers as foolbox, torchattacks and
    torch-cka; the Makefile's PEER_PKGS installs adv-lib too (the ALMA/DDN parity tests import
    it) and foolbox's eagerpy."""
    import re

    makefile = (repo_root() / "Makefile").read_text()
    line = re.search(r"^PEER_PKGS := (.*)$", makefile, re.M)
    assert line, "the Makefile has no PEER_PKGS line"
    installed = {pkg.split("==")[0] for pkg in line.group(1).split()}
    stated = re.search(r"`make test` also installs the peer libraries [^(]*\(([^)]*)\)",
                       _readme_words())
    assert stated, "README no longer says which peers `make test` installs"
    missing = sorted(name for name in installed if not re.search(rf"\b{re.escape(name)}\b",
                                                                 stated.group(1)))
    assert not missing, f"README's list of peers ({stated.group(1)}) misses {missing}"
