"""The simulator's end of a serial line: a pseudo-terminal, or any pyserial port/URL.

`PtyLink` creates a pseudo-terminal; a `serial` bus opens `link.path` (the slave, or a
symlink to it, as udev makes /dev/serial/by-id/...). `unplug()` closes it the way a
pulled USB adapter vanishes; `plug()` makes a new one behind the same symlink.
Pseudo-terminals refuse even parity on this kernel, so buses on them use `parity: N`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from pathlib import Path
from typing import Protocol


class Link(Protocol):
    path: str

    async def read(self) -> bytes:
        """The next chunk of bytes from the bus side; waits for one."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class PtyLink:
    """A pseudo-terminal; the simulator reads and writes its master side."""

    def __init__(self, symlink: str | Path | None = None) -> None:
        self.symlink = Path(symlink) if symlink is not None else None
        self._master = -1
        self._slave = -1
        self.slave_name = ""
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.plug()

    @property
    def path(self) -> str:
        return str(self.symlink) if self.symlink is not None else self.slave_name

    @property
    def plugged(self) -> bool:
        return self._master >= 0

    def plug(self) -> None:
        """Create the pseudo-terminal (again) and point the symlink at it."""
        if self.plugged:
            return
        master, slave = os.openpty()
        # Raw at once: until a bus opens the slave, echo would bounce our replies back.
        tty.setraw(slave)
        tty.setraw(master)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.slave_name = os.ttyname(slave)
        if self.symlink is not None:
            with contextlib.suppress(FileNotFoundError):
                self.symlink.unlink()
            self.symlink.symlink_to(self.slave_name)
        with contextlib.suppress(RuntimeError):
            self._attach(asyncio.get_running_loop())

    def unplug(self) -> None:
        """Close both ends: the bus side sees its port vanish, like a pulled USB adapter."""
        if not self.plugged:
            return
        if self._loop is not None:
            self._loop.remove_reader(self._master)
        os.close(self._master)
        os.close(self._slave)
        self._master = self._slave = -1
        if self.symlink is not None:
            with contextlib.suppress(FileNotFoundError):
                self.symlink.unlink()

    close = unplug

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self._master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        if data:
            self._queue.put_nowait(data)

    async def read(self) -> bytes:
        if self._loop is None and self.plugged:
            self._attach(asyncio.get_running_loop())
        return await self._queue.get()

    def write(self, data: bytes) -> None:
        if not self.plugged:
            return  # nobody is listening on an unplugged line
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._master, view)
            except OSError:
                return  # buffer full with no reader, or the line is gone: bytes are lost
            view = view[n:]


class SerialLink:
    """A real serial port or pyserial URL (socket://, rfc2217://) for bench tests."""

    def __init__(self, port: str, baudrate: int = 2400, parity: str = "N") -> None:
        self.path = port
        self.baudrate = baudrate
        self.parity = parity
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        import serial_asyncio_fast

        self._reader, self._writer = await serial_asyncio_fast.open_serial_connection(
            url=self.path, baudrate=self.baudrate, parity=self.parity
        )

    async def read(self) -> bytes:
        if self._reader is None:
            await self.open()
        assert self._reader is not None
        data = await self._reader.read(4096)
        if not data:
            raise ConnectionError(f"{self.path} closed")
        return data

    def write(self, data: bytes) -> None:
        if self._writer is not None:
            self._writer.write(data)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
