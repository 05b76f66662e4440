"""The chunk file format and the manifest: the contract between `steel data prepare` and training.

A chunk file is a fixed 128-byte header followed by the tokens, little-endian:

    offset  size  field
    0       8     magic  b"STEELTOK"
    8       4     format version (uint32)             = 1
    12      4     dtype code (uint32)                 2 = uint16, 4 = uint32 (bytes per token)
    16      8     vocabulary size (uint64)
    24      8     token count (uint64)
    32      64    tokenizer fingerprint (ASCII hex, NUL padded)
    96      32    reserved (zero)
    128     ...   tokens

Documents inside a chunk end with the EOS id; a chunk is never padded with fake tokens. Tokens are
uint16 when the vocabulary fits, else uint32. Read with `numpy.memmap` after checking the header.

`manifest.json` beside the chunks lists them with their token counts and the MD5 of their head and
tail (how Steel identified a file independently of its path), the tokenizer, and the per-source
accounting `read = kept + sum(filtered) + sum(rejected)`.

`documents.npy` (written by `prepare` when exact dedup is on, read by `merge`) lists the kept
documents, one 22-byte record each, in the order they were written (so a source's documents, in
order, tile that source's chunks, in manifest order):

    hash    uint64  exact-dedup hash of the folded text (`steel.data.dedup.exact_hash`)
    order   uint64  position in the unsharded input: file index << 32 | record ordinal in the file
    tokens  uint32  tokens the document occupies in the chunks (EOS included)
    source  uint16  index of its source in `manifest["sources"]`

`signatures.npy` (near dedup on, `--shard I/N` with N > 1): the documents' MinHash signatures,
(documents, num_perm) uint32, row i for document i of `documents.npy`, for `merge --near`.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"STEELTOK"
VERSION = 1
HEADER_SIZE = 128
_HEADER = struct.Struct("<8sIIQQ64s32s")
assert _HEADER.size == HEADER_SIZE
_DTYPES = {2: np.dtype("<u2"), 4: np.dtype("<u4")}
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "steel-data-manifest"
MANIFEST_VERSION = 1
MD5_SPAN = 1 << 20  # bytes hashed at each end of a chunk file
DOCUMENTS = "documents.npy"
SIGNATURES = "signatures.npy"
DOCUMENTS_DTYPE = np.dtype([("hash", "<u8"), ("order", "<u8"), ("tokens", "<u4"), ("source", "<u2")])


class ChunkFormatError(ValueError):
    """A chunk file or manifest that is not what it claims to be; the message names the file."""


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    return _DTYPES[2] if vocab_size <= 1 << 16 else _DTYPES[4]


@dataclass(frozen=True)
class ChunkHeader:
    version: int
    dtype: np.dtype
    vocab_size: int
    num_tokens: int
    fingerprint: str

    def pack(self) -> bytes:
        return _HEADER.pack(
            MAGIC,
            self.version,
            self.dtype.itemsize,
            self.vocab_size,
            self.num_tokens,
            self.fingerprint.encode("ascii")[:64],
            b"",
        )


def read_header(path: str | Path) -> ChunkHeader:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(HEADER_SIZE)
            size = os.fstat(f.fileno()).st_size
    except OSError as e:
        raise ChunkFormatError(f"{path}: cannot read chunk ({e.strerror})") from None
    if len(raw) < HEADER_SIZE:
        raise ChunkFormatError(f"{path}: too short for a chunk header ({len(raw)} bytes)")
    magic, version, code, vocab, count, fp, _ = _HEADER.unpack(raw)
    if magic != MAGIC:
        raise ChunkFormatError(f"{path}: not a Steel chunk (magic {magic!r})")
    if version != VERSION:
        raise ChunkFormatError(f"{path}: chunk format version {version}, this Steel reads {VERSION}")
    if code not in _DTYPES:
        raise ChunkFormatError(f"{path}: unknown dtype code {code}")
    dtype = _DTYPES[code]
    if size != HEADER_SIZE + count * dtype.itemsize:
        raise ChunkFormatError(
            f"{path}: header says {count} tokens ({HEADER_SIZE + count * dtype.itemsize} bytes) "
            f"but the file has {size} bytes (truncated or still being written?)"
        )
    return ChunkHeader(version, dtype, vocab, count, fp.rstrip(b"\0").decode("ascii"))


def read_chunk(path: str | Path) -> tuple[ChunkHeader, np.ndarray]:
    """Check the header and memory-map the tokens (read-only)."""
    header = read_header(path)
    if header.num_tokens == 0:
        return header, np.zeros(0, dtype=header.dtype)
    tokens = np.memmap(path, dtype=header.dtype, mode="r", offset=HEADER_SIZE, shape=(header.num_tokens,))
    return header, tokens


class ChunkWriter:
    """Streams token arrays into one chunk file; the header's token count is written on `close()`.

    The file is written as `NAME.tmp` and renamed on close, so a crash never leaves a file that
    passes `read_header` with the wrong contents.
    """

    def __init__(self, path: str | Path, vocab_size: int, fingerprint: str):
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.vocab_size = vocab_size
        self.fingerprint = fingerprint
        self.dtype = dtype_for_vocab(vocab_size)
        self.num_tokens = 0
        self._f = open(self.tmp, "wb")
        self._f.write(b"\0" * HEADER_SIZE)

    def write(self, tokens) -> None:
        arr = np.asarray(tokens)
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= self.vocab_size):
            raise ValueError(f"{self.path}: token id out of range [0, {self.vocab_size})")
        self._f.write(arr.astype(self.dtype, copy=False).tobytes())
        self.num_tokens += int(arr.size)

    def close(self) -> Path:
        header = ChunkHeader(VERSION, self.dtype, self.vocab_size, self.num_tokens, self.fingerprint)
        self._f.seek(0)
        self._f.write(header.pack())
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Best effort, never raises: called while another exception (often ENOSPC) is on its way up.

        Closing may fail (a full disk fails the flush of buffered bytes); the temp file is removed anyway
        and that error is not raised, so it neither masks the first error nor leaves `NAME.tmp` behind.
        """
        try:
            self._f.close()
        except Exception:
            pass
        try:
            self.tmp.unlink(missing_ok=True)
        except OSError:
            pass


def write_chunk(path: str | Path, tokens, vocab_size: int, fingerprint: str) -> Path:
    w = ChunkWriter(path, vocab_size, fingerprint)
    w.write(tokens)
    return w.close()


def head_tail_md5(path: str | Path, span: int = MD5_SPAN) -> str:
    """MD5 of the first and last `span` bytes (the whole file when smaller than 2*span).

    Identifies a chunk by content, not by path, so moving a data directory does not break a resume,
    and a file added twice under two names is caught.
    """
    h = hashlib.md5()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size <= 2 * span:
            h.update(f.read())
        else:
            h.update(f.read(span))
            f.seek(size - span)
            h.update(f.read(span))
    h.update(str(size).encode())
    return h.hexdigest()


def write_manifest(data_dir: str | Path, manifest: dict) -> Path:
    """Write `manifest.json` atomically (temp file + rename)."""
    path = Path(data_dir) / MANIFEST
    tmp = path.with_name(MANIFEST + ".tmp")
    manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, **manifest}
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())  # the chunks are fsynced; a power loss must not leave an empty manifest over them
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself
    finally:
        os.close(fd)
    return path


def read_manifest(data_dir: str | Path) -> dict:
    """Read and check `DATA_DIR/manifest.json` (does not open the chunks).

    A swap of a prepare's output into DATA_DIR that a kill left half done is finished first (`steel.data.swap`).
    """
    from steel.data.swap import JOURNAL, finish_swap

    path = Path(data_dir) / MANIFEST
    finish_swap(data_dir)
    try:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            # NOTE: a prepare's swap began after the first look: the output it leaves. It may have ended by now too
            # (its journal gone, the new manifest in): read that, not the error of a look in between.
            if not (Path(data_dir) / JOURNAL).exists() and not path.exists():
                raise
            finish_swap(data_dir)
            text = path.read_text(encoding="utf-8")
        manifest = json.loads(text)
    except OSError as e:
        raise ChunkFormatError(f"{path}: cannot read manifest ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise ChunkFormatError(f"{path}: invalid JSON ({e})") from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ChunkFormatError(f"{path}: not a Steel data manifest")
    if manifest.get("version") != MANIFEST_VERSION:
        raise ChunkFormatError(f"{path}: manifest version {manifest.get('version')}, expected {MANIFEST_VERSION}")
    for key in ("total_tokens", "chunks", "tokenizer", "sources"):
        if key not in manifest:
            raise ChunkFormatError(f"{path}: missing field {key!r}")
    return manifest


def read_documents(data_dir: str | Path, manifest: dict) -> np.ndarray | None:
    """`DATA_DIR/documents.npy` checked against the manifest (token sums per source); None when absent."""
    path = Path(data_dir) / DOCUMENTS
    if not path.exists():
        return None
    try:
        docs = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ChunkFormatError(f"{path}: unreadable ({e})") from None
    if docs.dtype != DOCUMENTS_DTYPE or docs.ndim != 1:
        raise ChunkFormatError(f"{path}: dtype {docs.dtype}, expected {DOCUMENTS_DTYPE}")
    names = list(manifest["sources"])
    if len(docs) and int(docs["source"].max()) >= len(names):
        raise ChunkFormatError(f"{path}: source index {int(docs['source'].max())} but {len(names)} sources")
    for k, name in enumerate(names):
        want = sum(c["tokens"] for c in manifest["chunks"] if c.get("source") == name)
        got = int(docs["tokens"][docs["source"] == k].sum(dtype=np.uint64))
        if got != want:
            raise ChunkFormatError(f"{path}: source {name!r} has {got} document tokens, its chunks {want}")
    return docs


def check_headers(data_dir: str | Path, tokenizer: dict, chunks: list[tuple[Path, int]]) -> None:
    """Raise ChunkFormatError for the first chunk (path, manifest token count) whose header disagrees with
    `data_dir`'s manifest: token count, tokenizer fingerprint (headers keep its first 64 ASCII characters) or
    vocabulary size; names the file. Reads 128 bytes per chunk (8 threads: cheap on local disks, hides
    latency on network file systems). Used by the training loader and by `eval ppl`."""
    if not chunks:
        return
    fp = tokenizer.get("fingerprint")
    fp = None if fp is None else str(fp).encode("ascii", "replace")[:64].decode("ascii")
    vocab = tokenizer.get("vocab_size")
    man = Path(data_dir) / MANIFEST

    def check(chunk: tuple[Path, int]) -> str | None:
        path, tokens = chunk
        try:
            h = read_header(path)
        except ChunkFormatError as e:
            return str(e)
        if h.num_tokens != tokens:
            return f"{path}: the chunk header says {h.num_tokens} tokens, {man} says {tokens}"
        if fp is not None and h.fingerprint != fp:
            return f"{path}: the chunk header's tokenizer fingerprint {h.fingerprint!r} differs from {man}'s {fp!r}"
        if vocab is not None and h.vocab_size != int(vocab):
            return f"{path}: the chunk header says vocab size {h.vocab_size}, {man} says {vocab}"
        return None

    if len(chunks) > 1:
        with ThreadPoolExecutor(min(8, len(chunks))) as pool:
            errors = list(pool.map(check, chunks))
    else:
        errors = [check(chunks[0])]
    for e in errors:
        if e is not None:
            raise ChunkFormatError(e)
