"""Site profiles: the packaged ones load; a bad one is refused naming the file, the key and what is expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from relion_qsub import site
from relion_qsub.errors import ProfileError


def test_packaged_profiles_load() -> None:
    biowulf = site.load("biowulf")
    assert biowulf.gpu_safe_threads == {"k80": 1, "p100": 2, "v100": 4, "v100x": 4, "a100": 4}
    assert biowulf.scratch.min_gb == 5 and biowulf.gpu_partitions() == ["gpu"]
    assert site.load("testbed").partitions["gpu"].gpu_types == ("p100",)


def test_environment_selects_the_profile() -> None:
    assert site.resolve(None, {"RELION_QSUB_SITE": "testbed"}).name == "testbed.toml"
    assert site.resolve(None, {}).name == "biowulf.toml"
    assert site.resolve("/etc/x.toml", {}) == Path("/etc/x.toml")


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
        site.load(str(path))
    assert str(path) in str(info.value) and message in str(info.value)


def test_missing_profile_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError, match="biowulf, testbed"):
        site.load("nosuch")


def test_parsed_profile_is_cached_and_the_cache_follows_the_file(tmp_path: Path) -> None:
    environ = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    profile = tmp_path / "p.toml"
    profile.write_text("name = 'one'\n")
    assert site.load(str(profile), environ).name == "one"
    (cached,) = (tmp_path / "cache" / "relion-qsub").iterdir()
    assert site.load(str(profile), environ).name == "one"  # served from the cache
    profile.write_text("name = 'second'\n")  # another size and mtime: another key
    assert site.load(str(profile), environ).name == "second"
    cached.write_bytes(b"garbage")  # a broken cache entry is ignored, never an error
    assert site.load(str(profile), environ).name == "second"
    assert site.load(str(profile), {**environ, "RELION_QSUB_NO_CACHE": "1"}).name == "second"


def test_rich_sections_are_parsed_only_when_used(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[recipes.x.rows.h100]\nqueue = 'gpu'\n")
    lazy = site.load(str(path))  # the submit path does not read recipes: no error here
    with pytest.raises(ProfileError, match=r"recipes\.x\.rows\.h100"):
        _ = lazy.recipes
    with pytest.raises(ProfileError, match=r"recipes\.x\.rows\.h100"):
        site.load(str(path), full=True)


def test_replace_keeps_the_rest() -> None:
    biowulf = site.load("biowulf")
    lenient = biowulf.replace(policy={**biowulf.policy, "typo": "off"})
    assert lenient.policy["typo"] == "off" and "typo" not in biowulf.policy
    assert lenient.scratch == biowulf.scratch and lenient.recipes == biowulf.recipes
