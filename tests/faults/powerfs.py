"""A test filesystem that loses, on a "power cut", every write that was not yet fsynced.

`PowerFS` mounts it (FUSE, through mfusepy and libfuse 3) on a directory and drives it from
the test: `freeze()` stops every operation where it is (nothing gets in or out), `cut()`
throws away what a power cut would, `thaw()` lets the next "boot" use the disk. The
filesystem itself runs in a child process (`python -m tests.faults.powerfs MOUNTPOINT`), so
that the gateway's I/O is not served by the test's own interpreter; it is told what to do
over its stdin, one command a line, and answers one JSON line on stdout.

What is kept in memory, and what a cut does to it:

- **File contents.** Each file has the content it had at its last `fsync`/`fdatasync` (its
  synced image) and the log of writes and truncations since. A cut returns each file to its
  synced image. With `torn=True` it keeps a random prefix of the log instead, and the write at
  the end of that prefix may itself be torn: only its first k 512-byte sectors (k random) reach
  the disk. Real power loss can keep some unsynced writes or tear a write at a sector; what
  it cannot do, and neither does this model, is change bytes nobody wrote (SQLite's
  "powersafe overwrite" assumption) or lose a write that was fsynced.
- **Directory entries.** Creating, unlinking and renaming change a directory's entries; only
  an fsync of the directory itself (`fsyncdir`, which SQLite does after the first sync of a
  WAL or journal it has just created) makes them durable. A file created in a directory that
  was never fsynced afterwards disappears on a cut — however often the file itself was
  fsynced — and a file unlinked that way comes back, with its synced content. This is the
  strict POSIX reading; ext4 with its journal often keeps such an entry anyway, so a program
  that survives this model survives the kinder ones. With `torn=True`, a random prefix of each
  directory's unsynced changes is kept.
- **Metadata** (modes, times) is not modelled: it is kept as it is. Locks are the kernel's
  (the filesystem implements none, so POSIX locks work between the processes of this
  machine, as SQLite needs).

The kernel is told to cache nothing (attributes and entries time out at once, every open
drops the page cache), so that what a process reads after a cut is what the cut left.
"""

from __future__ import annotations

import errno
import json
import os
import random
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

SECTOR = 512


@dataclass
class _Node:
    """One inode: a file's current content, synced image and unsynced log, or a directory's
    current and synced entries and unsynced changes."""

    ino: int
    mode: int
    data: bytearray = field(default_factory=bytearray)
    synced: bytes = b""
    # ("w", offset, data) | ("t", size, b"")
    log: list[tuple[str, int, bytes]] = field(default_factory=list)
    entries: dict[str, int] = field(default_factory=dict)
    synced_entries: dict[str, int] = field(default_factory=dict)
    # ("link" | "unlink", name, inode)
    dir_log: list[tuple[str, str, int]] = field(default_factory=list)
    atime: int = field(default_factory=time.time_ns)
    mtime: int = field(default_factory=time.time_ns)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


def _apply(buf: bytearray, op: tuple[str, int, bytes]) -> None:
    kind, arg, data = op
    if kind == "w":
        if len(buf) < arg:
            buf.extend(bytes(arg - len(buf)))
        buf[arg:arg + len(data)] = data
    else:
        del buf[arg:]
        if len(buf) < arg:
            buf.extend(bytes(arg - len(buf)))


def _torn(op: tuple[str, int, bytes], rng: random.Random) -> tuple[str, int, bytes] | None:
    """The first k sectors of a write (k random, possibly none); a truncation is atomic."""
    kind, off, data = op
    if kind != "w":
        return op if rng.random() < 0.5 else None
    ends = [e for e in range((off // SECTOR + 1) * SECTOR, off + len(data), SECTOR)]
    ends.append(off + len(data))
    keep = rng.randint(0, len(ends))
    return None if keep == 0 else (kind, off, data[: ends[keep - 1] - off])


class PowerLossModel:
    """The filesystem's state and the operations on it, without FUSE: what `cut` keeps is
    decided here (and tested on its own in test_powerfs.py)."""

    def __init__(self) -> None:
        self.nodes: dict[int, _Node] = {1: _Node(1, stat.S_IFDIR | 0o755)}
        self._next = 2
        self.fsyncs = 0
        self.dir_fsyncs = 0

    # -- names ------------------------------------------------------------------

    def lookup(self, path: str) -> _Node:
        node = self.nodes[1]
        for part in [p for p in path.split("/") if p]:
            if not node.is_dir or part not in node.entries:
                raise OSError(errno.ENOENT, path)
            node = self.nodes[node.entries[part]]
        return node

    def _parent(self, path: str) -> tuple[_Node, str]:
        head, _, name = path.rstrip("/").rpartition("/")
        parent = self.lookup(head or "/")
        if not parent.is_dir:
            raise OSError(errno.ENOTDIR, path)
        return parent, name

    def _link(self, parent: _Node, name: str, ino: int) -> None:
        parent.entries[name] = ino
        parent.dir_log.append(("link", name, ino))
        parent.mtime = time.time_ns()

    def _unlink(self, parent: _Node, name: str) -> None:
        del parent.entries[name]
        parent.dir_log.append(("unlink", name, 0))
        parent.mtime = time.time_ns()

    def create(self, path: str, mode: int) -> _Node:
        parent, name = self._parent(path)
        if name in parent.entries:
            raise OSError(errno.EEXIST, path)
        node = _Node(self._next, mode)
        self._next += 1
        self.nodes[node.ino] = node
        self._link(parent, name, node.ino)
        return node

    def unlink(self, path: str, *, directory: bool = False) -> None:
        parent, name = self._parent(path)
        node = self.lookup(path)
        if directory and node.entries:
            raise OSError(errno.ENOTEMPTY, path)
        if directory != node.is_dir:
            raise OSError(errno.EISDIR if node.is_dir else errno.ENOTDIR, path)
        self._unlink(parent, name)

    def rename(self, old: str, new: str) -> None:
        src_parent, src_name = self._parent(old)
        node = self.lookup(old)
        dst_parent, dst_name = self._parent(new)
        if dst_name in dst_parent.entries:
            self._unlink(dst_parent, dst_name)
        self._unlink(src_parent, src_name)
        self._link(dst_parent, dst_name, node.ino)

    # -- contents ---------------------------------------------------------------

    def write(self, node: _Node, data: bytes, offset: int) -> int:
        op = ("w", offset, bytes(data))
        _apply(node.data, op)
        node.log.append(op)
        node.mtime = time.time_ns()
        return len(data)

    def truncate(self, node: _Node, size: int) -> None:
        op = ("t", size, b"")
        _apply(node.data, op)
        node.log.append(op)
        node.mtime = time.time_ns()

    def fsync(self, node: _Node) -> None:
        self.fsyncs += 1
        if node.is_dir:
            self.fsync_dir(node)
            return
        node.synced = bytes(node.data)
        node.log.clear()

    def fsync_dir(self, node: _Node) -> None:
        self.dir_fsyncs += 1
        node.synced_entries = dict(node.entries)
        node.dir_log.clear()

    # -- the cut ----------------------------------------------------------------

    def cut(self, rng: random.Random, *, torn: bool) -> dict[str, int]:
        """Power is gone: every file and directory back to what was synced (with `torn`, plus a
        random prefix of what was not). What was lost, counted."""
        lost = {"writes_lost": 0, "bytes_lost": 0, "writes_kept": 0, "torn_writes": 0,
                "entries_lost": 0, "files_reverted": 0}
        for node in self.nodes.values():
            if node.is_dir:
                keep = rng.randint(0, len(node.dir_log)) if torn else 0
                entries = dict(node.synced_entries)
                for kind, name, ino in node.dir_log[:keep]:
                    if kind == "link":
                        entries[name] = ino
                    else:
                        entries.pop(name, None)
                lost["entries_lost"] += len(node.dir_log) - keep
                node.entries = entries
                node.synced_entries = dict(entries)
                node.dir_log.clear()
                continue
            if not node.log:
                continue
            keep = rng.randint(0, len(node.log)) if torn else 0
            buf = bytearray(node.synced)
            for op in node.log[:keep]:
                _apply(buf, op)
            if torn and keep < len(node.log):
                part = _torn(node.log[keep], rng)
                if part is not None:
                    _apply(buf, part)
                    lost["torn_writes"] += 1
            lost["writes_kept"] += keep
            lost["writes_lost"] += len(node.log) - keep
            lost["bytes_lost"] += sum(len(d) for _, _, d in node.log[keep:])
            lost["files_reverted"] += 1
            node.data = buf
            node.synced = bytes(buf)
            node.log.clear()
        self._collect()
        return lost

    def _collect(self) -> None:
        """Forget the inodes no directory names any more (open handles die with the cut)."""
        seen = {1}
        todo = [1]
        while todo:
            for ino in self.nodes[todo.pop()].entries.values():
                if ino not in seen and ino in self.nodes:
                    seen.add(ino)
                    if self.nodes[ino].is_dir:
                        todo.append(ino)
        for ino in set(self.nodes) - seen:
            del self.nodes[ino]


def _serve(mountpoint: str) -> None:
    """The child process: mount, obey commands from stdin until it closes, then unmount."""
    import mfusepy as fuse

    model = PowerLossModel()
    cond = threading.Condition()
    state = {"mode": "live"}

    def gate() -> None:
        # Called with `cond` held: wait while frozen; after a cut, refuse until thawed
        # (the process that was killed must not write anything on its way out).
        while state["mode"] == "frozen":
            cond.wait()
        if state["mode"] == "dead":
            raise fuse.FuseOSError(errno.EIO)

    def op(fn: Any) -> Any:
        def wrapped(self: Any, *args: Any) -> Any:
            with cond:
                gate()
                try:
                    return fn(self, *args)
                except OSError as exc:
                    raise fuse.FuseOSError(exc.errno or errno.EIO) from None
                except KeyError:
                    raise fuse.FuseOSError(errno.EBADF) from None
        return wrapped

    class Ops(fuse.Operations):
        """The FUSE side of `PowerLossModel` (file handles are inode numbers)."""

        use_ns = True  # times are integer nanoseconds

        def init(self, path: str) -> None:
            print(json.dumps({"ready": True}), flush=True)

        @op
        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            node = model.nodes[fh] if fh is not None and fh in model.nodes else model.lookup(path)
            size = len(node.data)
            return {"st_mode": node.mode, "st_ino": node.ino, "st_nlink": 2 if node.is_dir else 1,
                    "st_size": size, "st_blocks": (size + 511) // 512, "st_blksize": 4096,
                    "st_atime": node.atime, "st_mtime": node.mtime, "st_ctime": node.mtime,
                    "st_uid": os.getuid(), "st_gid": os.getgid()}

        @op
        def readdir(self, path: str, fh: int) -> list[str]:
            return [".", "..", *model.lookup(path).entries]

        @op
        def opendir(self, path: str) -> int:
            return model.lookup(path).ino

        @op
        def mkdir(self, path: str, mode: int) -> int:
            model.create(path, stat.S_IFDIR | mode)
            return 0

        @op
        def rmdir(self, path: str) -> int:
            model.unlink(path, directory=True)
            return 0

        @op
        def create(self, path: str, mode: int, fi: Any = None) -> int:
            return model.create(path, stat.S_IFREG | (mode & 0o7777)).ino

        @op
        def open(self, path: str, flags: int) -> int:
            node = model.lookup(path)
            if flags & os.O_TRUNC:
                model.truncate(node, 0)
            return node.ino

        @op
        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            return bytes(model.nodes[fh].data[offset:offset + size])

        @op
        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            return model.write(model.nodes[fh], data, offset)

        @op
        def truncate(self, path: str, length: int, fh: int | None = None) -> int:
            node = model.nodes[fh] if fh is not None else model.lookup(path)
            model.truncate(node, length)
            return 0

        @op
        def fsync(self, path: str, datasync: int, fh: int) -> int:
            model.fsync(model.nodes[fh])
            return 0

        @op
        def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
            model.fsync_dir(model.nodes[fh] if fh in model.nodes else model.lookup(path))
            return 0

        @op
        def unlink(self, path: str) -> int:
            model.unlink(path)
            return 0

        @op
        def rename(self, old: str, new: str) -> int:
            model.rename(old, new)
            return 0

        @op
        def chmod(self, path: str, mode: int) -> int:
            node = model.lookup(path)
            node.mode = (node.mode & ~0o7777) | (mode & 0o7777)
            return 0

        @op
        def chown(self, path: str, uid: int, gid: int) -> int:
            return 0

        @op
        def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
            node = model.lookup(path)
            node.atime, node.mtime = times or (time.time_ns(), time.time_ns())
            return 0

        @op
        def flush(self, path: str, fh: int) -> int:
            return 0

        @op
        def release(self, path: str, fh: int) -> int:
            return 0

        @op
        def releasedir(self, path: str, fh: int) -> int:
            return 0

        @op
        def access(self, path: str, amode: int) -> int:
            model.lookup(path)
            return 0

        def statfs(self, path: str) -> dict[str, int]:
            return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": 1 << 20, "f_bfree": 1 << 19,
                    "f_bavail": 1 << 19, "f_namemax": 255}

    def control() -> None:
        for line in sys.stdin:
            cmd = line.split()
            if not cmd:
                continue
            reply: dict[str, Any] = {"ok": True}
            with cond:
                if cmd[0] == "freeze":
                    state["mode"] = "frozen"
                elif cmd[0] == "cut":
                    if len(cmd) != 3 or not cmd[1].isdigit() or cmd[2] not in ("0", "1"):
                        reply = {"ok": False, "error": "usage: cut SEED 0|1"}
                    else:
                        reply.update(model.cut(random.Random(int(cmd[1])), torn=cmd[2] == "1"))
                        state["mode"] = "dead"
                elif cmd[0] == "thaw":
                    state["mode"] = "live"
                elif cmd[0] == "stats":
                    reply.update(fsyncs=model.fsyncs, dir_fsyncs=model.dir_fsyncs,
                                 files=sum(not n.is_dir for n in model.nodes.values()))
                else:
                    reply = {"ok": False, "error": f"unknown command {cmd[0]!r}"}
                cond.notify_all()
            print(json.dumps(reply), flush=True)
        # stdin closed: the test is done (or gone); unmount, which ends the FUSE loop.
        with cond:
            state["mode"] = "live"
            cond.notify_all()
        subprocess.run(["fusermount3", "-u", "-z", mountpoint], check=False)

    threading.Thread(target=control, daemon=True, name="powerfs-control").start()
    fuse.FUSE(Ops(), mountpoint, foreground=True, nothreads=False, attr_timeout=0,
              entry_timeout=0, negative_timeout=0, auto_unmount=True, fsname="powerfs")


def unusable_reason() -> str | None:
    """Why the filesystem cannot be mounted here, or None when it can."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist (no FUSE in this kernel or container)"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is not readable and writable by this user"
    from shutil import which

    if which("fusermount3") is None:
        return "fusermount3 is missing (`make test-deps` installs Debian's fuse3)"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"mfusepy cannot load libfuse: {exc} (`make test-deps` installs fuse3)"
    return None


class PowerFS:
    """The test's hand on a mounted power-loss filesystem (see the module docstring)."""

    def __init__(self, mountpoint: Path) -> None:
        self.mountpoint = mountpoint
        self.proc: subprocess.Popen[str] | None = None
        self.cuts: list[dict[str, int]] = []

    def mount(self, timeout: float = 20.0) -> PowerFS:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.powerfs", str(self.mountpoint)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            cwd=str(Path(__file__).resolve().parents[2]),
        )
        assert self.proc.stdout is not None
        reply = self._read(self.proc.stdout, timeout)
        if not reply.get("ready"):
            raise RuntimeError(f"powerfs did not mount: {reply}")
        return self

    def _read(self, out: IO[str], timeout: float) -> dict[str, Any]:
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(out.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not box or not box[0]:
            raise RuntimeError("powerfs did not answer (its process died or hangs)")
        return dict(json.loads(box[0]))

    def command(self, line: str, timeout: float = 20.0) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self._read(self.proc.stdout, timeout)
        if not reply.get("ok"):
            raise RuntimeError(f"powerfs refused {line!r}: {reply}")
        return reply

    def freeze(self) -> None:
        """Every operation from now on waits (none is half-done: they are serialised)."""
        self.command("freeze")

    def cut(self, seed: int, *, torn: bool) -> dict[str, int]:
        """Discard what was not synced; operations fail with EIO until `thaw`."""
        lost = self.command(f"cut {seed} {int(torn)}")
        self.cuts.append(lost)
        return lost

    def thaw(self) -> None:
        self.command("thaw")

    def stats(self) -> dict[str, Any]:
        return self.command("stats")

    def unmount(self) -> None:
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], check=False)
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


if __name__ == "__main__":
    _serve(sys.argv[1])
