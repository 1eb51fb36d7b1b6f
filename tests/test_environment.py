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
