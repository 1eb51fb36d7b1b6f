"""``advlens verify``: a run's result tables against the committed reference, within tolerance.

Every CSV a notebook writes (``<run>/<notebook>/<table>.csv``) is compared cell by cell with the
file of the same name under the reference (``figures/`` by default). A number may move by the
tolerance measured between two seeds of the same preset (:data:`TOLERANCE_FILE`, one place for
all of them; remeasure with ``python -m advlens verify --measure RUN_A RUN_B``). The ``holds``
column of every ``*_findings.csv`` is a verdict: a changed verdict is a failure, unless that
verdict (or, where no finding's own is measured, any verdict of its table) changed between the
seeds the preset's tolerances were measured from (its ``holds`` tolerance is then inf: at that
preset the verdict is seed-dependent; listed, not failed). The other cells of a findings table
hold many quantities each (ρ, p, counts in the ``statistics`` JSON and the ``evidence`` text),
so their tolerances are measured per finding, and each statistic on its own
(:func:`findings_key`); a column's one tolerance, the largest move of any of them, let a ρ move
from 0.02 to 0.95 unflagged.

CLI::

    python -m advlens verify [RUN_DIR] [--reference DIR|git:REV] [--strict]
    python -m advlens verify --measure RUN_SEED0 RUN_SEED1 [...]   # remeasure their notebooks'
    python -m advlens verify --measure RUN_SEED0 RUN_SEED1 --keep-larger  # or raise them only
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import io
import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from advlens import provenance
from advlens.io import (
    atomic_write_json,
    extract_tar,
    file_lock,
    json_text,
    read_json,
    temp_lock_path,
)
from advlens.paths import figures_dir, repo_root
from advlens.presets import PRESET_NAMES

TOLERANCE_FILE = Path(__file__).with_name("tolerances.json")
# columns that measure the machine, not the method: never compared
# (weights_sha256: which weights a zoo model had; a retrained zoo is named once, in a note)
IGNORED_COLUMNS = ("wall_s", "*time_s", "wall_time*", "cached", "hash", "weights_sha256")
# a number standing on its own, not part of a name: "resnet18", "at0.5" and "seed-1" are labels
# (a rename is a text change, not a number that moved by 16); "inf" and "nan" as pandas writes
# them are numbers too (a threshold that became infinite moved, it was not relabelled), and so
# is JSON's null, a findings statistic that became NaN (advlens.findings.encode_statistics); a
# sign may be typeset as the Unicode minus (U+2212, "ρ 0.60 [−0.36, 0.84]")
_NUMBER = re.compile(r"(?<![\w.])(?<![A-Za-z][-_\u2212])[-+\u2212]?(?:(?:\d+\.\d*|\.\d+|\d+)"
                     r"(?:[eE][-+]?\d+)?|(?i:inf(?:inity)?|nan)|null)(?!\w|\.\d)")


@dataclass
class Cell:
    """One compared value: where it is, both values, and how far it moved."""

    table: str
    row: int
    column: str
    reference: Any
    run: Any
    delta: float
    tolerance: float | None


@dataclass
class Report:
    """What :func:`verify` found; ``ok`` is False when a verdict changed (other than one that
    changed between the seeds its preset's tolerances came from: :attr:`seed_flips`) or could
    not be checked (its findings table, row or ``holds`` column missing in the run, a finding
    named twice, or its notebook's ``run.json`` not saying ``completed``).
    """

    reference: Path | str  # "git:REV" where the reference was a revision
    run: Path
    identical: list[str] = field(default_factory=list)
    within: list[str] = field(default_factory=list)
    unmeasured: list[str] = field(default_factory=list)
    relabelled: list[str] = field(default_factory=list)
    reshaped: list[str] = field(default_factory=list)  # other columns or rows: not compared
    moved: list[Cell] = field(default_factory=list)
    untoleranced: list[Cell] = field(default_factory=list)
    structure: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)  # notebooks the run does not hold at all
    new: list[str] = field(default_factory=list)
    verdicts: list[Cell] = field(default_factory=list)
    flipped: list[Cell] = field(default_factory=list)
    # flipped verdicts that flipped between seeds too when the preset's tolerances were measured
    # (their ``holds`` tolerance is inf): seed-dependent at this preset, listed, not failed
    seed_flips: list[Cell] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    max_delta: dict[str, float] = field(default_factory=dict)
    compute: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    # a knob of a notebook in both folders at other values: "<notebook> <knob>: ref -> run"
    knobs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.flipped and not self.lost

    @property
    def strict_ok(self) -> bool:
        """:attr:`ok`, and nothing moved beyond its tolerance, changed without a measured
        tolerance, changed shape or text, or went missing."""
        return self.ok and not (self.moved or self.untoleranced or self.structure
                                or self.missing or self.knob_changes)

    @property
    def knob_changes(self) -> list[str]:
        """:attr:`knobs` other than the seeds, which tolerances are measured across."""
        return [k for k in self.knobs if k.split(" ")[1].rstrip(":") not in SEED_KNOBS]

    def text(self, limit: int = 25, strict: bool = False) -> str:
        """A human-readable summary: identical/within/moved tables, verdicts, settings; its last
        line judges by :attr:`strict_ok` under ``strict``."""
        lines = [f"advlens verify: {self.run} against {self.reference}"]
        lines += [f"  note: {note}" for note in self.notes]
        for key, (ref, run) in sorted(self.compute.items()):
            lines.append(f"  compute {key}: reference {ref} / run {run}")
        lines += [f"  KNOB {k}" + ("" if k in self.knob_changes else " (a seed: tolerances "
                                   "span seeds)") for k in self.knobs]
        beyond = len({c.table for c in self.moved})
        n = (len(self.identical) + len(self.within) + len(self.unmeasured)
             + len(self.relabelled) + beyond + len(self.reshaped))
        lines.append(f"  {n} tables compared: {len(self.identical)} identical, "
                     f"{len(self.within)} within tolerance (not identical), "
                     f"{len(self.unmeasured)} changed with no measured tolerance, "
                     f"{len(self.relabelled)} with text or flags changed, "
                     f"{beyond} with numbers beyond tolerance"
                     + (f", {len(self.reshaped)} with other columns or rows (not compared "
                        "cell by cell)" if self.reshaped else ""))
        for table, delta in sorted(self.max_delta.items()):
            lines.append(f"    {table}: largest move {delta:.3g}")
        for cell in sorted(self.moved, key=lambda c: -c.delta / max(c.tolerance or 1e-12,
                                                                     1e-12))[:limit]:
            lines.append(f"  MOVED {cell.table} row {cell.row} {cell.column}: {cell.reference} "
                         f"-> {cell.run} (|Δ| {cell.delta:.3g} > tolerance {cell.tolerance:.3g})")
        if len(self.moved) > limit:
            lines.append(f"  ... and {len(self.moved) - limit} more moved numbers")
        if self.untoleranced:
            lines.append(f"  {len(self.untoleranced)} numbers changed in columns without a "
                         "measured tolerance:")
            for cell in sorted(self.untoleranced, key=lambda c: -c.delta)[:limit]:
                lines.append(f"  UNMEASURED {cell.table} row {cell.row} {cell.column}: "
                             f"{cell.reference} -> {cell.run} (|Δ| {cell.delta:.3g})")
            if len(self.untoleranced) > limit:
                lines.append(f"  ... and {len(self.untoleranced) - limit} more")
        lines += [f"  CHANGED {s}" for s in self.structure[:limit]]
        if len(self.structure) > limit:
            lines.append(f"  ... and {len(self.structure) - limit} more changed cells")
        lines += [f"  missing in run: {m}" for m in self.missing]
        if self.absent:
            lines.append(f"  not in this run (not compared): {', '.join(self.absent)}")
        if self.new:
            lines.append(f"  only in run (no reference yet): {', '.join(self.new)}")
        kept = [c for c in self.verdicts if c not in self.flipped and c not in self.seed_flips]
        lines.append(f"  verdicts: {len(kept)} unchanged, {len(self.flipped)} flipped"
                     + (f", {len(self.seed_flips)} flipped as between seeds of this preset "
                        "(tolerated)" if self.seed_flips else ""))
        lines += [f"  FLIPPED {c.table}: {c.column} {_verdict(c.reference)} -> "
                  f"{_verdict(c.run)}" for c in self.flipped]
        lines += [f"  SEED-DEPENDENT {c.table}: {c.column} {_verdict(c.reference)} -> "
                  f"{_verdict(c.run)} (it changed between the seeds this preset's tolerances "
                  "were measured from)" for c in self.seed_flips]
        lines += [f"  NOT CHECKED {lost}" for lost in self.lost]
        if self.ok and strict and not self.strict_ok:
            lines.append("  FAIL (--strict): every verdict unchanged" + (
                " (but the seed-dependent ones)" if self.seed_flips else "") + ", but " + ", ".join(
                part for part, bad in (
                    ("numbers moved beyond their tolerance", self.moved),
                    ("numbers changed where no tolerance is measured", self.untoleranced),
                    ("tables changed shape or text", self.structure),
                    ("tables went missing", self.missing),
                    ("knobs other than the seeds changed", self.knob_changes)) if bad))
        elif self.ok:
            lines.append("  OK: every verdict unchanged" + (
                " but those that change between seeds at this preset" if self.seed_flips
                else ""))
        else:
            lines.append("  FAIL: " + ", ".join(
                part for part, bad in (("a verdict flipped", self.flipped),
                                       ("a verdict could not be checked", self.lost)) if bad))
        return "\n".join(lines)


def load_tolerances(path: Path | None = None) -> dict[str, Any]:
    """The tolerance table (default: :data:`TOLERANCE_FILE`): ``{preset: {"<notebook>/<table>.csv":
    {column: abs tol}}}``; a tolerance stored as ``"inf"`` (strict JSON has no infinity) is read
    as ``math.inf``. A ValueError names an entry that is not a number >= 0 (or ``"inf"``)."""
    path = TOLERANCE_FILE if path is None else path
    table = read_json(path) if path.exists() else {}
    if not isinstance(table, dict):
        raise ValueError(f"{path} must hold a JSON object {{preset: {{table: {{column: "
                         f"tolerance}}}}}}, not {type(table).__name__}; remeasure it with "
                         "python -m advlens verify --measure RUN_A RUN_B.")
    for preset, tables in table.items():
        if preset.startswith("_"):
            continue
        if not isinstance(tables, dict) or not all(isinstance(c, dict)
                                                   for c in tables.values()):
            raise ValueError(f"{path}: preset {preset!r} must map each table to {{column: "
                             "tolerance}; remeasure it with python -m advlens verify "
                             "--measure RUN_A RUN_B.")
        for name, columns in tables.items():
            for column, tol in columns.items():
                columns[column] = _tolerance(tol, f"{path}: {preset} {name} {column!r}")
    return table


def _tolerance(value: Any, where: str) -> float:
    """A stored tolerance as a number (``"inf"``: ``math.inf``); ValueError for anything else."""
    if value in ("inf", "Infinity"):
        return math.inf
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{where}: tolerance {value!r} is not a number >= 0; write an "
                         'absolute tolerance as a JSON number (or "inf"), or remeasure them '
                         "with python -m advlens verify --measure RUN_A RUN_B.")
    return float(value)


def _storable(tolerances: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    """``tolerances`` with ``math.inf`` written as ``"inf"`` (JSON has no infinity)."""
    return {name: {column: "inf" if math.isinf(tol) else tol for column, tol in columns.items()}
            for name, columns in tolerances.items()}


def _ignored(column: str) -> bool:
    return any(fnmatch.fnmatch(column, pattern) for pattern in IGNORED_COLUMNS)


def _verdict(holds: Any) -> str:
    """A ``holds`` cell as the report shows it: the findings tables store an untested verdict
    (None) as an empty cell, which printed as nothing."""
    return str(holds) if str(holds).strip() else "None (not testable here)"


def _read(path: Path) -> pd.DataFrame | None:
    """The table as text cells; None for an empty file (no header either)."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        return None


def _numbers(text: str) -> tuple[str, list[float]] | None:
    """``text`` as (skeleton with numbers replaced by #, the numbers), or None if it has none."""
    found = _NUMBER.findall(text)
    if not found:
        return None
    return _NUMBER.sub("#", text), [float("nan") if v == "null" else float(v.replace("\u2212", "-"))
                                    for v in found]


def cell_delta(a: str, b: str) -> float | None:
    """Largest absolute difference between the numbers in two CSV cells.

    Returns 0.0 for equal text, the difference for two numbers (or for two texts with the same
    wording around their numbers, e.g. ``"slope 0.04 [-0.03, 0.15]"``; ``inf`` and ``nan`` are
    numbers), ``inf`` when one side is NaN/empty or infinite and the other is not, and None when
    the wording differs.
    """
    if a == b:
        return 0.0
    missing = {"", "nan", "none"}
    if a.strip().lower() in missing and b.strip().lower() in missing:
        return 0.0  # "nan" and "NaN": one missing value, written two ways
    pa, pb = _numbers(a), _numbers(b)
    if pa is None or pb is None or pa[0] != pb[0] or len(pa[1]) != len(pb[1]):
        if (a.strip().lower() in missing) != (b.strip().lower() in missing):
            return math.inf
        return None
    return max(_moved(x, y) for x, y in zip(pa[1], pb[1], strict=True))


def _moved(x: float, y: float) -> float:
    """|x - y|: 0 for equal numbers (inf and inf, NaN and NaN), inf where one is NaN."""
    if x == y or (math.isnan(x) and math.isnan(y)):
        return 0.0
    return math.inf if math.isnan(x) or math.isnan(y) else abs(x - y)


def _is_findings(name: str, frame: pd.DataFrame) -> bool:
    return name.endswith("_findings.csv") and {"finding", "holds"} <= set(frame.columns)


def findings_key(column: str, finding: str, statistic: str | None = None) -> str:
    """The tolerance table's key of one cell of a findings table (``column@finding``), or of
    one statistic in its ``statistics`` JSON (``statistics.<name>@finding``)."""
    return f"{column}{'' if statistic is None else '.' + statistic}@{finding}"


def _statistics(text: str) -> dict[str, Any] | None:
    """A findings table's ``statistics`` cell as {name: value}; None where it is no JSON
    object."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _finding_deltas(column: str, finding: str, a: str, b: str
                    ) -> list[tuple[str, str, str, float | None]]:
    """The moves within one cell of a findings table: (tolerance key, reference text, run
    text, :func:`cell_delta`) per statistic of a ``statistics`` JSON, in the reference's order
    (a statistic in one of them only: one None for the cell, its wording changed), else one
    for the whole cell."""
    if column == "statistics":
        sa, sb = _statistics(a), _statistics(b)
        if sa is not None and sb is not None:
            out: list[tuple[str, str, str, float | None]] = []
            if set(sa) != set(sb):
                out.append((findings_key(column, finding), a, b, None))
            for key in (k for k in sa if k in sb):
                ta, tb = json.dumps(sa[key]), json.dumps(sb[key])
                out.append((findings_key(column, finding, key), ta, tb, cell_delta(ta, tb)))
            return out
    return [(findings_key(column, finding), a, b, cell_delta(a, b))]


def run_preset(folder: Path) -> str | None:
    """The preset every notebook under ``folder`` names in its provenance (None if none names
    one); refused where its notebooks ran at different presets (a ``--only 01 --preset smoke``
    run into figures/: the first record alone, 00's, said laptop, and smoke tables were judged
    against laptop ones with laptop tolerances)."""
    found: dict[str, set[str]] = {}
    for notebook, parameters in _parameters_by_notebook(folder).items():
        if preset := parameters.get("preset"):
            found.setdefault(str(preset), set()).add(notebook)
    if len(found) > 1:
        mixed = "; ".join(f"{p}: {', '.join(sorted(nbs))}" for p, nbs in sorted(found.items()))
        raise ValueError(f"{folder} holds notebooks run at different presets ({mixed}); "
                         "compare runs of one preset: rerun the others at that preset, or "
                         "give each preset's run its own --out folder.")
    return next(iter(found), None)


def _parameters_by_notebook(folder: Path) -> dict[str, dict[str, Any]]:
    """``{notebook folder: the knobs of its first provenance record that holds any}``."""
    found: dict[str, dict[str, Any]] = {}
    for record in sorted(folder.rglob("*.provenance.json")):
        if record.parent.name not in found:
            parameters = provenance.read_figure_record(record).get("parameters") or {}
            if parameters:
                found[record.parent.name] = parameters
    return found


def _compute_of(folder: Path) -> dict[str, Any]:
    """Each compute setting over every provenance record under ``folder``: its value where all
    agree, else its distinct values joined (the first record alone hid a notebook run on another
    CPU or thread count)."""
    values: dict[str, dict[str, Any]] = {}
    for record in sorted(folder.rglob("*.provenance.json")):
        for key, value in (provenance.read_figure_record(record).get("compute") or {}).items():
            values.setdefault(key, {})[json_text(value)] = value
    return {key: next(iter(found.values())) if len(found) == 1
            else ", ".join(str(found[k]) for k in sorted(found)) for key, found in values.items()}


# notebook 00's table of the zoo: which weights every model had (weights_sha256)
ZOO_TABLE = "00_data_and_zoo/zoo_models.csv"


def _zoo_weights(reference: Path, run: Path) -> list[str]:
    """A note where the run's zoo holds other weights than the reference's for some model of
    the same name (:data:`ZOO_TABLE`'s ``weights_sha256``): the same config trains bitwise
    other weights on another CPU, and every number resting on them moves; a reference
    without the column is named (its weights are not recorded)."""
    if not ((reference / ZOO_TABLE).is_file() and (run / ZOO_TABLE).is_file()):
        return []
    ref, new = _read(reference / ZOO_TABLE), _read(run / ZOO_TABLE)
    if ref is None or new is None:
        return []
    if "weights_sha256" not in ref or "weights_sha256" not in new:
        return [f"{ZOO_TABLE}: the {'reference' if 'weights_sha256' not in ref else 'run'} "
                "does not record its zoo's weights (weights_sha256), so whether the two zoos "
                "hold the same weights is not known"]
    a = ref.set_index("name")["weights_sha256"].astype(str)
    b = new.set_index("name")["weights_sha256"].astype(str)
    shared = a.index.intersection(b.index)
    other = [name for name in shared if a[name] != b[name]]
    if not other:
        return []
    # a model under another config hash (e.g. other epochs) was trained from another recipe,
    # not merely on another CPU: said apart, since no zoo cache makes those alike
    recipe: list[str] = []
    if "hash" in ref and "hash" in new:
        hash_a, hash_b = (f.set_index("name")["hash"].astype(str) for f in (ref, new))
        recipe = [n for n in other if hash_a[n] != hash_b[n]]
    same = [n for n in other if n not in recipe]

    def listed(names: list[str]) -> str:
        return f"{', '.join(names[:5])}{', ...' if len(names) > 5 else ''}"

    notes = []
    if recipe:
        notes.append(f"the zoo's weights differ for {len(recipe)} of {len(shared)} models "
                     f"because their configs differ ({listed(recipe)}; {ZOO_TABLE}: another "
                     "config hash, e.g. other epochs): every number resting on them moves, "
                     "beyond what the tolerances, measured on one zoo, cover")
    if same:
        notes.append(f"the zoo's weights differ for {len(same)} of {len(shared)} models ("
                     f"{listed(same)}; {ZOO_TABLE}): the same config trains other weights on "
                     "another CPU (see compute), and every number resting on them moves; copy "
                     "the reference's zoo cache (then run with --force) to compare like with "
                     "like")
    return notes


# knobs whose values a comparison across seeds is meant to differ in
SEED_KNOBS = frozenset({"seed", "zoo_seed"})


def _knob_differences(reference: Path, run: Path) -> list[str]:
    """The knobs a notebook in both folders ran at other values (its provenance's
    ``parameters``; ``out_dir`` aside): tables of other knobs are not the same experiment, so a
    number within tolerance says nothing."""
    ref, new = _parameters_by_notebook(reference), _parameters_by_notebook(run)
    found = []
    for notebook in sorted(set(ref) & set(new)):
        a, b = (json.loads(json_text(p)) for p in (ref[notebook], new[notebook]))
        for knob in sorted((set(a) | set(b)) - {"out_dir"}):
            if a.get(knob, "not recorded") != b.get(knob, "not recorded"):
                found.append(f"{notebook} {knob}: {a.get(knob, 'not recorded')!r} -> "
                             f"{b.get(knob, 'not recorded')!r}")
    return found


def _tables(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.glob("*/*.csv"))


def committed_reference(revision: str = "HEAD", into: str | Path | None = None) -> Path:
    """The ``figures/`` folder as committed at ``revision``, extracted (``git archive``) into
    ``into`` (default: a new temporary folder); returns the extracted ``figures`` folder."""
    import subprocess
    import tarfile
    import tempfile

    root = repo_root()
    target = Path(into) if into is not None else Path(tempfile.mkdtemp(prefix="advlens-ref-"))
    try:
        archive = subprocess.run(["git", "archive", revision, "figures"], cwd=root, check=True,
                                 capture_output=True, timeout=120).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise FileNotFoundError(f"cannot read figures/ at git revision {revision!r} ({err}); "
                                "give --reference DIR instead.") from err
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        extract_tar(tar, target)  # this repository's own archive
    return target / "figures"


def verify(run: str | Path, reference: str | Path | None = None, *,
           tolerances: dict[str, Any] | None = None, preset: str | None = None) -> Report:
    """Compare every result table under ``run`` with the one of the same name in ``reference``.

    Parameters
    ----------
    run, reference: folders holding ``<notebook>/<table>.csv``. ``reference`` defaults to
        ``figures/`` — as committed (``git:HEAD``) when ``run`` is ``figures/`` itself (after
        ``make reproduce``); ``git:REV`` reads another revision's.
    tolerances: the tolerance table (default: :data:`TOLERANCE_FILE`).
    preset: which preset's tolerances apply (default: the one in the run's provenance).

    Returns
    -------
    A :class:`Report`; ``report.ok`` is False when a finding's verdict changed (not one
    its preset's tolerances measured as seed-dependent).
    """
    run = Path(run)
    if reference is None:
        same = run.resolve() == figures_dir().resolve()
        reference = "git:HEAD" if same else figures_dir()
    if str(reference).startswith("git:"):
        import tempfile

        # extracted for this comparison only (a folder per call used to stay behind in /tmp)
        with tempfile.TemporaryDirectory(prefix="advlens-ref-") as into:
            report = verify(run, committed_reference(str(reference)[4:] or "HEAD", into),
                            tolerances=tolerances, preset=preset)
        return dataclasses.replace(report, reference=str(reference))
    reference = Path(reference)
    for name, folder in (("run", run), ("reference", reference)):
        if not folder.is_dir():
            what = "is a file, not a folder" if folder.exists() else "does not exist"
            raise FileNotFoundError(f"{name} folder {folder} {what}; give the --out "
                                    "folder of a `python -m advlens run`.")
    incomplete = {name: provenance.incomplete_notebooks(folder)
                  for name, folder in (("run", run), ("reference", reference))}
    if not _tables(run):
        unfinished = "".join(f"; {nb}'s run.json says {status}"
                             for nb, status in incomplete["run"].items())
        raise FileNotFoundError(f"{run} holds no <notebook>/<table>.csv; is it a run "
                                f"folder?{unfinished}")
    if not _tables(reference):  # else every table is "new" and a flipped verdict passes
        raise FileNotFoundError(f"the reference {reference} holds no <notebook>/<table>.csv; "
                                "give the folder above the notebook folders (figures/ or a "
                                "run's --out), or git:REV.")
    ref_preset, ran = run_preset(reference), run_preset(run)
    if ref_preset and ran and ref_preset != ran:
        raise ValueError(f"run {run} used preset {ran!r} but the reference {reference} "
                         f"used {ref_preset!r}; compare runs of one preset (--reference DIR).")
    if preset and ran and preset != ran:  # another preset's tolerances, silently
        raise ValueError(f"--preset {preset} but the run {run} used preset {ran!r}; drop "
                         "--preset (the run's own preset's tolerances apply).")
    which = preset or ran or ref_preset or "laptop"
    table = (tolerances if tolerances is not None else load_tolerances()).get(which)
    report = Report(reference=reference, run=run)
    # an unfinished notebook's tables are partial or left over from an earlier run: its
    # verdicts cannot be checked, whatever the tables say
    for name, folder in (("run", run), ("reference", reference)):
        report.lost += [f"{nb}: the {name}'s run.json says {status!r}, not 'completed': its "
                        "tables are partial or stale; rerun it (python -m advlens run --only "
                        f"{nb[:2]} --preset PRESET --out {folder})"
                        for nb, status in incomplete[name].items()]
    if table is None:
        report.notes.append(f"no tolerances measured for preset {which!r}: every changed number "
                            "counts as untoleranced (measure them with --measure RUN_A RUN_B)")
        table = {}
    else:
        report.notes.append(f"tolerances of preset {which!r}"
                            + ("" if ran else " (the run records no preset)"))
    ref_compute, run_compute = _compute_of(reference), _compute_of(run)
    for key in ("cpu_capability", "threads", "deterministic_algorithms", "gpus"):
        report.compute[key] = (ref_compute.get(key, "not recorded"),
                               run_compute.get(key, "not recorded"))
    report.knobs = _knob_differences(reference, run)
    report.notes += _zoo_weights(reference, run)
    run_tables = set(_tables(run))
    report.new = sorted(run_tables - set(_tables(reference)))
    # a run of some notebooks (--only 01, a sweep's grid) is compared on those: a notebook
    # with no folder in the run is listed, not failed (every partial run failed); a notebook
    # folder whose tables are gone still fails, and so does a run of none of the notebooks
    held = {p.name for p in run.iterdir() if p.is_dir()} if run.is_dir() else set()
    reference_notebooks = {name.split("/")[0] for name in _tables(reference)}
    if not held & reference_notebooks:
        raise FileNotFoundError(f"the run {run} holds none of the reference's notebooks "
                                f"({', '.join(sorted(reference_notebooks))}): nothing to "
                                "compare; give the folder above the notebook folders (a run's "
                                "--out).")
    for name in _tables(reference):
        ref = _read(reference / name)
        if name.split("/")[0] not in held:
            if name.split("/")[0] not in report.absent:
                report.absent.append(name.split("/")[0])
            continue
        if name not in run_tables:
            report.missing.append(name)
            if ref is not None and _is_findings(name, ref):
                report.lost.append(f"{name}: the findings table is missing in the run")
            continue
        new = _read(run / name)
        if ref is None or new is None:
            report.structure.append(f"{name}: empty file in the "
                                    f"{'reference' if ref is None else 'run'}")
            if ref is not None and _is_findings(name, ref):
                report.lost.append(f"{name}: the findings table is empty in the run")
            continue
        _compare(name, ref, new, table.get(name), report)
    return report


def _compare(name: str, ref: pd.DataFrame, new: pd.DataFrame,
             tolerance: dict[str, float] | None, report: Report) -> None:
    findings = _is_findings(name, ref)
    if findings and not {"finding", "holds"} <= set(new.columns):
        report.lost.append(f"{name}: the run's table has no 'finding' and 'holds' columns "
                           f"(it has {list(new.columns)[:6]})")
    elif findings:
        # verdicts are matched by the finding's name, whatever else changed in the table
        twice = sorted(set(new["finding"][new["finding"].duplicated()]))
        if twice:
            report.lost.append(f"{name}: the run names findings {twice} more than once")
        verdict = _verdicts_by_name(new)  # (a finding named twice: lost, above)
        for row, (finding, holds) in enumerate(zip(ref["finding"], ref["holds"], strict=True)):
            if finding in twice:
                continue
            if finding in verdict:
                # the finding's own verdict tolerance, else its table's: > 0 (inf) where a
                # verdict changed between the seeds the tolerances were measured from
                seeds = tolerance.get(findings_key("holds", finding),
                                      tolerance.get("holds", 0.0)) if tolerance else 0.0
                cell = Cell(name, row, f"{finding} holds", holds, verdict[finding], 0.0, seeds)
                report.verdicts.append(cell)
                if holds != verdict[finding]:
                    (report.seed_flips if seeds > 0 else report.flipped).append(cell)
            else:
                report.structure.append(f"{name}: finding {finding!r} missing in the run")
                report.lost.append(f"{name}: finding {finding!r} missing in the run")
    if list(ref.columns) != list(new.columns) or len(ref) != len(new):
        report.structure.append(f"{name}: shape {ref.shape} {list(ref.columns)[:6]} in the "
                                f"reference, {new.shape} {list(new.columns)[:6]} in the run")
        report.reshaped.append(name)
        return
    if (findings and list(ref["finding"]) != list(new["finding"])
            and sorted(ref["finding"]) == sorted(new["finding"])
            and not ref["finding"].duplicated().any()):
        # the same findings in another order: each compared with its own (by position, two
        # swapped findings read as both moved)
        report.structure.append(f"{name}: the findings are in another order")
        new = new.set_index("finding", drop=False).loc[list(ref["finding"])].reset_index(
            drop=True)
    largest, exact = 0.0, True
    before, before_untoleranced = len(report.moved), len(report.untoleranced)
    before_text = len(report.structure)
    tolerance = tolerance or {}
    for column in ref.columns:
        if _ignored(column) or (findings and column == "holds"):  # verdicts: compared above
            continue
        for row, (a, b) in enumerate(zip(ref[column], new[column], strict=True)):
            if a == b:
                continue
            if findings:  # each finding's own, each statistic's own (the column's as fallback)
                parts = _finding_deltas(column, ref["finding"][row], a, b)
            else:
                parts = [(column, a, b, cell_delta(a, b))]
            relabelled = False
            for key, va, vb, delta in parts:
                if delta == 0.0:  # the same number written otherwise ("0.5", "0.50")
                    continue
                exact = False
                if delta is None:  # once per cell; its numbers are still checked
                    if not relabelled:
                        report.structure.append(f"{name} row {row} {column}: {a!r} -> {b!r} "
                                                "(text or flag changed)")
                    relabelled = True
                    continue
                largest = max(largest, delta)
                tol = tolerance.get(key, tolerance.get(column))
                where = column if key == column else key.replace(f"@{ref['finding'][row]}", "")
                cell = Cell(name, row, where, va, vb, delta, tol)
                if tol is None:
                    report.untoleranced.append(cell)
                elif delta > tol * (1 + 1e-9) + 1e-12:  # not a float-rounding hair above it
                    report.moved.append(cell)
    if not exact:
        report.max_delta[name] = largest
    if exact:
        report.identical.append(name)
    elif len(report.moved) == before:
        if len(report.structure) > before_text:  # a label changed: not "within tolerance"
            report.relabelled.append(name)
        elif len(report.untoleranced) > before_untoleranced:
            report.unmeasured.append(name)
        else:
            report.within.append(name)


def measure_tolerances(runs: Sequence[str | Path]) -> dict[str, dict[str, float]]:
    """Seed-to-seed variation: per table and column, the largest |Δ| between any two runs.

    Parameters
    ----------
    runs: two or more run folders of one preset that differ in the ``seed`` (and ``zoo_seed``)
        knobs.

    Returns
    -------
    ``{"<notebook>/<table>.csv": {column: largest absolute difference}}`` over every pair of
    runs holding the table with the same shape (text cells compared through their numbers;
    ``inf`` where a number became NaN or empty between two seeds).
    """
    folders = [Path(r) for r in runs]
    if len(folders) < 2:
        raise ValueError("measure tolerances from at least two runs that differ in their seed.")
    # a mistyped folder would otherwise measure nothing and overwrite the stored tolerances
    for folder in folders:
        if not folder.is_dir() or not _tables(folder):
            raise FileNotFoundError(f"{folder} is not a run folder (no <notebook>/<table>.csv); "
                                    "give the --out folders of `python -m advlens run` at two "
                                    "or more seeds.")
    if len({f.resolve() for f in folders}) < len(folders):
        raise ValueError(f"the same run folder is given twice in {[str(f) for f in folders]}; "
                         "give runs at different seeds.")
    # verify refuses both; measured from them, a tolerance would span presets or stale tables
    presets = {str(f): run_preset(f) for f in folders}
    if len({p for p in presets.values() if p}) > 1:
        raise ValueError(f"the runs used different presets ({presets}); measure tolerances from "
                         "runs of one preset.")
    for folder in folders:
        if incomplete := provenance.incomplete_notebooks(folder):
            raise ValueError(f"in {folder} notebooks did not complete ({incomplete}): their "
                             "tables are partial or stale; rerun them (python -m advlens run "
                             "--only NN --out RUN) or leave that run out.")
    # two runs of one notebook with the same knobs (the seed forgotten) measure 0 everywhere:
    # stored, every later rerun on another machine failed --strict
    knobs = [_parameters_by_notebook(f) for f in folders]
    for (i, a), (j, b) in itertools.combinations(enumerate(knobs), 2):
        same = sorted(nb for nb in set(a) & set(b) if a[nb] and a[nb] == b[nb])
        if same:
            raise ValueError(f"{folders[i]} and {folders[j]} ran {', '.join(same)} with the same "
                             "knobs (the same seeds), so their differences are not seed-to-seed; "
                             "rerun one with another seed (python -m advlens run -p seed N ...).")
    out: dict[str, dict[str, float]] = {}
    for name in sorted(set().union(*(set(_tables(f)) for f in folders))):
        frames = [frame for f in folders if (f / name).exists()
                  if (frame := _read(f / name)) is not None]
        pairs = [(fa, fb) for fa, fb in itertools.combinations(frames, 2)
                 if list(fa.columns) == list(fb.columns) and len(fa) == len(fb)]
        if not pairs:  # in one run only, or its shape differs between runs
            continue
        columns: dict[str, float] = {}
        # each pair by its own columns: with three runs or more, two pairs may hold the table
        # with different columns (a column only some seeds have)
        for column in dict.fromkeys(c for fa, _ in pairs for c in fa.columns):
            if _ignored(column):
                continue
            spread = 0.0
            per_finding: dict[str, float] = {}
            verdicts = column == "holds" and _is_findings(name, pairs[0][0])
            for fa, fb in pairs:
                if column not in fa.columns:
                    continue
                if verdicts:  # a verdict is no number: any change between seeds is inf
                    # matched by the finding's name, as verify matches them (by position, a
                    # reordered table measured a flipped verdict as no move)
                    va, vb = _verdicts_by_name(fa), _verdicts_by_name(fb)
                    changed = [(finding, math.inf if holds != vb[finding] else 0.0)
                               for finding, holds in va.items() if finding in vb]
                    spread = max([spread, *(d for _, d in changed)])
                    for finding, delta in changed:
                        key = findings_key(column, finding)
                        per_finding[key] = max(per_finding.get(key, 0.0), delta)
                    continue
                deltas = [cell_delta(a, b) for a, b in zip(fa[column], fb[column], strict=True)]
                spread = max([spread, *(d for d in deltas if d is not None)])
                if _is_findings(name, fa) and column not in ("finding", "holds"):
                    for finding, other, a, b in zip(fa["finding"], fb["finding"], fa[column],
                                                    fb[column], strict=True):
                        if finding != other:  # rows in another order: not this finding's move
                            continue
                        for key, _, _, delta in _finding_deltas(column, finding, a, b):
                            if delta is not None:
                                per_finding[key] = max(per_finding.get(key, 0.0), delta)
            # inf: between seeds a number here can also become NaN (e.g. no successful example)
            columns[column] = _round_up(spread)
            columns.update({key: _round_up(value) for key, value in per_finding.items()})
        out[name] = columns
    return out


def _verdicts_by_name(frame: pd.DataFrame) -> dict[str, Any]:
    """``{finding: holds}`` of a findings table, a finding named twice left out (which verdict
    is its own cannot be told)."""
    twice = set(frame["finding"][frame["finding"].duplicated()])
    return {finding: holds for finding, holds in zip(frame["finding"], frame["holds"],
                                                       strict=True) if finding not in twice}


def keep_larger(stored: Mapping[str, Mapping[str, float]],
                measured: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """The stored tolerances, each raised to the measured one where that is larger.

    Parameters
    ----------
    stored: one preset's stored tolerances, ``{"<notebook>/<table>.csv": {column: tol}}``.
    measured: :func:`measure_tolerances`' result.

    Returns
    -------
    Every table and column of either, with the larger of the two values: a stored value the
    runs did not measure (a table in one run only, or of another shape) stays as it was. A key
    the stored table lacks is added as measured: a finding's own statistic
    (:func:`findings_key`), measured the first time, then replaces its column's tolerance,
    the largest move of any quantity in that column, for that statistic — lower, where the
    column's moved more.
    """
    merged = {name: dict(columns) for name, columns in stored.items()}
    for name, columns in measured.items():
        table = merged.setdefault(name, {})
        for column, value in columns.items():
            table[column] = max(value, float(table.get(column, 0.0)))
    return merged


def _round_up(value: float, digits: int = 3) -> float:
    """``value`` rounded *up* to ``digits`` significant digits (a tolerance must cover it)."""
    if value == 0 or math.isinf(value):
        return value
    scale = 10.0 ** (math.floor(math.log10(value)) - digits + 1)
    return float(f"{math.ceil(value / scale - 1e-9) * scale:.{digits}g}")


def _tolerance_lock() -> Path:
    """The lock file of :data:`TOLERANCE_FILE`'s updates (beside it, in the package, it would be
    a stray file there)."""
    return temp_lock_path("tolerances", TOLERANCE_FILE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``verify`` subcommand's arguments."""
    parser.add_argument("run", nargs="?", default=None,
                        help="run folder (the --out of `advlens run`; default: figures/)")
    parser.add_argument("--reference", default=None,
                        help="reference folder, or git:REV for figures/ as committed at REV "
                             "(default: figures/; git:HEAD when the run is figures/ itself)")
    parser.add_argument("--preset", default=None, choices=PRESET_NAMES,
                        help="whose tolerances (default: the run's)")
    parser.add_argument("--strict", action="store_true",
                        help="also fail when a number moved beyond its tolerance or changed "
                             "where no tolerance is measured, a table changed shape, text "
                             "or went missing, or a notebook ran at other knobs than the "
                             "reference's (the seeds aside)")
    parser.add_argument("--measure", nargs="+", metavar="RUN", default=None,
                        help="measure seed-to-seed tolerances from these runs and store them "
                             "(replacing those of the notebooks the runs hold)")
    parser.add_argument("--keep-larger", action="store_true",
                        help="with --measure: keep the stored tolerances, each raised to the "
                             "measured one where that is larger (keeps what earlier runs, e.g. "
                             "on other machines, measured)")


def command(args: argparse.Namespace) -> int:
    """Run ``verify`` (or ``--measure``); exit status 1 when a verdict flipped or could not be
    checked, 2 under ``--strict`` when anything else failed (:attr:`Report.strict_ok`)."""
    if args.keep_larger and not args.measure:
        raise ValueError("--keep-larger applies to --measure RUN_A RUN_B; add --measure.")
    if args.measure:
        ran = run_preset(Path(args.measure[0]))
        if args.preset and ran and args.preset != ran:
            raise ValueError(f"--preset {args.preset} but the runs used preset {ran!r}; drop "
                             "--preset or give runs of that preset.")
        preset = args.preset or ran or "laptop"
        load_tolerances()  # a damaged table fails before anything is measured
        measured = measure_tolerances(args.measure)
        # the runs replace the tolerances of the notebooks at least two of them hold; a run of
        # --only 01 keeps the other notebooks' (they were all deleted), and so does a notebook
        # only one run holds (nothing measures it: its stored tables were dropped for nothing)
        held = Counter(nb for run in args.measure
                       for nb in {name.split("/")[0] for name in _tables(Path(run))})
        notebooks = sorted(nb for nb, runs in held.items() if runs >= 2)
        alone = sorted(nb for nb, runs in held.items() if runs < 2)
        if not notebooks:
            raise ValueError(f"no notebook is held by two of the runs ({dict(held)}); measure "
                             "from runs of the same notebooks at different seeds.")
        # read again under a lock: a measure of other notebooks' runs at the same time (one
        # per notebook, side by side) stored tables that the table read before measuring lacked
        with file_lock(_tolerance_lock()):
            table = load_tolerances()
            stored = table.get(preset, {})
            kept = {name: columns for name, columns in stored.items()
                    if name.split("/")[0] not in notebooks}
            if args.keep_larger:
                measured = keep_larger(stored, measured)  # the stored tables of these too
            table[preset] = dict(sorted({**kept, **measured}.items()))
            source = preset if not kept else "_".join([preset, *(n[:2] for n in notebooks)])
            runs = [str(r) for r in args.measure]
            record = table.setdefault("_measured_from", {})
            # kept values came from the earlier runs: their record stays beside the new one
            record[source] = ([*record.get(source, []), *runs, "merged per column with the "
                               "stored tolerance as the larger (--keep-larger)"]
                              if args.keep_larger else runs)
            atomic_write_json(TOLERANCE_FILE, {key: value if key.startswith("_")
                                               else _storable(value)
                                               for key, value in table.items()})
        print(f"tolerances for preset {preset!r} of notebooks {', '.join(notebooks)} from "
              f"{len(args.measure)} runs"
              + (", each the larger of the stored and the measured" if args.keep_larger else "")
              + f" -> {TOLERANCE_FILE}"
              + (f" ({len(kept)} tables of other notebooks kept)" if kept else "")
              + (f"; {', '.join(alone)} in one run only: not measured, kept" if alone else ""))
        return 0
    report = verify(args.run or figures_dir(), args.reference, preset=args.preset)
    print(report.text(strict=args.strict))
    if not report.ok:
        return 1
    return 2 if args.strict and not report.strict_ok else 0
