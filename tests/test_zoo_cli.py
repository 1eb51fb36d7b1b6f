"""``python -m advlens.zoo``: user errors answered in one line, before any model is built."""

from __future__ import annotations

from pathlib import Path

import pytest

from advlens.zoo import __main__ as zoo_cli


def test_missing_paper_checkpoints_are_one_line(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVLENS_CHECKPOINTS", str(tmp_path / "none"))
    monkeypatch.delenv("ADVLENS_PAPER_ZOO", raising=False)
    assert zoo_cli.main(["--preset", "paper", "--root", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("advlens.zoo: ") and "ADVLENS_CHECKPOINTS" in err
    assert err.count("\n") == 1, err


def test_csv_in_a_missing_folder_is_refused_before_building(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def build(*args: object, **kw: object) -> None:
        raise AssertionError("built the zoo before checking --csv")

    monkeypatch.setattr(zoo_cli, "build", build)
    with pytest.raises(SystemExit) as info:
        zoo_cli.main(["--preset", "smoke", "--csv", str(tmp_path / "no" / "zoo.csv")])
    assert info.value.code == 2 and "its folder does not exist" in capsys.readouterr().err
