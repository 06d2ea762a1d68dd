"""Other sites' RELION templates (tests/corpus/sites/), filled as RELION fills them, for the testbed profile.

Each :class:`Case` is one Running-tab submission: a template from ``tests/corpus/sites/templates/`` (origins in
``tests/corpus/sites/MANIFEST.md``), the labels its site gives the extra boxes (``RELION_QSUB_EXTRAn``), the box
values and the job's commands. ``tests/test_sites.py`` judges each with ``relion-qsub check`` (golden files in
``tests/golden/sites/``) and sends every accepted one to ``sbatch --test-only`` on the testbed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relion_qsub.relion.gui import Boxes
from tests.corpus.generate import TEMPLATES as CORPUS_TEMPLATES
from tests.corpus.generate import Entry
from tests.relionfill import relion_command

TEMPLATES = Path(__file__).resolve().parent / "corpus" / "sites" / "templates"
MAIN = "main:"  # a template of the main corpus (tests/corpus/templates/)


SITES = "../sites/templates/"  # Entry.template is relative to tests/corpus/templates/


@dataclass(frozen=True)
class Case(Entry):
    labels: dict[int, str] = field(default_factory=dict)  # the site's RELION_QSUB_EXTRAn labels
    # sbatch --test-only cannot judge it on the testbed (a site plugin's option): why
    no_testbed: str = ""

    def template_text(self) -> str:
        return (CORPUS_TEMPLATES / self.template).read_text()

    def boxes(self) -> Boxes:
        return Boxes(self.template_text().split("\n"), self.labels)


def case(name: str, template: str, purpose: str, jobdir: str, commands: tuple[str, ...], **values: Any) -> Case:
    """A case on one of tests/corpus/sites/templates/ (origins: MANIFEST.md), or of the main corpus (MAIN + name)."""
    path = template[len(MAIN) :] if template.startswith(MAIN) else SITES + template
    values.setdefault("queue", "norm")  # the testbed's default partition, as a site's module would set it
    return Case(name, "tests/corpus/sites/MANIFEST.md", purpose, jobdir, commands, template=path, **values)


def class2d(jobdir: str, mpi: int, threads: int, gpu: bool = False, scratch: str = "") -> str:
    io = f" --scratch_dir {scratch}" if scratch else ""
    args = (
        f"--o {jobdir}run --i Extract/job007/particles.star --dont_combine_weights_via_disc{io} --pool 3 --pad 2 "
        f" --ctf  --iter 25 --tau2_fudge 2 --particle_diameter 200 --K 50 --flatten_solvent  --zero_mask "
        f" --oversampling 1 --psi_step 12 --offset_range 5 --offset_step 2 --norm --scale  --j {threads}"
        + (' --gpu "" ' if gpu else " ")
    )
    return relion_command("relion_refine", args, jobdir=jobdir, mpi=mpi)


def refine3d(jobdir: str, mpi: int, threads: int, extra: str = "") -> str:
    args = (
        f"--o {jobdir}run --auto_refine --split_random_halves --i Select/job010/particles.star "
        f"--ref InitialModel/job009/initial_model.mrc --ini_high 50 --dont_combine_weights_via_disc --pool 3 "
        f"--pad 2  --ctf --particle_diameter 200 --flatten_solvent --zero_mask --oversampling 1 --healpix_order 2 "
        f"--auto_local_healpix_order 4 --offset_range 5 --offset_step 2 --sym C1 --low_resol_join_halves 40 "
        f"--norm --scale  --j {threads}{extra} "
    )
    return relion_command("relion_refine", args, jobdir=jobdir, mpi=mpi)


def ctffind(jobdir: str, mpi: int) -> str:
    args = (
        f"--i MotionCorr/job002/corrected_micrographs.star --o {jobdir} --Box 512 --ResMin 30 --ResMax 5 "
        "--dFMin 5000 --dFMax 50000 --FStep 500 --dAst 100 --ctffind_exe /opt/ctffind --ctfWin -1 --is_ctffind4 "
    )
    return relion_command("relion_run_ctffind", args, jobdir=jobdir, mpi=mpi)


def motioncorr(jobdir: str, mpi: int, threads: int) -> str:
    args = (
        f"--i Import/job001/movies.star --o {jobdir} --first_frame_sum 1 --last_frame_sum -1 --use_own  "
        f"--j {threads} --bin_factor 1 --bfactor 150 --dose_per_frame 1.277 --preexposure 0 --patch_x 5 "
        "--patch_y 5 --eer_grouping 32 --dose_weighting "
    )
    return relion_command("relion_run_motioncorr", args, jobdir=jobdir, mpi=mpi)


def python_job(program: str, args: str, jobdir: str) -> str:
    """RELION 5.0's Python-based jobs: `which relion_python_<tool>` <subcommand> ..., never MPI."""
    return relion_command(program, args, jobdir=jobdir, mpi=1, mpi_capable=False)


NORC = {1: "Number of nodes", 2: "MPI per node", 3: "Partition", 4: "GPUs per node", 5: "Memory"}
ECHO = {1: "Account", 2: "Time", 3: "Memory per CPU", 4: "Gres", 5: "Extra 1", 6: "Extra 2", 7: "Extra 3"}
SHERLOCK = {
    1: "Walltime",
    2: "Memory per CPU",
    3: "Additional option 1",
    4: "Additional option 2",
    5: "Additional option 3",
}
C2 = "Class2D/job012/"
R3 = "Refine3D/job020/"
CTF = "CtfFind/job003/"

CASES: tuple[Case, ...] = (
    case(
        "goettingen_cpu",
        "goettingen_cpu.sh",
        "mpirun, '--mem-per-cpu 8000' as two words, a prose '--mem 80G'",
        C2,
        (class2d(C2, 8, 1),),
        mpi=8,
        queue="multinode",
    ),
    case(
        "goettingen_gpu",
        "goettingen_gpu.sh",
        "fixed --gres=gpu:2 and a GPU constraint in the template",
        C2,
        (class2d(C2, 3, 2, gpu=True),),
        mpi=3,
        threads=2,
        queue="gpu",
    ),
    case(
        "norc_quoted",
        "norc_quoted.sh",
        "RELION's command inside srun bash -c '...': its bytes must stay",
        CTF,
        (ctffind(CTF, 4),),
        mpi=4,
    ),
    case(
        "norc_extras_filled",
        "norc_extras.sh",
        "partition, nodes, tasks per node, GPUs and memory from 5 boxes",
        C2,
        (class2d(C2, 5, 2, gpu=True),),
        mpi=5,
        threads=2,
        labels=NORC,
        extras={1: "1", 2: "5", 3: "gpu", 4: "4", 5: "30000"},
    ),
    case(
        "norc_extras_gpu_box_cleared",
        "norc_extras.sh",
        "'GPUs per node' left empty: --gres=gpu: (class 5, 6)",
        C2,
        (class2d(C2, 5, 2, gpu=True),),
        mpi=5,
        threads=2,
        labels=NORC,
        extras={1: "1", 2: "5", 3: "gpu", 4: "", 5: "30000"},
    ),
    case(
        "minimal_pmi2",
        "minimal_pmi2.sh",
        "the smallest template: 4 directives and srun --mpi=pmi2",
        C2,
        (class2d(C2, 4, 2),),
        mpi=4,
        threads=2,
    ),
    case(
        "sge_leftovers",
        "sge_leftovers.sh",
        "'#$BATCH' lines left from an SGE template beside #SBATCH (class 3)",
        R3,
        (refine3d(R3, 3, 4),),
        mpi=3,
        threads=4,
    ),
    case(
        "placeholder_comments",
        "placeholder_comments.sh",
        "every placeholder in comments, mpirun over 4 lines",
        R3,
        (refine3d(R3, 3, 4),),
        mpi=3,
        threads=4,
        queue="multinode",
        labels={1: "Walltime", 2: "Extra sbatch options", 3: "Nodes", 4: "Memory"},
        extras={1: "2:00:00", 2: "", 3: "1", 4: "16G"},
    ),
    case(
        "echo_srun_memory_cleared",
        "echo_srun.sh",
        "the command echoed before it runs; Memory box cleared: --mem-per-cpu= twice (classes 2, 7)",
        R3,
        (refine3d(R3, 3, 4),),
        mpi=3,
        threads=4,
        labels=ECHO,
        extras={1: "", 2: "1:00:00", 3: "", 4: "", 5: "", 6: "", 7: ""},
    ),
    case(
        "echo_srun_scratch",
        "echo_srun.sh",
        "lscratch in the Gres box: --scratch_dir added to the run, not the echo",
        R3,
        (refine3d(R3, 3, 4),),
        mpi=3,
        threads=4,
        labels=ECHO,
        extras={1: "", 2: "1:00:00", 3: "1000", 4: "lscratch:10", 5: "--nodes=1", 6: "", 7: ""},
    ),
    case(
        "mpirun_time",
        "mpirun_time.sh",
        "'##### --exclusive' comment, mpirun time XXXcommandXXX",
        C2,
        (class2d(C2, 8, 1),),
        mpi=8,
        queue="multinode",
    ),
    case(
        "mail_mpiexec",
        "mail_mpiexec.sh",
        "mail options, mpiexec, walltime and RAM boxes",
        CTF,
        (ctffind(CTF, 4),),
        mpi=4,
        labels={1: "Maximum CPU time", 2: "Maximum RAM process"},
        extras={1: "00:30:00", 2: "1G"},
    ),
    case(
        "three_boxes_word",
        "three_boxes.sh",
        "a bare 'gpu:p100:2' in a whole-line box (class 6)",
        C2,
        (class2d(C2, 3, 2, gpu=True),),
        mpi=3,
        threads=2,
        queue="gpu",
        labels=SHERLOCK,
        extras={1: "1:00:00", 2: "2000", 3: "gpu:p100:2", 4: "", 5: ""},
    ),
    case(
        "three_boxes_gres",
        "three_boxes.sh",
        "the same with --gres=gpu:p100:2 written as an option",
        C2,
        (class2d(C2, 3, 2, gpu=True),),
        mpi=3,
        threads=2,
        queue="gpu",
        labels=SHERLOCK,
        extras={1: "1:00:00", 2: "2000", 3: "--gres=gpu:p100:2", 4: "--nodes=1", 5: ""},
    ),
    case(
        "lsf_bsub",
        "lsf_bsub.sh",
        "an LSF template (#BSUB) given to a Slurm site (class 3)",
        C2,
        (class2d(C2, 4, 1),),
        mpi=4,
        labels={1: "Walltime"},
        extras={1: "1:00"},
    ),
    case(
        "pbs_torque",
        "pbs_torque.sh",
        "a PBS/Torque template (#PBS) given to a Slurm site (class 3)",
        C2,
        (class2d(C2, 4, 1, gpu=True),),
        mpi=4,
        labels={1: "Walltime", 2: "GPUs"},
        extras={1: "2", 2: "1"},
    ),
    case(
        "qsub_csh",
        "qsub_csh.sh",
        "RELION's own default template: SGE, tcsh, mpiexec (class 3)",
        C2,
        (class2d(C2, 4, 1),),
        mpi=4,
        queue="openmpi",
    ),
    case(
        "patched_qos",
        "patched_qos.sh",
        "XXXqosXXX, a placeholder only a patched RELION fills (class 6)",
        CTF,
        (ctffind(CTF, 4),),
        mpi=4,
        labels={1: "Walltime"},
        extras={1: "0:30:00"},
    ),
    case(
        "spank_options",
        "spank_options.sh",
        "site plugin options --gpu_cmode and --auks (class 4)",
        C2,
        (class2d(C2, 3, 2, gpu=True),),
        mpi=3,
        threads=2,
        queue="gpu",
        labels={1: "GPUs"},
        extras={1: "2"},
        no_testbed="the testbed runs no SPANK plugin, so its sbatch has no --gpu_cmode or --auks",
    ),
    case(
        "repeated_constraint",
        "repeated_constraint.sh",
        "-C from a box and -C x2695 below it: last wins (class 1)",
        CTF,
        (ctffind(CTF, 4),),
        mpi=4,
        queue="multinode",
        labels={1: "Node feature"},
        extras={1: "gpup100"},
    ),
    case(
        "prose_sbatch",
        "prose_sbatch.sh",
        "'# sbatch --mem=1009g ...' in a comment is prose (class 7)",
        CTF,
        (ctffind(CTF, 4),),
        mpi=4,
    ),
    case(
        "mem_units_cleared",
        "mem_units.sh",
        "--mem=XXXextra2XXXGB and srun --mem-per-cpu= with boxes cleared (5)",
        CTF,
        (ctffind(CTF, 4),),
        mpi=4,
        labels={1: "Hours", 2: "Memory (GB)", 3: "Memory per CPU"},
        extras={1: "1", 2: "", 3: ""},
    ),
    case(
        "mem_units_filled",
        "mem_units.sh",
        "the same with the boxes filled",
        CTF,
        (ctffind(CTF, 4),),
        mpi=4,
        labels={1: "Hours", 2: "Memory (GB)", 3: "Memory per CPU"},
        extras={1: "1", 2: "8", 3: "1G"},
    ),
)

# ---- RELION 4.0 and 5.0 jobs (issue 15 class 8), on the main corpus' RELION 4.0/5.0-style templates.
IM = "InitialModel/job009/"
DM = "DynaMight/job030/"
MA = "ModelAngelo/job031/"
SEL = "Select/job013/"
MC = "MotionCorr/job002/"
R45 = {1: "Walltime", 2: "Memory per CPU"}


def initial_model_vdam(jobdir: str, threads: int) -> tuple[str, ...]:
    """RELION 4.0/5.0 InitialModel: relion_refine (VDAM, one process), then three commands of its own."""
    refine = relion_command(
        "relion_refine",
        f"--o {jobdir}run --iter 200 --grad --denovo_3dref  --i Select/job013/particles.star --ctf --K 1 "
        f"--sym C1  --flatten_solvent  --zero_mask  --dont_combine_weights_via_disc --pool 3 --pad 1  "
        f"--particle_diameter 200 --oversampling 1  --healpix_order 1  --offset_range 6  --offset_step 2 "
        f"--auto_sampling  --tau2_fudge 4 --j {threads} ",
        jobdir=jobdir,
    )
    return (
        refine,
        f"rm -f {jobdir}RELION_JOB_EXIT_SUCCESS",
        relion_command(
            "relion_align_symmetry",
            f"--i {jobdir}run_it200_model.star --o {jobdir}initial_model.mrc --sym D2 --apply_sym "
            "--select_largest_class",
            jobdir=jobdir,
            mpi_capable=False,
        ),
        f"touch {jobdir}RELION_JOB_EXIT_SUCCESS",
    )


CASES += (
    case(
        "relion4_initialmodel_dedicated",
        MAIN + "dedicated_cores.sh",
        "RELION 4.0 InitialModel, 4 commands; --nodes=XXXnodesXXX --ntasks-per-node=XXXdedicatedXXX",
        IM,
        initial_model_vdam(IM, 4),
        mpi=1,
        threads=4,
        queue="multinode",
        dedicated=4,
        labels={1: "Walltime"},
        extras={1: "1:00:00"},
    ),
    case(
        "relion5_scheme_motioncorr",
        MAIN + "relion5_nodes.sh",
        "a job relion_schemer runs for Schemes/prep: MotionCorr 4 MPI x 4 threads, XXXnodesXXX with dedicated 16",
        MC,
        (motioncorr(MC, 4, 4),),
        mpi=4,
        threads=4,
        queue="multinode",
        dedicated=16,
        labels=R45,
        extras={1: "0:30:00", 2: "1000"},
    ),
    case(
        "relion5_dynamight",
        MAIN + "relion5_nodes.sh",
        "RELION 5.0 DynaMight: a Python job, one process",
        DM,
        (
            python_job(
                "relion_python_dynamight",
                f"optimize-deformations --refinement-star-file {R3}run_data.star --output-directory {DM} "
                f"--initial-model {R3}run_class001.mrc --n-gaussians 10000 --initial-threshold 0.01 "
                "--regularization-factor 1 --n-threads 4 --gpu-id 0 ",
                DM,
            ),
        ),
        mpi=1,
        threads=4,
        queue="norm",
        dedicated=4,
        labels=R45,
        extras={1: "1:00:00", 2: "2000"},
    ),
    case(
        "relion5_modelangelo",
        MAIN + "relion5_nodes.sh",
        "RELION 5.0 ModelAngelo: a Python job, one process",
        MA,
        (
            python_job(
                "relion_python_modelangelo",
                f"build -v PostProcess/job040/postprocess.mrc -pf sequence.fasta -o {MA} -d 0 ",
                MA,
            ),
        ),
        mpi=1,
        threads=1,
        queue="norm",
        labels=R45,
        extras={1: "2:00:00", 2: "4000"},
    ),
    case(
        "relion5_classranker",
        MAIN + "relion5_nodes.sh",
        "RELION 5.0 auto-select (Select job): relion_python_classranker",
        SEL,
        (
            python_job(
                "relion_python_classranker",
                f"--opt {C2}run_it025_optimiser.star --o {SEL} --fn_sel_parts particles.star "
                "--fn_sel_classavgs class_averages.star --python python --fn_root rank "
                "--do_granularity_features  --auto_select  --min_score 0.5 ",
                SEL,
            ),
        ),
        mpi=1,
        threads=1,
        queue="norm",
        labels=R45,
        extras={1: "0:10:00", 2: "1000"},
    ),
    case(
        "relion5_refine_blush_two_extras",
        MAIN + "mpirun_two_extras.sh",
        "RELION 5.0 Refine3D with Blush on GPUs: RELION's default 2 extras, --gres=gpu:XXXextra1XXX",
        R3,
        (refine3d(R3, 3, 2, extra=' --blush --gpu ""'),),
        mpi=3,
        threads=2,
        queue="gpu",
        labels={1: "GPUs per node", 2: "Memory"},
        extras={1: "2", 2: "12000"},
    ),
)
