"""The OSDP Secure Channel, control panel side (sans-I/O): the SCS_11–SCS_14 handshake, then
MAC'd and encrypted packets (SCS_15–SCS_18), per IEC 60839-11-5 / OSDP 2.2 annex D.

What is hand-written here and why: there is no maintained Python OSDP control-panel library
(libosdp's Python binding wraps its C control panel, which owns the serial line itself and
cannot sit on our `SerialBus`), so the session's bookkeeping — which bytes are MAC'd, the IV
chaining, the padding — is written here, following libosdp's `src/osdp_sc.c` and
`src/osdp_phy.c` (the reference the tests run against). The cipher is not: every AES-128
operation is `cryptography`'s. That package is the optional extra `osdp-secure` (PyPI has no
armv7l wheel of its dependency `cffi`, so a 32-bit Pi may lack it): it is imported when a
session computes, never at import time, so the gateway runs without it for every reader that
has no `scbk`. `unavailable()` says whether it can be imported here (`hearthgate check`
refuses an `scbk` when it cannot); without it a session raises `OSDPError("security", …)`.

    session keys   S-ENC  = AES-ECB(SCBK, 01 82 RND.A[0:6] 00×8)
                   S-MAC1 = AES-ECB(SCBK, 01 01 RND.A[0:6] 00×8)
                   S-MAC2 = AES-ECB(SCBK, 01 02 RND.A[0:6] 00×8)
    CHLNG (76)     SCB 03 11 k, data RND.A (8, the CP's random)
    CCRYPT (76)    SCB 03 12 k, data cUID (8), RND.B (8), client cryptogram (16)
                   client cryptogram = AES-ECB(S-ENC, RND.A ‖ RND.B)
    SCRYPT (77)    SCB 03 13 k, data server cryptogram = AES-ECB(S-ENC, RND.B ‖ RND.A)
    RMAC_I (78)    SCB 03 14 01, data R-MAC-I = AES-ECB(S-MAC2, AES-ECB(S-MAC1, server crypt.))

`k` is 1 for a reader's own SCBK, 0 for SCBK-D (`30 31 … 3F`, install mode). Afterwards a
command carries SCB `02 15` (no data) or `02 17` (data encrypted), a reply `02 16`/`02 18`;
each ends in the first 4 bytes of a MAC over the packet from SOM to the end of its (encrypted)
data: AES-CBC with S-MAC1 over every block but the last, S-MAC2 for the last, the data
padded with 80 00… unless a whole number of blocks, the IV the other side's last MAC (R-MAC
for a command, C-MAC for a reply; R-MAC-I starts the chain). Data is AES-CBC with S-ENC,
padded with 80 00… always, the IV the complement of that same last MAC.

Every fault raises `OSDPError` (the OSDP codec's one error type).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from hearthgate.drivers.osdp_codec import OSDPError, OSDPPacket, encode_packet

SCBK_D = bytes(range(0x30, 0x40))  # the default key of a reader in install mode

CMD_CHLNG = 0x76
CMD_SCRYPT = 0x77
REPLY_CCRYPT = 0x76
REPLY_RMAC_I = 0x78

SCS_11, SCS_12, SCS_13, SCS_14 = 0x11, 0x12, 0x13, 0x14
SCS_15, SCS_16, SCS_17, SCS_18 = 0x15, 0x16, 0x17, 0x18
SECURE_TYPES = frozenset(range(SCS_11, SCS_18 + 1))
_EOM = 0x80  # end-of-message marker before zero padding
MAC_LEN = 4  # bytes of the 16-byte MAC a packet carries


# What to install when `cryptography` is missing (messages and hints quote it).
EXTRA = "osdp-secure"
INSTALL_EXTRA = f"pip install 'hearthgate[{EXTRA}]'"


def unavailable() -> str | None:
    """Why the secure channel cannot run in this Python, or None when it can.

    Imports the very module the cipher comes from, not just the `cryptography` package: a
    wheel for another architecture or a broken install fails on its compiled part."""
    try:
        _import_ciphers()
    except ImportError as exc:
        return f"'cryptography' (the extra {EXTRA}) cannot be imported: {exc}"
    return None


def _import_ciphers() -> ModuleType:
    # Not cached: the import system already is, and a test can make it fail in-process.
    from cryptography.hazmat.primitives import ciphers

    return ciphers


def _ciphers() -> ModuleType:
    try:
        return _import_ciphers()
    except ImportError:
        raise OSDPError("security", f"{unavailable()}; {INSTALL_EXTRA}") from None


def _ecb(key: bytes, block: bytes) -> bytes:
    c = _ciphers()
    encryptor = c.Cipher(c.algorithms.AES(key), c.modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _cbc(key: bytes, iv: bytes, data: bytes, *, decrypt: bool = False) -> bytes:
    c = _ciphers()
    cipher = c.Cipher(c.algorithms.AES(key), c.modes.CBC(iv))
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    return op.update(data) + op.finalize()


def _pad(data: bytes) -> bytes:
    padded = data + bytes([_EOM])
    return padded + bytes(-len(padded) % 16)


def _complement(block: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in block)


@dataclass(frozen=True, slots=True)
class SessionKeys:
    enc: bytes
    mac1: bytes
    mac2: bytes

    @classmethod
    def derive(cls, scbk: bytes, cp_random: bytes) -> SessionKeys:
        def key(prefix: bytes) -> bytes:
            return _ecb(scbk, prefix + cp_random[:6] + bytes(8))

        return cls(key(b"\x01\x82"), key(b"\x01\x01"), key(b"\x01\x02"))


class SecureSession:
    """One reader's secure channel as the control panel keeps it.

    Args:
        scbk: The reader's 16-byte Secure Channel Base Key, or `SCBK_D` (install mode).
        random: Where the CP's 8 random bytes come from (tests may pin it).

    Use: send `challenge()`, hand the CCRYPT reply to `accept_ccrypt`, send `scrypt()`, hand
    the RMAC_I reply to `accept_rmac_i`; then `active` is True and every command goes out
    through `seal` and every reply comes in through `open`. Any fault raises `OSDPError`
    and the session must be started again (a new `SecureSession`).
    """

    def __init__(self, scbk: bytes, random: Callable[[int], bytes] = os.urandom) -> None:
        if len(scbk) != 16:
            raise OSDPError("security", f"an SCBK is 16 bytes, got {len(scbk)}")
        self.scbk = scbk
        self.key_type = 0 if scbk == SCBK_D else 1
        self.cp_random = random(8)
        self.pd_random = b""
        self.client_uid = b""
        self.keys = SessionKeys.derive(scbk, self.cp_random)
        self.c_mac = b""  # the MAC of the last command sent
        self.r_mac = b""  # the MAC of the last reply accepted (R-MAC-I at first)
        self._server_cryptogram = b""
        self.active = False

    # -- handshake ------------------------------------------------------------------------

    def challenge(self, address: int, sequence: int, use_crc: bool = True) -> OSDPPacket:
        """osdp_CHLNG (SCS_11)."""
        return OSDPPacket(address, CMD_CHLNG, self.cp_random, sequence, use_crc=use_crc,
                          scb=bytes([3, SCS_11, self.key_type]))

    def accept_ccrypt(self, reply: OSDPPacket) -> None:
        """osdp_CCRYPT (SCS_12): check the reader knows the key (its cryptogram)."""
        _expect(reply, REPLY_CCRYPT, SCS_12, 32)
        self.client_uid, self.pd_random = reply.data[:8], reply.data[8:16]
        expected = _ecb(self.keys.enc, self.cp_random + self.pd_random)
        if reply.data[16:32] != expected:
            raise OSDPError(
                "security", "the reader's cryptogram is wrong: it holds another key (SCBK)"
            )
        self._server_cryptogram = _ecb(self.keys.enc, self.pd_random + self.cp_random)

    def scrypt(self, address: int, sequence: int, use_crc: bool = True) -> OSDPPacket:
        """osdp_SCRYPT (SCS_13)."""
        if not self._server_cryptogram:
            raise OSDPError("security", "SCRYPT before the reader's CCRYPT")
        return OSDPPacket(address, CMD_SCRYPT, self._server_cryptogram, sequence,
                          use_crc=use_crc, scb=bytes([3, SCS_13, self.key_type]))

    def accept_rmac_i(self, reply: OSDPPacket) -> None:
        """osdp_RMAC_I (SCS_14): the initial R-MAC; the session is active from here."""
        _expect(reply, REPLY_RMAC_I, SCS_14, 16)
        expected = _ecb(self.keys.mac2, _ecb(self.keys.mac1, self._server_cryptogram))
        if reply.data != expected:
            raise OSDPError("security", "the reader's initial R-MAC is wrong")
        self.r_mac = bytes(reply.data)
        self.active = True

    # -- secure messaging -----------------------------------------------------------------

    def _mac(self, iv: bytes, message: bytes) -> bytes:
        blocks = message if message and len(message) % 16 == 0 else _pad(message)
        head, last = blocks[:-16], blocks[-16:]
        if head:
            iv = _cbc(self.keys.mac1, iv, head)[-16:]
        return _ecb(self.keys.mac2, bytes(a ^ b for a, b in zip(last, iv, strict=True)))

    def seal(self, command: OSDPPacket) -> bytes:
        """A plain command as it goes on the wire in this session: SCS_15/SCS_17, its data
        encrypted, its MAC appended."""
        if not self.active:
            raise OSDPError("security", "no secure session")
        data = command.data
        if data:
            data = _cbc(self.keys.enc, _complement(self.r_mac), _pad(data))
        scb = bytes([2, SCS_17 if command.data else SCS_15])
        # The MAC covers the packet as sent, LEN included (which counts the MAC and check).
        draft = OSDPPacket(command.address, command.code, data, command.sequence,
                           use_crc=command.use_crc, scb=scb, mac=bytes(MAC_LEN))
        raw = encode_packet(draft)
        check = 2 if command.use_crc else 1
        self.c_mac = self._mac(self.r_mac, raw[: -(MAC_LEN + check)])
        return encode_packet(
            OSDPPacket(command.address, command.code, data, command.sequence,
                       use_crc=command.use_crc, scb=scb, mac=self.c_mac[:MAC_LEN])
        )

    def open(self, reply: OSDPPacket) -> OSDPPacket:
        """A reply received in this session, checked and decrypted: the plain packet.
        Raises `OSDPError` for a reply without a valid security block or MAC."""
        if not self.active:
            raise OSDPError("security", "no secure session")
        if reply.scb_type not in (SCS_16, SCS_18):
            raise OSDPError("security", "a reply without SCS_16/SCS_18 inside the secure channel")
        raw = encode_packet(reply)
        check = 2 if reply.use_crc else 1
        mac = self._mac(self.c_mac, raw[: -(MAC_LEN + check)])
        if reply.mac != mac[:MAC_LEN]:
            raise OSDPError("security", "MAC does not verify (forged or damaged reply)")
        data = reply.data
        if reply.scb_type == SCS_18:
            if not data or len(data) % 16:
                raise OSDPError("security", f"encrypted data of {len(data)} bytes")
            plain = _cbc(self.keys.enc, _complement(self.c_mac), data, decrypt=True)
            body = plain.rstrip(b"\0")
            if not body or body[-1] != _EOM:
                raise OSDPError("security", "decrypted data lacks its end marker")
            data = body[:-1]
        self.r_mac = mac
        return OSDPPacket(reply.address, reply.code, data, reply.sequence, reply=True,
                          use_crc=reply.use_crc)


def _expect(reply: OSDPPacket, code: int, scs: int, length: int) -> None:
    if reply.code != code or reply.scb_type != scs:
        raise OSDPError(
            "security",
            f"expected reply {code:02X} with SCS_{scs:02X}, got {reply.code:02X} "
            f"with {'no security block' if reply.scb is None else f'SCS_{reply.scb_type:02X}'}",
        )
    if len(reply.data) != length:
        raise OSDPError("security", f"SCS_{scs:02X} reply with {len(reply.data)} data bytes")


def is_secure(packet: OSDPPacket) -> bool:
    """Whether a packet carries a secure-channel block at all."""
    return packet.scb is not None


__all__ = [
    "CMD_CHLNG", "CMD_SCRYPT", "EXTRA", "INSTALL_EXTRA", "REPLY_CCRYPT", "REPLY_RMAC_I",
    "SCBK_D", "SECURE_TYPES", "SecureSession", "SessionKeys", "is_secure", "unavailable",
]
