"""The script model: sbatch's tokenizer, getopt_long semantics, byte-for-byte round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relion_qsub.script import Kind, lookalikes, parse, quote_word, split_words
from relion_qsub.slurm.options import BY_NAME, comma_runs, edit_distance, lookup_long, nearest, parse_words


@pytest.mark.parametrize(
    ("text", "words", "comment"),
    [
        (" --ntasks=4 -N 2", ["--ntasks=4", "-N", "2"], None),
        (' --comment="a b#c" -J x\\ y # hi', ["--comment=a b#c", "-J", "x y"], "# hi"),
        (" --job-name='two words'", ["--job-name=two words"], None),
        ("--time=1:00", ["--time=1:00"], None),  # "#SBATCH--time=1:00"
        (" --gres=gpu:p100:4#comment", ["--gres=gpu:p100:4"], "#comment"),
        ("   ", [], None),
        (' --x="say \\"hi\\""', ['--x=say "hi"'], None),
    ],
)
def test_split_words_like_sbatch(text: str, words: list[str], comment: str | None) -> None:
    assert split_words(text) == (words, comment)


def test_unterminated_quote_is_a_clear_error() -> None:
    with pytest.raises(Exception, match="unterminated"):
        split_words(' --comment="oops')


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=30))
def test_quote_word_round_trips(word: str) -> None:
    assert split_words(" " + quote_word(word)) == ([word], None)


def test_getopt_long_prefixes_and_ambiguity() -> None:
    assert lookup_long("partition")[0] == "exact"
    kind, (option,) = lookup_long("part")
    assert (kind, option.name) == ("prefix", "partition")
    assert lookup_long("ntasks-per")[0] == "ambiguous"
    assert lookup_long("exlusive")[0] == "unknown"


def test_parse_words_short_long_and_values() -> None:
    got = [(p.name, p.value) for p in parse_words(["-N2", "-n", "8", "--time", "1:00", "--exclusive", "-HQ"])]
    assert got == [
        ("nodes", "2"),
        ("ntasks", "8"),
        ("time", "1:00"),
        ("exclusive", None),
        ("hold", None),
        ("quiet", None),
    ]


def test_optional_argument_is_only_attached() -> None:
    parsed = parse_words(["--exclusive", "user"])
    assert parsed[0].name == "exclusive" and parsed[0].value is None
    assert parsed[1].option is None and "Invalid directive" in (parsed[1].problem or "")
    assert parse_words(["--exclusive=user"])[0].value == "user"


def test_unknown_option_gets_a_unique_guess() -> None:
    (typo,) = parse_words(["--exlusive"])
    assert typo.option is None and typo.guess is not None and typo.guess.name == "exclusive"
    (far,) = parse_words(["--frobnicate"])
    assert far.guess is None


def test_misspelt_option_taking_a_value_swallows_it() -> None:
    (p,) = parse_words(["--ntask-per-node", "5"])
    assert p.guess is not None and p.guess.name == "ntasks-per-node" and p.value == "5"


def test_edit_distance() -> None:
    assert edit_distance("exlusive", "exclusive") == 1
    assert edit_distance("ab", "ba") == 1
    assert nearest("exlusive", 1) == [(1, "exclusive")]


def test_every_table_entry_resolves_to_itself() -> None:
    for name in BY_NAME:
        assert lookup_long(name)[1][0].name == name


SCRIPT = """#!/bin/bash
#SBATCH --ntasks=4 -N 2 # two nodes
#SBATCH--time=1:00

# a comment
  #SBATCH --indented-is-ignored
#SBATCH --gres=
srun hostname
#SBATCH --after-the-first-command
"""


def test_parse_kinds_and_round_trip() -> None:
    script = parse(SCRIPT)
    assert script.render() == SCRIPT
    kinds = [line.kind for line in script.lines]
    assert kinds == [
        Kind.SHEBANG,
        Kind.DIRECTIVE,
        Kind.DIRECTIVE,
        Kind.COMMENT,
        Kind.COMMENT,
        Kind.COMMENT,
        Kind.DIRECTIVE,
        Kind.BODY,
        Kind.BODY,
    ]
    assert script.last("ntasks") == "4" and script.last("time") == "1:00" and script.last("gres") == ""
    assert [line.number for line in lookalikes(script)] == [6, 9]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        "no newline at end",
        "#!/bin/sh\r\n#SBATCH -n 1\r\nhostname\r\n",
        "#SBATCH -J a\x0bb\nx\n",
        "\n\n#SBATCH -n1\n\n",
    ],
)
def test_round_trip_edge_cases(text: str) -> None:
    assert parse(text).render() == text


@given(st.text(max_size=300))
def test_any_text_round_trips(text: str) -> None:
    try:
        script = parse(text)
    except Exception as exc:  # only the documented error for unbalanced quotes
        assert "unterminated" in str(exc)
        return
    assert script.render() == text


def test_lines_after_the_first_command_are_body() -> None:
    script = parse("#!/bin/bash\necho hi\n#SBATCH -n 4\n")
    assert not list(script.directives())


def test_hostile_long_option_is_refused_quickly() -> None:
    import time

    from relion_qsub import profile
    from relion_qsub.checks.core import Context
    from relion_qsub.checks.engine import normalise

    start = time.perf_counter()
    result = normalise(
        parse("#!/bin/bash\n#SBATCH --" + "x" * 200_000 + "\nhostname\n"), Context(profile.load("testbed"))
    )
    assert not result.ok and time.perf_counter() - start < 2.0


def test_shell_words_keep_their_spans() -> None:
    from relion_qsub.script import shell_words

    text = "srun  --x= bash -c 'echo  a   b' \"q r\" esc\\ aped"
    words = shell_words(text)
    assert [w for _, _, w in words] == ["srun", "--x=", "bash", "-c", "'echo  a   b'", '"q r"', "esc\\ aped"]
    assert all(text[start:end] == word for start, end, word in words)


def test_site_options_join_the_table_for_one_parse() -> None:
    from relion_qsub.slurm.options import site_table

    extra = site_table({"gpu_cmode": "required", "auks": "optional"})
    (parsed,) = parse_words(["--gpu_c=shared"], extra=extra)  # a prefix, as getopt_long takes it
    assert (parsed.name, parsed.value, parsed.problem) == ("gpu_cmode", "shared", None)
    (parsed,) = parse_words(["--auks"], extra=extra)
    assert (parsed.name, parsed.value, parsed.problem) == ("auks", None, None)
    assert parse_words(["--auks"])[0].problem is not None  # not a stock sbatch option


def test_other_batch_systems_directives_and_prose_are_told_apart() -> None:
    from relion_qsub.script import foreign_directives, lookalikes

    text = (
        "#!/bin/tcsh\n#$ -pe mpi 4\n#PBS -l nodes=1\n#BSUB -n 2\n# sbatch --mem=1g job.sh\n# SBATCH -n 2\nx\n#$ -cwd\n"
    )
    script = parse(text)
    assert [system for _, system in foreign_directives(script)] == ["SGE (Grid Engine)", "PBS/Torque", "LSF"]
    assert [line.number for line in lookalikes(script)] == [6]


def test_srun_table_on_the_same_parser() -> None:
    # srun(1): --mpi and -K/--kill-on-bad-exit are srun's own, not sbatch's; -l clusters with -u; -K takes an
    # attached optional argument, as getopt_long does.
    from relion_qsub.slurm.options import SRUN

    parsed = parse_words(["--mpi=pmix", "-luK1", "--kill-on", "--mem-per-cpu", "4g", "-p", "gpu"], command=SRUN)
    assert [(p.name, p.value, p.problem) for p in parsed] == [
        ("mpi", "pmix", None),
        ("label", None, None),
        ("unbuffered", None, None),
        ("kill-on-bad-exit", "1", None),
        ("kill-on-bad-exit", None, None),
        ("mem-per-cpu", "4g", None),
        ("partition", "gpu", None),
    ]
    assert [p.problem for p in parse_words(["--mpi=pmix", "-K1"])] == [
        "unrecognized option '--mpi'",
        "invalid option -- 'K'",
        "invalid option -- '1'",
    ]
    assert parse_words(["--mpii=pmix"], command=SRUN)[0].guess is SRUN.by_name["mpi"]


def test_comma_runs_find_values_a_space_after_a_comma_cut_in_two() -> None:
    def runs(text: str) -> dict[int, list[str]]:
        return {k: [w.spelled for w in v] for k, v in comma_runs(parse_words(text.split())).items()}

    assert runs("--gres=lscratch:5, gpu:p100:4 -p gpu") == {0: ["gpu:p100:4"]}
    assert runs("-p gpu --gres=a:1, b:2, c:3") == {1: ["b:2,", "c:3"]}
    assert runs("--gres=a:1, --time=1:00:00") == {}  # an option follows: the value just ends in ","
    assert runs("--gres=a:1,") == {}
    assert runs("--gres=a:1 b:2") == {}  # no comma: a stray word, the typo rule's own finding
