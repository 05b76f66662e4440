"""A blocklist whose words all vanish under the documents' normalization is refused before any work.

Its words go through the normalizer in `Filter.setup` (workers and the inline processor); the check that
runs first in `prepare` must do the same, or the refusal first happens in the pool's initializer, which
multiprocessing answers by respawning the worker forever (a hang, with a traceback per respawn).
"""

import logging

import pytest

from steel.config import ConfigError, from_dict
from steel.data.config import DataConfig
from steel.data.prepare import prepare


class _Unused:
    def __getattr__(self, name):
        raise AssertionError(f"the encoder was used ({name}) before the filters were checked")


@pytest.mark.parametrize("word", ["\u200b", "\u00ad", "  "])  # removed as control chars / stripped whitespace
def test_blocklist_emptied_by_normalization_is_refused_before_any_work(tmp_path, word):
    (tmp_path / "a.jsonl").write_text('{"text": "hello world, a document"}\n', encoding="utf-8")
    cfg = from_dict(DataConfig, {
        "root": str(tmp_path), "tokenizer": "unused", "workers": 2,
        "filters": [{"name": "blocklist", "words": [word]}],
        "sources": [{"name": "a", "path": ["a.jsonl"]}],
    })
    with pytest.raises(ConfigError, match=r"filters\[0\]\.words: .*after normalization"):
        prepare(cfg, tmp_path / "out", encoder=_Unused(), log=logging.getLogger("test.steel.data"), quiet=True)
    assert not (tmp_path / "out" / ".partial").exists()


def test_blocklist_words_are_normalized_as_the_documents_are():
    from steel.data.config import NormalizeConfig
    from steel.data.filters import build_filters
    from steel.data.normalize import Normalizer

    norm = Normalizer(NormalizeConfig(unicode="NFKC"))
    (flt,) = build_filters([{"name": "blocklist", "words": ["ＦＲＥＥ", "\u200b"]}], setup=True, normalize=norm)
    assert not flt.keep(norm("get it FREE now")) and flt.keep(norm("a\u200bb"))


def test_a_worker_setup_error_reaches_the_main_process(tmp_path, enc, monkeypatch):
    """Whatever fails in a worker's setup (a blocklist file gone since the check) is the run's error, not a hang."""
    import signal

    import steel.data.prepare as prep

    def broken(spec, encoder):
        raise ConfigError("filters[0].file: cannot read blocklist words.txt (gone)")

    monkeypatch.setattr(prep, "DocProcessor", broken)  # inherited by the forked workers
    (tmp_path / "a.jsonl").write_text('{"text": "hello world, a document"}\n', encoding="utf-8")
    cfg = from_dict(DataConfig, {"root": str(tmp_path), "tokenizer": "unused", "workers": 2,
                                 "sources": [{"name": "a", "path": ["a.jsonl"]}]})

    def hung(*_):
        raise TimeoutError("prepare hung: the pool respawns the worker whose initializer raised")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        with pytest.raises(ConfigError, match="gone"):
            prep.prepare(cfg, tmp_path / "out", encoder=enc, log=logging.getLogger("test.steel.data"), quiet=True)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
