"""Moving a finished `steel data prepare` or `steel data merge` output into OUT so that a kill -9 or a power loss at any moment leaves
the previous output or the new one (README: the previous output stays until the new one is complete).

OUT holds its output flat (manifest.json, chunk files, sidecars, tokenizer/) beside files that are not the
output's (the lock, prepare.log, the user's), and a rerun's chunks often carry the previous output's names
(`a-00000.bin`): the new files cannot sit beside the old ones, and OUT itself is not renamed (it may be a mount
point or a link). So the swap keeps a journal, `OUT/.steel-swap.json`:

1. The new output is complete in OUT/.partial/: every file fsynced, its manifest.json written last.
2. The journal names the previous output's files to delete (those the new output does not replace) and the staged
   files to move in; written to a temp file, fsynced, renamed, OUT fsynced: the commit point. A kill before it
   leaves the previous output as it was (the next prepare or merge removes OUT/.partial/).
3. The previous manifest goes, then the files the journal names; the staged files are renamed in (replacing those
   of the same name; a staged directory, tokenizer/, replaces OUT's as a whole: OUT's is renamed into the stage
   first, and goes with it); a tokenizer/ of another tokenizer goes; OUT is fsynced; the new manifest is renamed
   in last; the journal is deleted. Renames only: a chunk is never copied.

Each step of 3 may run again. Whoever reads OUT next through `read_manifest` (training, `steel data inspect`,
eval, the next prepare or merge) finds the journal, finishes the swap under OUT's lock (`.steel.lock`, waiting
for a prepare that is finishing its own), says so with a warning, and reads the new output. Once the new manifest
is in, only cleanup is left: a reader that cannot do it (OUT copied to read-only storage) warns (once per process
and directory) and reads on. A
journal whose staged output is gone too (OUT/.partial/ removed by hand after a failed swap) leaves no complete
output: a reader refuses OUT, naming the journal; the next prepare or merge, which rebuilds OUT, drops it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from steel.data.chunks import MANIFEST, ChunkFormatError

JOURNAL = ".steel-swap.json"
JOURNAL_FORMAT = "steel-data-swap"
JOURNAL_VERSION = 1
ASIDE = ".replaced-"  # STAGE/.replaced-NAME: OUT's directory NAME that a staged one replaces, deleted with the stage
# A reader finding a journal and OUT's lock held waits for the holder (a prepare or merge finishing its swap: well
# under a second locally, but one rename per file, minutes for 100,000 chunks on slow network storage) as long as
# the swap moves (OUT's or the stage's entry count changed within LOCK_WAIT_S, looked at every PROGRESS_LOOK_S).
LOCK_WAIT_S = 60.0
PROGRESS_LOOK_S = 1.0
# The directories this process was told cannot be cleaned (`_finish`'s "left"): said once per directory, not on
# every read (a training run reads its data dirs' manifests more than once; each warned again, session 16).
_TOLD_LEFT: set[str] = set()


def chunk_name(name, manifest: Path, i: int) -> str:
    """A manifest's `chunks[i].file`, which the swap deletes or moves as OUT/NAME: a plain file name, or a
    ChunkFormatError (a hand-edited or corrupt manifest naming `../x.bin` had a rerun delete a file outside OUT)."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ChunkFormatError(f"{manifest}: chunks[{i}].file {name!r} is not a file name in its directory (a chunk "
                               "file is named SOURCE-NNNNN.bin); fix or remove the manifest")
    return name


def _fsync(path: Path) -> None:
    """fsync a file's data or a directory's entries."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    """`_fsync` a staged file, or a staged directory's files and directories (links are not followed)."""
    for p in [*path.rglob("*"), path] if path.is_dir() and not path.is_symlink() else [path]:
        if not p.is_symlink():
            _fsync(p)


def swap_in(out: Path, stage: Path, manifest_writer, previous: list[str], tokenizer: str | None,
            log: logging.Logger, by: str = "steel data prepare") -> None:
    """Move the complete output staged in `stage` (a directory in `out`) into `out`, replacing the previous one.

    `manifest_writer(dir)` writes the new manifest into `dir` (fsynced); `previous`: the previous output's files
    (its chunks and sidecars; its manifest goes anyway); `tokenizer`: the new output's tokenizer fingerprint when
    a `out`/tokenizer/ of another one must go (`replace_tokenizer_dir`), else None (a staged tokenizer/ replaces
    OUT's); `by`: the command, for the warning of a reader that finishes the swap.
    """
    moving = sorted(p.name for p in stage.iterdir() if p.name != MANIFEST)
    for name in moving:  # chunks are fsynced as written, sidecars (np.save) and a tokenizer/ are not
        _fsync_tree(stage / name)
    manifest_writer(stage)  # fsyncs the file and `stage`
    replaced = set(moving)
    journal = {"format": JOURNAL_FORMAT, "version": JOURNAL_VERSION, "stage": stage.name,
               "remove": sorted(set(previous) - replaced), "move": moving, "tokenizer": tokenizer, "by": by}
    tmp = out / (JOURNAL + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(journal, indent=1) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out / JOURNAL)
    _fsync(out)  # committed: from here on the swap is finished, by this run or the next reader
    _finish(out, journal, log)


def _finish(out: Path, journal: dict, log: logging.Logger, rebuilding: bool = False) -> str:
    """Steps 3 of the module docstring; each may have run already (a killed run, a reader finishing it).

    -> "moved" (the staged output moved in), "cleaned" (it was in: the journal and the stage went), "left" (the
    new output is in; removing the journal or the stage failed: a warning, the output is complete) or "dropped"
    (`rebuilding`: neither output was there, see `finish_swap`).
    """
    stage = out / journal["stage"]
    staged = stage / MANIFEST
    if staged.exists():  # the new manifest is not in yet: OUT's is the previous one
        (out / MANIFEST).unlink(missing_ok=True)
        for name in journal["remove"]:  # none of them is a name the new output uses
            (out / name).unlink(missing_ok=True)
        for name in journal["move"]:
            src, dst = stage / name, out / name
            if not os.path.lexists(src):  # moved in already (it may have replaced a previous file)
                continue
            if src.is_dir() and not src.is_symlink() and os.path.lexists(dst):  # no rename over a full directory
                aside = stage / (ASIDE + name)
                if os.path.lexists(aside):  # (never: dst went there and src in next, with no kill between)
                    shutil.rmtree(aside)
                os.rename(dst, aside)
            os.replace(src, dst)
        if journal["tokenizer"] is not None:
            from steel.data.tokenize import replace_tokenizer_dir

            # set aside in the stage, which goes below: a kill while it is deleted leaves it to the next reader
            replace_tokenizer_dir(out, journal["tokenizer"], log=log, aside=stage / (ASIDE + "tokenizer"))
        _fsync(out)  # the moves are durable before the manifest that lists them
        os.replace(staged, out / MANIFEST)
        _fsync(out)
        done = "moved"
    elif (out / MANIFEST).exists():  # ended after its manifest went in: the journal and the stage are left
        done = "cleaned"
    elif rebuilding:
        return _drop(out, journal, log)
    else:
        by = journal.get("by", "steel data prepare")
        raise ChunkFormatError(
            f"{out}: holds no complete output: {out / JOURNAL} says a `{by}` was moving its output in, but neither "
            f"{stage.name}/{MANIFEST} nor {MANIFEST} is there (removed by hand?). Run `{by}"
            f"{' --overwrite' if by == 'steel data merge' else ''}` again: it drops the journal and the files it "
            "names, and makes the output")
    try:
        shutil.rmtree(stage, ignore_errors=True)  # empty by now, or OUT's replaced directories
        (out / JOURNAL).unlink(missing_ok=True)
        _fsync(out)
    except OSError as e:
        if str(out.resolve()) not in _TOLD_LEFT:
            _TOLD_LEFT.add(str(out.resolve()))
            log.warning("%s: holds the new output, but what its swap left (%s, %s/) cannot be removed (%s); the next "
                        "read of the directory where it is writable removes it", out, JOURNAL, stage.name,
                        e.strerror or e)
        return "left"
    return done


def _drop(out: Path, journal: dict, log: logging.Logger) -> str:
    """A journal without its output (the stage's manifest and OUT's both gone) goes, with the files it names, which
    no manifest lists; OUT's directories (tokenizer/) are the rebuilding run's to replace."""
    named = [out / n for n in dict.fromkeys([*journal["remove"], *journal["move"]])]
    gone = [p for p in named if p.is_symlink() or p.is_file()]
    for p in gone:
        p.unlink(missing_ok=True)
    shutil.rmtree(out / journal["stage"], ignore_errors=True)
    (out / JOURNAL).unlink(missing_ok=True)
    _fsync(out)
    log.warning("%s: %s says a `%s` was moving its output in, but neither %s/%s nor %s is there (removed by hand?): "
                "the directory held no complete output; dropped the journal and the %d files it named",
                out, JOURNAL, journal.get("by", "steel data prepare"), journal["stage"], MANIFEST, MANIFEST, len(gone))
    return "dropped"


def log_left(out: Path, stage: Path, log: logging.Logger) -> None:
    """After an error in a prepare or merge holding OUT's lock: remove its stage when no swap began (the previous
    output is as it was), else say what the swap's journal leaves to the next reader."""
    if not (out / JOURNAL).exists():
        shutil.rmtree(stage, ignore_errors=True)
    elif (stage / MANIFEST).exists():
        log.error("the new output is complete (in %s, and what was moved into %s); the next read of %s (training, "
                  "`steel data inspect`, a prepare) finishes moving it in", stage, out, out)
    elif (out / MANIFEST).exists():
        log.error("the new output is in %s; the next read of it removes what its swap left (%s)", out, JOURNAL)
    # else: no output is there; the error says what to do


def finish_swap(data_dir: str | Path, log: logging.Logger | None = None, rebuilding: bool = False) -> bool:
    """Finish the swap a killed prepare or merge left half done in `data_dir` (a stat when there is none); -> whether it did.

    Under `data_dir`'s lock, which a live prepare holds while it swaps (waited for) and which the kernel dropped
    when the killed one died. A failure before the new manifest is in (a read-only directory) is a
    ChunkFormatError saying what to do; after it, a warning. A journal whose output is gone (neither the staged
    manifest nor OUT's) is an error, or, `rebuilding` (a prepare or merge about to make OUT's output), dropped with
    its leftovers and a warning.
    """
    d = Path(data_dir)
    if not (d / JOURNAL).exists():
        return False
    log = log or logging.getLogger("steel")
    with _swap_lock(d):
        try:
            journal = json.loads((d / JOURNAL).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return False  # the prepare that held the lock finished it
        except (OSError, ValueError) as e:
            raise ChunkFormatError(f"{d / JOURNAL}: unreadable ({e}); run the prepare again") from None
        if journal.get("format") != JOURNAL_FORMAT or journal.get("version") != JOURNAL_VERSION:
            raise ChunkFormatError(f"{d / JOURNAL}: not a version-{JOURNAL_VERSION} {JOURNAL_FORMAT} journal")
        by = journal.get("by", "steel data prepare")  # (journals of 148523e do not say)
        try:
            done = _finish(d, journal, log, rebuilding)
        except OSError as e:
            raise ChunkFormatError(
                f"{d}: a `{by}` ended while moving its finished output in ({JOURNAL}), and finishing that failed "
                f"({e.strerror or e}): make the directory writable and read it again (`steel data inspect`), or "
                "run it again") from None
    if done == "moved":
        log.warning("%s: a `%s` ended (killed, or an error) while moving its finished output in: finished moving it "
                    "(%d entries); the directory holds the new output", d, by, len(journal["move"]) + 1)
    elif done == "cleaned":
        log.warning("%s: a `%s` ended (killed, or an error) after moving its output in, before removing its %s: the "
                    "directory holds the new output", d, by, JOURNAL)
    return True


def _swap_progress(d: Path) -> tuple[int, int]:
    """(entries of `d`, of its swap's stage): every step of a live swap changes one (an unlink, a rename in)."""
    try:
        stage = json.loads((d / JOURNAL).read_text(encoding="utf-8")).get("stage")
    except (OSError, ValueError, AttributeError):
        stage = None
    counts = []
    for p in (d, d / stage if isinstance(stage, str) else None):
        try:
            counts.append(len(os.listdir(p)) if p is not None else -1)
        except OSError:
            counts.append(-1)
    return counts[0], counts[1]


@contextlib.contextmanager
def _swap_lock(d: Path) -> Iterator[None]:
    """OUT's `.steel.lock` (`steel.dirlock`), taken by every process (torchrun ranks too: only one may finish
    the swap) and waited for; held already when this process is the prepare."""
    from steel import dirlock

    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    if dirlock.held_here(d):
        yield
        return
    try:
        f = open(d / dirlock.LOCK_NAME, "a+", encoding="utf-8")  # noqa: SIM115 -- closed below
    except OSError:  # a read-only directory: finishing fails with its own error
        yield
        return
    with f:
        now = time.monotonic()
        deadline, look, seen = now + LOCK_WAIT_S, now + PROGRESS_LOOK_S, _swap_progress(d)
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not (d / JOURNAL).exists():  # finished by the prepare holding the lock
                    break
                now = time.monotonic()
                if now > look:  # the holder's swap still moves: wait on
                    look, progress = now + PROGRESS_LOOK_S, _swap_progress(d)
                    if progress != seen:
                        deadline, seen = now + LOCK_WAIT_S, progress
                if now > deadline:
                    f.seek(0)
                    raise ChunkFormatError(
                        f"{d}: a prepare's output is being moved in ({JOURNAL}) by another Steel process "
                        f"({f.read().strip() or 'holder unknown'}) that has moved no file in {LOCK_WAIT_S:.0f} s"
                    ) from None
                time.sleep(0.05)
            except OSError as e:  # a file system without flock: as `dirlock.acquire`
                logging.getLogger("steel").warning("%s: cannot lock %s (%s); finishing the swap unlocked", d,
                                                   dirlock.LOCK_NAME, e.strerror or e)
                break
        yield
