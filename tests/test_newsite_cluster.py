"""A new site in an hour (issue 22): `pip install` of the wheel, `site init` against the live cluster, `site validate
--live`, `module install` from the installed package, `module load`, and a real Class3D and Refine3D through RELION's
own submit path (relion_pipeliner fills the generated template and runs relion-qsub) with the Running-tab values
`recommend` gives: no TOML written by hand, no checkout on the way.

The particles are the demo's (demo/synthetic_map.py, relion_project); the GUI boxes hold what `recommend Class3D` and
`recommend Refine3D` print for the CPU node type, except a short Walltime. The wall time of each step is printed
(pytest -s) for the record.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest

from tests.slurmtools import job_env, wait_for_job

pytestmark = [pytest.mark.slurm, pytest.mark.relion]

ROOT = Path(__file__).resolve().parent.parent
LMOD_INIT = Path("/usr/share/lmod/lmod/init/bash")


def _run(argv: list[str], cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, env=job_env(**env), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{argv}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _pip_install(tmp: Path) -> Path:
    """The wheel, built from a copy of the tree, in a fresh venv: its bin/."""
    src = tmp / "src"
    shutil.copytree(
        ROOT, src, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "tests", "out")
    )
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp / "dist"), str(src)], tmp)
    (wheel,) = (tmp / "dist").glob("relion_qsub-*.whl")
    venv.create(tmp / "venv", with_pip=True)
    _run([str(tmp / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], tmp)
    return tmp / "venv" / "bin"


def _box_options(advice: dict[str, object], mpi: int, threads: int) -> list[str]:
    """The Running tab as RELION's pipeliner takes it, from one `recommend --json` row (walltime kept short)."""
    running = advice["running"]
    assert isinstance(running, dict)
    return [
        f"nr_mpi == {mpi}",
        f"nr_threads == {threads}",
        "do_queue == Yes",
        f"queuename == {running['Queue name:']}",
        "qsub_extra1 == 0:10:00",
        f"qsub_extra2 == {running['Memory Per Thread:']}",
        f"qsub_extra3 == {running['Gres:']}",
        f"qsub_extra4 == {running.get('SBATCH Directives:', '')}",
    ]


def _cpu_advice(bin_dir: Path, project: Path, site: Path, job: str) -> dict[str, object]:
    shown = _run([str(bin_dir / "relion-qsub"), "recommend", job, "--site", str(site), "--json"], project)
    advice = [a for a in json.loads(shown.stdout) if a["tabs"].get("Compute", {}).get("Use GPU acceleration?") == "no"]
    assert len(advice) == 1, shown.stdout
    return advice[0]  # type: ignore[no-any-return]


def _relion(project: Path, moduledir: Path, job: str, options: list[str], jobdir: str) -> str:
    """Add and run one job the way the GUI's Run! does, in a login shell after `module load relion-qsub`."""
    script = f"""set -e
type module >/dev/null 2>&1 || source {LMOD_INIT}
module use {moduledir}
module load relion-qsub
relion_pipeliner --addJob {job} --addJobOptions "$OPTIONS" > /dev/null
timeout 280 relion_pipeliner --RunJobs {jobdir} --sec_wait_after 0 2>&1 | cat
"""
    keep = {k: v for k, v in os.environ.items() if k == "SLURM_CONF" or k.startswith("OMPI_MCA_")}
    env = ["env", "-i", f"HOME={project}", "PATH=/usr/bin:/bin", "LANG=C.UTF-8", *(f"{k}={v}" for k, v in keep.items())]
    done = subprocess.run(
        [*env, f"OPTIONS={';'.join(options)}", "bash", "-l", "-c", script],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_pip_install_to_class3d_and_refine3d_with_no_toml_written_by_hand(tmp_path: Path) -> None:
    for tool in ("relion_pipeliner", "relion_project", "relion_refine_mpi"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `make deps` (Debian package relion)")
    if not LMOD_INIT.is_file():
        pytest.fail("Lmod is missing: run `make deps`")
    clock, took = time.monotonic(), {}
    bin_dir = _pip_install(tmp_path)
    took["pip install"] = time.monotonic() - clock
    qsub = str(bin_dir / "relion-qsub")
    site, apps, moduledir = tmp_path / "newsite.toml", tmp_path / "apps", tmp_path / "modulefiles"
    for step, argv in (
        ("site init", [qsub, "site", "init", "--name", "newsite", "-o", str(site)]),
        ("site validate --live", [qsub, "site", "validate", "--site", str(site), "--live"]),
        (
            "module install",
            [qsub, "module", "install", "--site", str(site), "--prefix", str(apps), "--moduledir", str(moduledir)],
        ),
    ):
        start = time.monotonic()
        _run(argv, tmp_path, timeout=600)
        took[step] = time.monotonic() - start
    took["total"] = time.monotonic() - clock
    print("new site, wall time (s):", json.dumps({k: round(v, 1) for k, v in took.items()}))

    project = tmp_path / "project"
    project.mkdir()
    _run([sys.executable, str(ROOT / "demo" / "synthetic_map.py"), "ref.mrc", "--size", "32", "--angpix", "3"], project)
    _run(["relion_project", "--i", "ref.mrc", "--o", "particles", "--nr_uniform", "200", "--angpix", "3", "--add_noise",
          "--white_noise", "0.3"], project)  # fmt: skip
    (project / "default_pipeline.star").write_text("data_pipeline_general\n\n_rlnPipeLineJobCounter 1\n")
    common = [
        "fn_img == particles.star", "fn_ref == ref.mrc", "ref_correct_greyscale == Yes", "ini_high == 30",
        "do_ctf_correction == No", "particle_diameter == 80", "offset_range == 3", "offset_step == 2", "nr_pool == 10",
        "use_gpu == No",
    ]  # fmt: skip
    class3d = _cpu_advice(bin_dir, project, site, "Class3D")
    options = [*common, "nr_classes == 2", "nr_iter == 2", "tau_fudge == 4", "sampling == 15 degrees"]
    out = _relion(project, moduledir, "Class3D", options + _box_options(class3d, 3, 2), "Class3D/job001/")
    refine3d = _cpu_advice(bin_dir, project, site, "Refine3D")
    assert refine3d["mpi"] % 2 == 1  # type: ignore[operator]
    options = [*common, "sampling == 15 degrees", "auto_local_sampling == 7.5 degrees"]
    out += _relion(project, moduledir, "Refine3D", options + _box_options(refine3d, 3, 2), "Refine3D/job002/")
    for jobdir, product in (("Class3D/job001", "run_it002_class002.mrc"), ("Refine3D/job002", "run_class001.mrc")):
        job = project / jobdir
        entry = json.loads((job / "relion-qsub.jsonl").read_text().splitlines()[-1])
        assert entry["submitted"] is True, (entry, out)
        info = wait_for_job(entry["job_id"], timeout=120)
        assert info["JobState"] == "COMPLETED", (info, (job / "run.err").read_text())
        assert (job / "RELION_JOB_EXIT_SUCCESS").exists() and (job / product).is_file(), out
        submitted = (job / "run_submit.script").read_text()
        assert "RELION queue template for site newsite" in submitted  # the generated template, via the module
        assert f"{apps.absolute()}/relion-qsub/templates/" in (job / "job.star").read_text()  # version-free path
