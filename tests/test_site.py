"""Site profiles: the packaged ones load; a bad one is refused naming the file, the key and what is expected."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from relion_qsub import profile
from relion_qsub.errors import ProfileError
from relion_qsub.profile import files


def test_packaged_profiles_load() -> None:
    biowulf = profile.load("biowulf")
    assert biowulf.gpu_safe_threads == {"k80": 1, "p100": 2, "v100": 4, "v100x": 4, "a100": 4}
    assert biowulf.scratch.min_gb == 5 and biowulf.gpu_partitions() == ["gpu"]
    assert profile.load("testbed").partitions["gpu"].gpu_types == ("p100",)


def test_environment_selects_the_profile() -> None:
    assert profile.resolve(None, {"RELION_QSUB_SITE": "testbed"}).name == "testbed.toml"
    assert profile.resolve(None, {}).name == "biowulf.toml"
    assert profile.resolve("/etc/x.toml", {}) == Path("/etc/x.toml")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[policy]\ntypo_distance = 'x'\n", "policy.typo_distance: expected"),
        ("[policy]\ntypo = 1\n", "policy.typo: expected a string"),
        ("[scratch]\nmin_gb = -1\n", "scratch.min_gb: expected a whole number >= 0"),
        ("[partitions.gpu]\ngpu_types = ['h100']\n", "GPU type 'h100' has no [gpu_types.h100] table"),
        ("[submit]\nbackoff = 'x'\n", "submit.backoff: expected a list of numbers"),
        ("partitions = 3\n", "partitions: expected a table"),
        ("this is = not toml [\n", "not valid TOML"),
    ],
)
def test_bad_profile_names_file_key_and_expectation(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ProfileError) as info:
        profile.load(str(path))
    assert str(path) in str(info.value) and message in str(info.value)


def test_missing_profile_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError, match="biowulf, testbed"):
        profile.load("nosuch")


def test_parsed_profile_is_cached_and_the_cache_follows_the_file(tmp_path: Path) -> None:
    environ = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    path = tmp_path / "p.toml"
    path.write_text("name = 'one'\n")
    assert profile.load(str(path), environ).name == "one"
    (cached,) = (tmp_path / "cache" / "relion-qsub").iterdir()
    assert profile.load(str(path), environ).name == "one"  # served from the cache
    path.write_text("name = 'second'\n")  # another size and mtime: another key
    assert profile.load(str(path), environ).name == "second"
    cached.write_bytes(b"garbage")  # a broken cache entry is ignored, never an error
    assert profile.load(str(path), environ).name == "second"
    assert profile.load(str(path), {**environ, "RELION_QSUB_NO_CACHE": "1"}).name == "second"


def test_rich_sections_are_parsed_only_when_used(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[recipes.x.rows.h100]\nqueue = 'gpu'\n")
    lazy = profile.load(str(path))  # the submit path does not read recipes: no error here
    with pytest.raises(ProfileError, match=r"recipes\.x\.rows\.h100"):
        _ = lazy.profile.recipes
    with pytest.raises(ProfileError, match=r"recipes\.x\.rows\.h100"):
        profile.load(str(path), full=True)


def test_replace_keeps_the_rest() -> None:
    biowulf = profile.load("biowulf")
    lenient = dataclasses.replace(biowulf, policy={**biowulf.policy, "typo": "off"})
    assert lenient.policy["typo"] == "off" and "typo" not in biowulf.policy
    assert lenient.scratch == biowulf.scratch and lenient.profile.recipes == biowulf.profile.recipes


def test_site_option_is_declared_once() -> None:
    """``--site`` and its help are written once (profile.add_site_option), beside the search they describe; the
    tools' parsers use it (issue 19: five copies of the help had drifted from what resolve() does)."""
    parser = argparse.ArgumentParser()
    profile.add_site_option(parser)
    assert parser.parse_args(["--site", "testbed"]).site == "testbed" and parser.parse_args([]).site is None
    (action,) = [a for a in parser._actions if "--site" in a.option_strings]
    assert action.help == profile.SITE_HELP and action.metavar == "PROFILE"
    package = Path(profile.__file__).resolve().parent.parent
    own = {str(p.relative_to(package)) for p in package.rglob("*.py") if '"--site"' in p.read_text()}
    assert own <= {"profile/files.py", "cli.py"}, own  # cli.py: the submit path's own word parser reads it


def test_site_help_says_what_resolve_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    monkeypatch.setattr(files, "INSTALLED_DIR", etc)
    # "a path (it has a '/' or ends in .toml)"
    assert profile.resolve("x.toml", {}) == Path("x.toml") and profile.resolve("a/b", {}) == Path("a/b")
    # "a NAME looked up as <prefix>/etc/NAME.toml, then as a bundled profile"
    assert profile.resolve("testbed", {}) == profile.PROFILE_DIR / "testbed.toml"
    (etc / "testbed.toml").write_text("")
    assert profile.resolve("testbed", {}) == etc / "testbed.toml"
    # "default: $RELION_QSUB_SITE (as for --site), else the one profile in <prefix>/etc/, else biowulf"
    assert profile.resolve(None, {"RELION_QSUB_SITE": "a/b"}) == Path("a/b")
    assert profile.resolve(None, {}) == etc / "testbed.toml"
    (etc / "testbed.toml").unlink()
    assert profile.resolve(None, {}) == profile.PROFILE_DIR / f"{profile.DEFAULT_PROFILE}.toml"
    assert "$RELION_QSUB_SITE" in profile.SITE_HELP and profile.DEFAULT_PROFILE in profile.SITE_HELP
