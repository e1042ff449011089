"""The OSDP Secure Channel codec on its own: the handshake's checks, and bad input inside a
session (forged MACs, wrong security blocks, broken encrypted data). Interop with a real
reader is in test_osdp_libosdp.py; the reader side here is computed with `cryptography`
directly from the formulas of IEC 60839-11-5 annex D, not with our session code."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hearthgate.drivers.osdp_codec import Command, OSDPError, OSDPPacket, Reply, decode_packet
from hearthgate.drivers.osdp_secure_codec import (
    REPLY_CCRYPT,
    REPLY_RMAC_I,
    SCBK_D,
    SecureSession,
)

KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
CP_RANDOM = bytes.fromhex("b0b1b2b3b4b5b6b7")
PD_RANDOM = bytes.fromhex("a0a1a2a3a4a5a6a7")


def ecb(key: bytes, block: bytes) -> bytes:
    e = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return e.update(block) + e.finalize()


def reader_replies(key: bytes) -> tuple[OSDPPacket, OSDPPacket]:
    """CCRYPT and RMAC_I as a reader holding `key` computes them."""
    s_enc = ecb(key, b"\x01\x82" + CP_RANDOM[:6] + bytes(8))
    s_mac1 = ecb(key, b"\x01\x01" + CP_RANDOM[:6] + bytes(8))
    s_mac2 = ecb(key, b"\x01\x02" + CP_RANDOM[:6] + bytes(8))
    ccrypt = OSDPPacket(1, REPLY_CCRYPT, bytes(8) + PD_RANDOM + ecb(s_enc, CP_RANDOM + PD_RANDOM),
                        1, reply=True, scb=b"\x03\x12\x01")
    server = ecb(s_enc, PD_RANDOM + CP_RANDOM)
    rmac = OSDPPacket(1, REPLY_RMAC_I, ecb(s_mac2, ecb(s_mac1, server)), 2, reply=True,
                      scb=b"\x03\x14\x01")
    return ccrypt, rmac


def session(key: bytes = KEY) -> SecureSession:
    s = SecureSession(key, random=lambda n: CP_RANDOM)
    ccrypt, rmac = reader_replies(key)
    assert s.challenge(1, 1).encode()[5:8] == b"\x03\x11\x01"
    s.accept_ccrypt(ccrypt)
    s.scrypt(1, 2)
    s.accept_rmac_i(rmac)
    assert s.active
    return s


def test_the_handshake_checks_the_readers_cryptograms() -> None:
    session()
    other = SecureSession(bytes(16), random=lambda n: CP_RANDOM)
    with pytest.raises(OSDPError, match="another key"):
        other.accept_ccrypt(reader_replies(KEY)[0])
    s = SecureSession(KEY, random=lambda n: CP_RANDOM)
    s.accept_ccrypt(reader_replies(KEY)[0])
    bad_rmac = reader_replies(bytes(16))[1]
    with pytest.raises(OSDPError, match="R-MAC"):
        s.accept_rmac_i(bad_rmac)
    assert SecureSession(SCBK_D).key_type == 0 and SecureSession(KEY).key_type == 1


def test_sealed_commands_carry_scb_and_mac() -> None:
    s = session()
    poll = decode_packet(s.seal(OSDPPacket(1, Command.POLL, sequence=3)))
    assert (poll.scb, len(poll.mac), poll.data) == (b"\x02\x15", 4, b"")
    ident = decode_packet(s.seal(OSDPPacket(1, Command.ID, b"\x00", sequence=1)))
    assert ident.scb == b"\x02\x17" and len(ident.data) == 16  # encrypted and padded


def test_a_forged_reply_inside_the_session_is_refused() -> None:
    s = session()
    s.seal(OSDPPacket(1, Command.POLL, sequence=3))
    forged = OSDPPacket(1, Reply.RAW, bytes(16), 3, reply=True, scb=b"\x02\x18",
                        mac=b"\xde\xad\xbe\xef")
    with pytest.raises(OSDPError, match="MAC"):
        s.open(forged)
    plain = OSDPPacket(1, Reply.ACK, sequence=3, reply=True)
    with pytest.raises(OSDPError, match="without SCS_16"):
        s.open(plain)
    with pytest.raises(OSDPError, match="no secure session"):
        SecureSession(KEY).open(forged)


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=64), st.sampled_from([b"\x02\x16", b"\x02\x18", b"\x02\x15"]),
       st.binary(min_size=4, max_size=4))
def test_garbage_replies_only_ever_raise_the_codec_error(
    data: bytes, scb: bytes, mac: bytes
) -> None:
    s = session()
    s.seal(OSDPPacket(1, Command.POLL, sequence=1))
    try:
        s.open(OSDPPacket(1, Reply.RAW, data, 1, reply=True, scb=scb, mac=mac))
    except OSDPError:
        pass
