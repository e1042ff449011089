"""Sans-I/O codecs: OSDP packets, Wiegand cards, RFLink lines — vectors, round trips, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hearthgate.drivers import wiegand
from hearthgate.drivers.osdp_codec import (
    Capability,
    Command,
    DeviceIdentity,
    InputStatus,
    LocalStatus,
    OSDPError,
    OSDPPacket,
    OSDPStreamDecoder,
    RawCardRead,
    Reply,
    checksum8,
    crc16_aug_ccitt,
    decode_capabilities,
    decode_packet,
    encode_capabilities,
    next_sequence,
)
from hearthgate.drivers.rflink_codec import (
    MAX_LINE,
    RFLinkError,
    RFLinkMatch,
    RFLinkPacket,
    RFLinkStreamDecoder,
    encode_line,
    parse_line,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# docs/protocols.md, "Door access"
POLL = bytes.fromhex("53 01 08 00 04 60 BA 00")
ACK = bytes.fromhex("53 81 08 00 04 40 08 06")
RAW = bytes.fromhex("53 81 10 00 05 50 00 01 1A 00 BD 88 EB 80 AE 20")


# --- OSDP -------------------------------------------------------------------------------


def test_crc_check_value() -> None:
    assert crc16_aug_ccitt(b"123456789") == 0xE5CC


def test_poll_byte_for_byte() -> None:
    p = decode_packet(POLL)
    assert (p.address, p.code, p.reply, p.sequence, p.use_crc, p.data) == (
        1, Command.POLL, False, 0, True, b""
    )
    assert OSDPPacket(address=1, code=Command.POLL).encode() == POLL


def test_ack_byte_for_byte() -> None:
    p = decode_packet(ACK)
    assert (p.address, p.code, p.reply, p.sequence) == (1, Reply.ACK, True, 0)
    assert OSDPPacket(address=1, code=Reply.ACK, reply=True).encode() == ACK


def test_raw_card_byte_for_byte() -> None:
    p = decode_packet(RAW)
    assert (p.address, p.code, p.reply, p.sequence) == (1, Reply.RAW, True, 1)
    raw = RawCardRead.decode(p.data)
    assert raw == RawCardRead(reader=0, format=1, bit_count=26, bits=bytes.fromhex("BD88EB80"))
    card = wiegand.decode_bytes(raw.bits, raw.bit_count)
    assert (card.format, card.facility, card.number) == ("wiegand26", 123, 4567)
    built = RawCardRead(0, 1, 26, wiegand.encode_bytes(123, 4567)).encode()
    assert OSDPPacket(address=1, code=Reply.RAW, data=built, sequence=1, reply=True).encode() == RAW


def test_checksum_variant() -> None:
    frame = OSDPPacket(address=1, code=Command.POLL, use_crc=False, sequence=2).encode()
    assert frame[:6] == bytes.fromhex("53 01 07 00 02 60")
    assert sum(frame) % 256 == 0
    assert frame[-1] == checksum8(frame[:-1])
    assert decode_packet(frame).use_crc is False
    with pytest.raises(OSDPError, match="checksum"):
        decode_packet(frame[:-1] + bytes([frame[-1] ^ 1]))


@pytest.mark.parametrize(
    "frame, message",
    [
        (POLL[:-1] + b"\x01", "CRC"),
        (POLL[:5], "too short"),
        (b"\x52" + POLL[1:], "not 53"),
        (POLL[:2] + b"\x09\x00" + POLL[4:], "LEN"),
        (POLL + b"\x00", "LEN"),
    ],
)
def test_bad_packets(frame: bytes, message: str) -> None:
    with pytest.raises(OSDPError, match=message):
        decode_packet(frame)


def test_security_block_kept_in_model() -> None:
    scb = bytes([3, 0x15, 0x01])
    p = OSDPPacket(address=5, code=Command.POLL, sequence=1, scb=scb, mac=b"\x01\x02\x03\x04")
    frame = p.encode()
    assert frame[4] & 0x08
    back = decode_packet(frame)
    assert back == p
    assert back.scb_type == 0x15
    plain = OSDPPacket(address=5, code=Command.ID, data=b"\x00", scb=bytes([2, 0x11]))
    assert decode_packet(plain.encode()) == plain
    with pytest.raises(OSDPError):
        OSDPPacket(address=5, code=1, scb=bytes([5, 0x11]))


def test_payloads() -> None:
    ident = DeviceIdentity(b"\x5c\x26\x23", 1, 2, 123456, (1, 2, 3))
    assert DeviceIdentity.decode(ident.encode()) == ident
    caps = (Capability(1, 1, 2), Capability(4, 1, 1))
    assert decode_capabilities(encode_capabilities(caps)) == caps
    assert LocalStatus.decode(b"\x01\x00") == LocalStatus(tamper=True, power_fault=False)
    assert InputStatus.decode(b"\x00\x01").inputs == (False, True)
    for bad in (b"", b"\x02", b"\x00\x00\x00"):
        with pytest.raises(OSDPError):
            LocalStatus.decode(bad)
    with pytest.raises(OSDPError):
        InputStatus.decode(b"\x07")
    with pytest.raises(OSDPError):
        RawCardRead.decode(bytes.fromhex("00 01 1A 00 BD 88"))
    with pytest.raises(OSDPError):
        decode_capabilities(b"\x01\x02")
    with pytest.raises(OSDPError):
        DeviceIdentity.decode(b"\x00" * 11)


def test_sequence_cycles() -> None:
    assert [next_sequence(s) for s in (0, 1, 2, 3)] == [1, 2, 3, 1]


def test_stream_decoder_resynchronises() -> None:
    dec = OSDPStreamDecoder()
    bad = RAW[:-1] + bytes([RAW[-1] ^ 0xFF])
    stream = b"\x00\xff" + ACK + bad + RAW
    out = []
    for i in range(0, len(stream), 3):  # dribbled in, as a UART delivers it
        out.extend(dec.feed(stream[i : i + 3]))
    packets = [x for x in out if isinstance(x, OSDPPacket)]
    errors = [x for x in out if isinstance(x, OSDPError)]
    assert [p.code for p in packets] == [Reply.ACK, Reply.RAW]
    assert len(errors) == 2  # the garbage run and the bad CRC
    assert dec.pending() == 0


packets_st = st.builds(
    OSDPPacket,
    address=st.integers(0, 0x7F),
    code=st.integers(0, 0xFF),
    data=st.binary(max_size=64),
    sequence=st.integers(0, 3),
    reply=st.booleans(),
    use_crc=st.booleans(),
)


@FUZZ
@given(packets_st)
def test_osdp_round_trip(packet: OSDPPacket) -> None:
    assert decode_packet(packet.encode()) == packet


@FUZZ
@given(st.binary(max_size=80))
def test_osdp_decode_random_bytes(data: bytes) -> None:
    try:
        decode_packet(data)
    except OSDPError:
        pass
    for item in OSDPStreamDecoder().feed(data):
        assert isinstance(item, OSDPPacket | OSDPError)


@FUZZ
@given(packets_st, st.data())
def test_osdp_mutated_packets(packet: OSDPPacket, data: st.DataObject) -> None:
    frame = bytearray(packet.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(frame) - 1))
        frame[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(frame)))
    for candidate in (bytes(frame), bytes(frame[:cut])):
        try:
            p = decode_packet(candidate)
            for decoder in (RawCardRead.decode, LocalStatus.decode, InputStatus.decode,
                            DeviceIdentity.decode, decode_capabilities):
                try:
                    decoder(p.data)
                except OSDPError:
                    pass
        except OSDPError:
            pass
        decoder_stream = OSDPStreamDecoder()
        for item in decoder_stream.feed(candidate + ACK):
            assert isinstance(item, OSDPPacket | OSDPError)


# --- Wiegand ----------------------------------------------------------------------------


def test_wiegand_example() -> None:
    card = wiegand.decode_string("10111101100010001110101110")
    assert (card.facility, card.number, card.label) == (123, 4567, "123:4567")
    assert wiegand.encode_bits(123, 4567) == int("10111101100010001110101110", 2)


def test_wiegand_parity_errors() -> None:
    good = "10111101100010001110101110"
    with pytest.raises(wiegand.WiegandError, match="even"):
        wiegand.decode_string("0" + good[1:])
    with pytest.raises(wiegand.WiegandError, match="odd"):
        wiegand.decode_string(good[:-1] + "1")
    with pytest.raises(wiegand.WiegandError, match="length"):
        wiegand.decode_string(good[:-1])
    with pytest.raises(wiegand.WiegandError):
        wiegand.decode_string("10x")
    with pytest.raises(wiegand.WiegandError):
        wiegand.decode_bytes(b"\xbd", 26)
    with pytest.raises(wiegand.WiegandError):
        wiegand.encode_bits(256, 1)


def test_wiegand_34() -> None:
    bits = wiegand.encode_bits(40000, 65535, 34)
    card = wiegand.decode_bits(bits, 34)
    assert (card.format, card.facility, card.number) == ("wiegand34", 40000, 65535)
    assert wiegand.decode_bytes(wiegand.encode_bytes(1, 2, 34), 34).number == 2


@FUZZ
@given(st.sampled_from([26, 34]), st.data())
def test_wiegand_round_trip_and_single_bit_flips(bit_count: int, data: st.DataObject) -> None:
    fmt = wiegand.FORMATS[bit_count]
    fac = data.draw(st.integers(0, (1 << fmt.facility_bits) - 1))
    num = data.draw(st.integers(0, (1 << fmt.number_bits) - 1))
    bits = wiegand.encode_bits(fac, num, bit_count)
    assert wiegand.decode_bits(bits, bit_count) == wiegand.WiegandCard(fmt.name, fac, num)
    flip = data.draw(st.integers(0, bit_count - 1))
    with pytest.raises(wiegand.WiegandError):  # parity catches every single-bit error
        wiegand.decode_bits(bits ^ (1 << flip), bit_count)


@FUZZ
@given(st.integers(0, 1 << 40), st.integers(0, 64))
def test_wiegand_random(value: int, bit_count: int) -> None:
    try:
        wiegand.decode_bits(value, bit_count)
    except wiegand.WiegandError:
        pass


# --- RFLink -----------------------------------------------------------------------------


def test_rflink_line() -> None:
    p = parse_line(b"20;45;EV1527;ID=295FD59;SWITCH=3;CMD=ON;\r\n")
    assert (p.counter, p.protocol) == (0x45, "EV1527")
    assert p.fields == {"ID": "295FD59", "SWITCH": "3", "CMD": "ON"}
    assert encode_line(p) == b"20;45;EV1527;ID=295FD59;SWITCH=3;CMD=ON;\r\n"
    banner = parse_line("20;00;Nodo RadioFrequencyLink - RFLink Gateway V1.1 - R46;")
    assert banner.fields == {}


@pytest.mark.parametrize(
    "line",
    [
        b"20;45;EV1527;ID=295FD59;SWI",  # cut short
        b"10;45;EV1527;ID=295FD59;",  # a command echo, not a receiver line
        b"20;ZZ;EV1527;ID=1;",
        b"20;45;",
        b"20;45;EV1527;IDX;",
        b"20;45;EV1527;ID=1\x00;",
        b"20;45;\xff\xfe;ID=1;",
        b"20;45;EV1527;ID=1;" + b"A=B;" * 300,  # over 1 KiB
        b"20;45;ID=3;",
    ],
)
def test_rflink_bad_lines(line: bytes) -> None:
    with pytest.raises(RFLinkError):
        parse_line(line)


def test_rflink_match() -> None:
    m = RFLinkMatch.parse("EV1527;ID=0x5a3c1")
    assert m.matches(parse_line("20;01;EV1527;ID=05A3C1;SWITCH=1;CMD=ON;"))
    assert m.matches(parse_line("20;01;ev1527;ID=5a3c1;SWITCH=2;CMD=OFF;"))
    assert not m.matches(parse_line("20;01;EV1527;ID=5a3c2;SWITCH=1;CMD=ON;"))
    assert not m.matches(parse_line("20;01;Kaku;ID=5a3c1;SWITCH=1;CMD=ON;"))
    assert not m.matches(parse_line("20;01;EV1527;SWITCH=1;CMD=ON;"))
    sw = RFLinkMatch.parse("EV1527;ID=5A3C1;SWITCH=03;CMD=on")
    assert (sw.switch, sw.cmd) == ("03", "ON")
    assert sw.matches(parse_line("20;01;EV1527;ID=5a3c1;SWITCH=3;CMD=ON;"))
    assert not sw.matches(parse_line("20;01;EV1527;ID=5a3c1;SWITCH=3;CMD=OFF;"))
    assert not sw.matches(parse_line("20;01;EV1527;ID=5a3c1;SWITCH=4;CMD=ON;"))
    assert RFLinkMatch.parse(sw.describe()) == sw
    for bad in ("", "ID=1", "EV1527", "EV1527;ID=zz", "EV1527;ID=1;FOO=2", "EV1527;ID=1;ID=2"):
        with pytest.raises(RFLinkError):
            RFLinkMatch.parse(bad)


def test_rflink_stream_decoder() -> None:
    sp = RFLinkStreamDecoder()
    good = b"20;01;EV1527;ID=1;CMD=ON;\r\n"
    out = list(sp.feed(good[:10])) + list(sp.feed(good[10:] + b"\r\n"))
    assert out == [parse_line(good.rstrip())]
    out = list(sp.feed(b"x" * (MAX_LINE + 10)))
    out += list(sp.feed(b"y" * 100 + b"\n" + good))
    assert isinstance(out[0], RFLinkError)
    assert out[1:] == [parse_line(good.rstrip())]


pairs_st = st.dictionaries(
    st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9.\-]{0,10}", fullmatch=True),
    max_size=6,
)


@FUZZ
@given(st.integers(0, 255), st.from_regex(r"[A-Za-z][A-Za-z0-9 ]{0,15}", fullmatch=True), pairs_st)
def test_rflink_round_trip(counter: int, protocol: str, fields: dict[str, str]) -> None:
    protocol = protocol.strip() or "X"
    kind = "device" if "ID" in fields else "status"  # a radio packet carries an ID
    packet = RFLinkPacket(counter=counter, protocol=protocol, fields=fields, kind=kind)
    assert parse_line(encode_line(packet)) == packet


@FUZZ
@given(st.binary(max_size=600))
def test_rflink_random_bytes(data: bytes) -> None:
    try:
        parse_line(data)
    except RFLinkError:
        pass
    for item in RFLinkStreamDecoder().feed(data):
        assert isinstance(item, RFLinkPacket | RFLinkError)


@FUZZ
@given(st.data())
def test_rflink_mutated_lines(data: st.DataObject) -> None:
    line = bytearray(b"20;45;EV1527;ID=295FD59;SWITCH=3;CMD=ON;")
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(line) - 1))
        line[i] = data.draw(st.integers(0, 255))
    try:
        p = parse_line(bytes(line))
        RFLinkMatch.parse("EV1527;ID=295FD59").matches(p)
    except RFLinkError:
        pass
    text = data.draw(st.text(max_size=40))
    try:
        RFLinkMatch.parse(text)
    except RFLinkError:
        pass


def test_a_zero_bit_card_read_is_bad_input_not_a_card() -> None:
    with pytest.raises(OSDPError, match="0 bits"):
        RawCardRead.decode(bytes([0, 1, 0, 0]))


def test_mark_bytes_and_noise_before_som() -> None:
    decoder = OSDPStreamDecoder()
    out = list(decoder.feed(b"\xff" + ACK + b"\xff\xff" + ACK))
    assert [type(x) for x in out] == [OSDPPacket, OSDPPacket]  # the mark byte is no error
    out = list(OSDPStreamDecoder().feed(b"\x00\x13\xff" + ACK))
    assert isinstance(out[0], OSDPError) and out[0].kind == "garbage"
    assert out[0].data == b"\x00\x13"  # the mark byte belongs to the packet
    assert out[1:] == [decode_packet(ACK)]
