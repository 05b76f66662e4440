"""`~name` where no user has that name stays as it is, as a shell leaves it: `root: ~raw`, `tokenizer: ~tok` and a
blocklist `file: ~words.txt` name a file or directory of that name. Since `~` is the home directory (27a46a3) they
went through Path.expanduser, which raises RuntimeError ("Could not determine home directory") for an unknown user:
a traceback, where the source paths (os.path.expanduser) took `~x.jsonl` as that file."""

from __future__ import annotations

import pwd

import pytest

from steel.config import ConfigError, from_dict
from steel.data.config import DataConfig
from steel.data.filters import build_filters

NAME = "~steel-no-such-user-s12v1"


@pytest.fixture(autouse=True)
def _no_such_user():
    with pytest.raises(KeyError):
        pwd.getpwnam(NAME[1:])


def test_root_and_tokenizer_named_with_a_tilde(tmp_path, monkeypatch):
    (tmp_path / "proj" / NAME).mkdir(parents=True)
    (tmp_path / "proj" / (NAME + "-tok")).mkdir()
    (tmp_path / "proj" / (NAME + "-tok") / "tokenizer.json").write_text("{}", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # the config's directory, not the current one, holds them
    cfg = from_dict(DataConfig, {"root": NAME, "tokenizer": NAME + "-tok",
                                 "sources": [{"name": "s", "path": ["a.jsonl"]}]})
    config_path = tmp_path / "proj" / "data.yaml"
    assert cfg.resolve_root(config_path) == tmp_path / "proj" / NAME
    assert cfg.resolve_tokenizer(config_path) == str(tmp_path / "proj" / (NAME + "-tok"))
    cfg.tokenizer = NAME + "-gone"
    with pytest.raises(ConfigError, match=r"^tokenizer: neither ~steel-no-such-user-s12v1-gone \(from the current "):
        cfg.resolve_tokenizer(config_path)


def test_blocklist_file_named_with_a_tilde(tmp_path):
    (tmp_path / (NAME + ".txt")).write_text("澳门赌场\n", encoding="utf-8")
    (flt,) = build_filters([{"name": "blocklist", "file": NAME + ".txt"}], ["s"], tmp_path, setup=True)
    assert not flt.keep("这里有澳门赌场的广告") and flt.keep("长江是中国最长的河流")
