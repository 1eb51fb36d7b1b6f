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


def test_csv_is_replaced_whole_or_not_at_all(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails half way (disk full, a kill) leaves the earlier table as it was,
    not a truncated file that reads as a zoo table."""
    import pandas as pd

    class Zoo:
        def table(self) -> pd.DataFrame:
            return pd.DataFrame({"name": ["m"], "hash": ["h"], "cached": [True],
                                 "train_time_s": [0.0]})

    monkeypatch.setattr(zoo_cli, "build", lambda *a, **kw: Zoo())
    out = tmp_path / "zoo.csv"
    out.write_text("name\nearlier\n")

    def half(self: pd.DataFrame, path: object, **kw: object) -> None:
        Path(str(path)).write_text("na")
        raise OSError("No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half)
    with pytest.raises(OSError, match="No space"):
        zoo_cli.main(["--preset", "smoke", "--csv", str(out), "--quiet"])
    assert out.read_text() == "name\nearlier\n"
    assert [p.name for p in tmp_path.iterdir()] == ["zoo.csv"]  # no temporary left behind


@pytest.mark.parametrize("flag", ["--csv", "--root"])
def test_a_folder_for_csv_or_a_file_for_root_is_refused_before_building(
        flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``--csv DIR`` passed the folder check and failed with IsADirectoryError after the whole
    build; ``--root FILE`` ended in a FileExistsError traceback."""
    def build(*args: object, **kw: object) -> None:
        raise AssertionError(f"built the zoo before checking {flag}")

    monkeypatch.setattr(zoo_cli, "build", build)
    value = tmp_path
    if flag == "--root":
        value = tmp_path / "zoo.csv"
        value.write_text("name\n")
    with pytest.raises(SystemExit) as info:
        zoo_cli.main(["--preset", "smoke", flag, str(value)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and f"{flag} {value} is a f" in err, err
