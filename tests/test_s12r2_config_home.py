"""`~` in a Path-typed config field (`steel eval ppl --data=~/d`, `data: ~/ceval` in an eval config given with
--data) and in the path fields a config class names (`expand_home`) is the home directory, as a shell expands it:
it was kept literally, so `--data=~/d` (which a shell leaves as it is) looked for ./~/d."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from steel.cli import home_path
from steel.config import expand_home, from_dict
from steel.eval.ppl import PplOptions


@dataclass
class _Paths:
    one: str = "a"
    many: list[str] = field(default_factory=list)
    maybe: str | None = None
    where: Path = Path("p")

    def __post_init__(self) -> None:
        expand_home(self, "one", "many", "maybe")


def test_path_fields_expand_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    assert from_dict(PplOptions, {"data": "~/d"}).data == home / "d"
    cfg = from_dict(_Paths, {"one": "~/a", "many": ["~", "~/b", "c/~", "/x"], "maybe": "~/m", "where": "~/w"})
    assert (cfg.one, cfg.many, cfg.maybe, cfg.where) == (
        f"{home}/a", [str(home), f"{home}/b", "c/~", "/x"], f"{home}/m", home / "w")
    assert from_dict(_Paths, {}) == _Paths("a", [], None, Path("p"))  # nothing to expand: as given
    assert (home_path("~/x"), home_path("x/~"), home_path("/abs")) == (f"{home}/x", "x/~", "/abs")
