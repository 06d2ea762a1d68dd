"""Profile values in the forms Slurm takes (issue 22): `max_time = "10 days"` or `memory = "64 GB"` passed
`site validate` with exit 0 and silently switched the walltime and memory checks off. Now every time and memory
value is checked where it is read, and the error names the file, the key, the value and the accepted forms."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from relion_qsub import profile
from relion_qsub.errors import ProfileError
from relion_qsub.profile import forms

ROOT = Path(__file__).resolve().parent.parent
QSUB = str(ROOT / "bin" / "relion-qsub")
TESTBED = (ROOT / "relion_qsub" / "profiles" / "testbed.toml").read_text()


def _bad(tmp_path: Path, old: str, new: str) -> Path:
    assert old in TESTBED
    path = tmp_path / "bad.toml"
    path.write_text(TESTBED.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "key", "form"),
    [
        ('[partitions.gpu]\ngpu_types = ["p100"]\ngpus_per_node = 4\nmax_time = "10-00:00:00"',
         '[partitions.gpu]\ngpu_types = ["p100"]\ngpus_per_node = 4\nmax_time = "10 days"',
         "partitions.gpu.max_time", forms.TIME),
        ('nodes = 4\ncpus = 16\nmemory = "64000"', 'nodes = 4\ncpus = 16\nmemory = "64 GB"',
         "partitions.gpu.memory", forms.MEMORY),
        ('option = "time"\ndefault = "0:10:00"', 'option = "time"\ndefault = "10 minutes"',
         "fields[1].default", forms.TIME),
        ('option = "mem-per-cpu"\ndefault = "1000"', 'option = "mem-per-cpu"\ndefault = "1 GB"',
         "fields[2].default", forms.MEMORY),
        ('walltime = "0:30:00"\nmemory = "2000"\ngres = "gpu:p100:4"',
         'walltime = "30min"\nmemory = "2000"\ngres = "gpu:p100:4"',
         "recipes.motioncor2.rows.p100.walltime", forms.TIME),
        ('tiny = { walltime = "0:20:00" }', 'tiny = { walltime = "20min" }',
         "job_templates.InitialModel.sizes.tiny.walltime", forms.TIME),
    ],
)  # fmt: skip
def test_a_value_not_in_slurms_form_is_refused(tmp_path: Path, old: str, new: str, key: str, form: str) -> None:
    path = _bad(tmp_path, old, new)
    bad_value = next(w for w in new.split('"')[1::2] if w not in old)
    expected = f"{path}: {key}: expected {form}, got {bad_value!r}"
    with pytest.raises(ProfileError) as caught:
        profile.load(str(path), {"RELION_QSUB_NO_CACHE": "1"}, full=True).profile  # noqa: B018
    assert str(caught.value) == expected
    done = subprocess.run([QSUB, "site", "validate", "--site", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 78 and expected in done.stderr, done.stderr


def test_the_submit_path_refuses_the_profile_instead_of_skipping_the_check(tmp_path: Path) -> None:
    """With "10 days" the max_time rule had nothing to compare: a 14-day walltime went to sbatch."""
    path = _bad(tmp_path, 'max_time = "10-00:00:00"', 'max_time = "10 days"')
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --time=14-00:00:00\nhostname\n")
    done = subprocess.run([QSUB, "check", "--site", str(path), str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 78 and "partitions.gpu.max_time: expected a Slurm time" in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("form", "good", "bad"),
    [
        ("time", ["600", "30:00", "8:00:00", "2-00", "2-00:00", "10-00:00:00", "UNLIMITED", "infinite"],
         ["10 days", "8h", "1:2:3:4", "-1", "2-", "1.5"]),
        ("memory", ["64000", "4200m", "240g", "240G", "1t", "0"], ["64 GB", "4.2g", "4gb", "g", "-1"]),
    ],
)  # fmt: skip
def test_forms_are_slurms(form: str, good: list[str], bad: list[str]) -> None:
    assert all(forms.valid(form, v) for v in good) and not any(forms.valid(form, v) for v in bad)
