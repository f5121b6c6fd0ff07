"""Tests for dialflow.sip.sdp: exact bytes, real-world bodies, offer/answer, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialflow.sip.sdp import (
    Connection,
    Direction,
    MediaDescription,
    NegotiatedMedia,
    Origin,
    RtpMap,
    SdpError,
    SdpNegotiationError,
    SessionDescription,
    build_answer,
    build_offer,
    negotiate_answer,
)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


# baresip 0.6.3 INVITE (github.com/baresip/baresip issue #813).
BARESIP = """v=0
o=- 1140145081 1649997976 IN IP4 10.0.2.15
s=-
c=IN IP4 10.0.2.15
t=0 0
a=tool:baresip 0.6.3
m=audio 16906 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=rtcp-rsize
a=ssrc:1613256890 cname:sip:12054849118@sip.ringcentral.com
a=ptime:20
"""

# baresip (Android) with many codecs and telephone-event on PT 10, which is L16 in the
# RFC 3551 static table (github.com/baresip/baresip issue #3258).
BARESIP_MANY = """v=0
o=- 2237437666 647389653 IN IP4 192.168.168.187
s=-
c=IN IP4 192.168.168.187
t=0 0
m=audio 8570 RTP/AVP 96 97 98 9 99 100 101 102 103 18 104 8 0 10
a=rtpmap:96 AMR-WB/16000
a=rtpmap:97 AMR/8000
a=rtpmap:98 opus/48000/2
a=fmtp:98 stereo=0;sprop-stereo=0;maxaveragebitrate=28000;cbr=0;useinbandfec=1
a=rtpmap:9 G722/8000
a=rtpmap:99 G7221/16000
a=fmtp:99 bitrate=32000
a=rtpmap:100 G726-40/8000
a=rtpmap:101 G726-32/8000
a=rtpmap:102 G726-24/8000
a=rtpmap:103 G726-16/8000
a=rtpmap:18 G729/8000
a=rtpmap:104 CODEC2/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:10 telephone-event/8000
a=fmtp:10 0-15
a=sendrecv
a=rtcp-rsize
a=ssrc:3299428848 cname:sip:bar@test.tutpro.com
a=mid:0
a=minptime:20
a=ptime:20
a=label:1
"""

# SIPp's built-in uac scenario with the default -mp 6000 on 127.0.0.1.
SIPP_UAC = """v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
"""

# Asterisk 11 (chan_sip) offer with static and dynamic payload types.
ASTERISK = """v=0
o=root 828175017 828175017 IN IP4 192.168.100.11
s=Asterisk PBX 11.5.1
c=IN IP4 192.168.100.11
t=0 0
m=audio 10312 RTP/AVP 0 8 9 18 4 111 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:9 G722/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:4 G723/8000
a=fmtp:4 annexa=no
a=rtpmap:111 G726-32/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
"""

# RFC 3264 §8.4 hold re-INVITE, direction at session level (as several desk phones do).
HOLD_SENDONLY = """v=0
o=- 1234 1236 IN IP4 192.168.1.20
s=-
c=IN IP4 192.168.1.20
t=0 0
a=sendonly
m=audio 2222 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
"""

# RFC 2543 style hold (c=0.0.0.0), as old gateways still send it.
HOLD_NULL_ADDR = """v=0
o=CiscoSystemsSIP-GW-UserAgent 7437 2091 IN IP4 10.1.1.1
s=SIP Call
c=IN IP4 0.0.0.0
t=0 0
m=audio 17586 RTP/AVP 0 101
c=IN IP4 0.0.0.0
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
"""

# Video first, then audio (the stream we accept is the second m= line).
VIDEO_AUDIO = """v=0
o=linphone 123 456 IN IP4 192.168.0.5
s=Talk
c=IN IP4 192.168.0.5
b=AS:380
t=0 0
m=video 9078 RTP/AVP 96 97
a=rtpmap:96 VP8/90000
a=rtpmap:97 H264/90000
a=fmtp:97 profile-level-id=42801F
a=rtcp-fb:* nack pli
m=audio 7078 RTP/AVP 96 0 8 101
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:101 telephone-event/8000
a=rtcp-fb:* trr-int 1000
"""

ALL_FIXTURES = [
    BARESIP,
    BARESIP_MANY,
    SIPP_UAC,
    ASTERISK,
    HOLD_SENDONLY,
    HOLD_NULL_ADDR,
    VIDEO_AUDIO,
]


# --------------------------------------------------------------------------- building offers


def test_offer_exact_bytes() -> None:
    offer = build_offer("192.0.2.10", 40000, session_id=3940233, version=1)
    assert offer.serialize() == (
        b"v=0\r\n"
        b"o=- 3940233 1 IN IP4 192.0.2.10\r\n"
        b"s=-\r\n"
        b"c=IN IP4 192.0.2.10\r\n"
        b"t=0 0\r\n"
        b"m=audio 40000 RTP/AVP 0 8 101\r\n"
        b"a=rtpmap:0 PCMU/8000\r\n"
        b"a=rtpmap:8 PCMA/8000\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\n"
        b"a=fmtp:101 0-16\r\n"
        b"a=ptime:20\r\n"
        b"a=sendrecv\r\n"
    )


def test_offer_variants_exact_bytes() -> None:
    offer = build_offer(
        "2001:db8::5",
        5004,
        session_id=7,
        version=8,
        codecs=("pcma",),
        dtmf_pt=None,
        ptime=None,
        direction="sendonly",
    )
    assert offer.serialize() == crlf(
        "v=0\n"
        "o=- 7 8 IN IP6 2001:db8::5\n"
        "s=-\n"
        "c=IN IP6 2001:db8::5\n"
        "t=0 0\n"
        "m=audio 5004 RTP/AVP 8\n"
        "a=rtpmap:8 PCMA/8000\n"
        "a=sendonly\n"
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"codecs": ("G729",)},
        {"codecs": ()},
        {"dtmf_pt": 8},
        {"session_id": -1},
        {"version": 2**63},
        {"port": 0},
        {"port": 70000},
        {"direction": "sideways"},
    ],
)
def test_offer_bad_arguments(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"session_id": 1, "version": 1, "port": 4000}
    args.update(kwargs)
    port = args.pop("port")
    with pytest.raises(ValueError):
        build_offer("192.0.2.1", port, **args)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- parsing real bodies


def test_parse_baresip() -> None:
    sd = SessionDescription.parse(crlf(BARESIP))
    assert sd.origin == Origin("-", 1140145081, 1649997976, "10.0.2.15")
    assert sd.attributes == [("tool", "baresip 0.6.3")]
    [m] = sd.media
    assert (m.media, m.port, m.proto, m.formats) == ("audio", 16906, "RTP/AVP", [0, 8, 101])
    assert m.rtpmap[101] == RtpMap("telephone-event", 8000, 1)
    assert m.fmtp == {101: "0-15"}
    assert (m.ptime, m.direction) == (20, Direction.SENDRECV)
    assert m.attributes == [
        ("label", "1"),
        ("rtcp-rsize", None),
        ("ssrc", "1613256890 cname:sip:12054849118@sip.ringcentral.com"),
    ]


def test_parse_baresip_telephone_event_on_static_number() -> None:
    m = SessionDescription.parse(BARESIP_MANY).media[0]
    assert m.encoding(10) == RtpMap("telephone-event", 8000)  # rtpmap overrides RFC 3551
    assert m.telephone_event_pt() == 10
    assert m.rtpmap[98] == RtpMap("opus", 48000, 2)
    assert m.codec_name(8) == "PCMA" and m.codec_name(98) is None


def test_parse_sipp_uac() -> None:
    sd = SessionDescription.parse(SIPP_UAC)
    assert sd.origin.username == "user1" and sd.origin.sess_version == 2353687637
    assert sd.connection == Connection("127.0.0.1")
    assert sd.media[0].port == 6000 and sd.media[0].formats == [0]


def test_static_payload_types_need_no_rtpmap() -> None:
    bare = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 6000 RTP/AVP 8 0\n"
    m = SessionDescription.parse(bare).media[0]
    assert m.rtpmap == {}
    assert (m.codec_name(8), m.codec_name(0), m.encoding(18)) == (
        "PCMA",
        "PCMU",
        RtpMap("G729", 8000),
    )
    answer, neg = build_answer(
        SessionDescription.parse(bare), "10.0.0.2", 7000, session_id=1, version=1
    )
    assert (neg.payload_type, neg.codec, neg.dtmf_payload_type) == (8, "PCMA", None)
    assert answer.media[0].rtpmap == {8: RtpMap("PCMA", 8000)}


def test_parse_asterisk() -> None:
    sd = SessionDescription.parse(crlf(ASTERISK))
    assert sd.session_name == "Asterisk PBX 11.5.1"
    m = sd.media[0]
    assert m.formats == [0, 8, 9, 18, 4, 111, 101]
    assert m.rtpmap[111] == RtpMap("G726-32", 8000)
    assert m.fmtp == {18: "annexb=no", 4: "annexa=no", 101: "0-16"}


def test_parse_hold_sendonly_session_level() -> None:
    sd = SessionDescription.parse(HOLD_SENDONLY)
    assert sd.direction is Direction.SENDONLY and sd.media[0].direction is None
    assert sd.direction_of(sd.media[0]) is Direction.SENDONLY


def test_parse_null_address_hold() -> None:
    sd = SessionDescription.parse(HOLD_NULL_ADDR)
    assert sd.media[0].connection == Connection("0.0.0.0")
    assert sd.media[0].connection.is_hold


def test_parse_video_and_audio() -> None:
    sd = SessionDescription.parse(VIDEO_AUDIO)
    assert [m.media for m in sd.media] == ["video", "audio"]
    assert sd.lines == [("b", "AS:380")]
    assert sd.media[0].rtpmap[96] == RtpMap("VP8", 90000)
    assert sd.media[1].rtpmap[96] == RtpMap("opus", 48000, 2)  # per-m-line numbering


@pytest.mark.parametrize("fixture", ALL_FIXTURES)
def test_fixture_round_trip_keeps_every_line(fixture: str) -> None:
    parsed = SessionDescription.parse(fixture)  # LF-only input is tolerated
    wire = parsed.serialize()
    assert wire.endswith(b"\r\n") and b"\n" not in wire.replace(b"\r\n", b"")
    assert SessionDescription.parse(wire) == parsed

    # Same lines per section (canonical order may differ inside a section).
    def sections(text: str) -> list[list[str]]:
        out: list[list[str]] = [[]]
        for line in text.replace("\r\n", "\n").splitlines():
            if line.startswith("m="):
                out.append([])
            out[-1].append(line)
        return [sorted(s) for s in out]

    assert sections(wire.decode()) == sections(fixture)


def test_parse_tolerates_blank_lines_latin1_and_ptime_float() -> None:
    body = (
        b"v=0\r\no=- 1 1 IN IP4 h\r\ns=Caf\xe9\r\nt=0 0\r\n"
        b"m=audio 1 RTP/AVP 0\na=ptime:30.0\r\n\r\n"
    )
    sd = SessionDescription.parse(body)
    assert sd.session_name == "Café" and sd.media[0].ptime == 30


def test_non_rtp_media_and_port_count() -> None:
    text = "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=image 0 udptl t38\nm=audio 5000/2 RTP/AVP 0\n"
    sd = SessionDescription.parse(text)
    assert sd.media[0].format_tokens == ["t38"] and sd.media[0].formats == []
    assert sd.media[1].port_count == 2
    assert b"m=image 0 udptl t38\r\nm=audio 5000/2 RTP/AVP 0\r\n" in sd.serialize()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "o=- 1 1 IN IP4 h\n",  # no v=
        "v=1\no=- 1 1 IN IP4 h\n",
        "v=0\ns=-\n",  # no o=
        "v=0\no=- x 1 IN IP4 h\n",
        "v=0\no=- 1 1 IN IP4\n",
        "v=0\no=- 1 1 IN IP4 h\no=- 1 1 IN IP4 h\n",
        "v=0\no=- 1 1 IN IP4 h\nc=IN IP4\n",
        "v=0\no=- 1 1 IN IP4 h\nt=0\n",
        "v=0\no=- 1 1 IN IP4 h\nm=audio x RTP/AVP 0\n",
        "v=0\no=- 1 1 IN IP4 h\nm=audio 70000 RTP/AVP 0\n",
        "v=0\no=- 1 1 IN IP4 h\nm=audio 1 RTP/AVP\n",
        "v=0\no=- 1 1 IN IP4 h\nm=audio 1 RTP/AVP PCMU\n",
        "v=0\no=- 1 1 IN IP4 h\nm=audio 1 RTP/AVP 200\n",
        "v=0\no=- 1 1 IN IP4 h\nm=audio 1 RTP/AVP 96\na=rtpmap:96 opus\n",
        "v=0\no=- 1 1 IN IP4 h\nm=audio 1 RTP/AVP 96\na=rtpmap:x opus/48000\n",
        "v=0\no=- 1 1 IN IP4 h\nm=audio 1 RTP/AVP 96\na=ptime:soon\n",
        "v=0\no=- 1 1 IN IP4 h\nhello\n",
        "v=0\no=- 1 1 IN IP4 h\nA=foo\n",
    ],
)
def test_parse_errors(text: str) -> None:
    with pytest.raises(SdpError):
        SessionDescription.parse(text)


@given(st.text(max_size=300) | st.binary(max_size=300))
def test_parse_raises_only_sdp_error(data: str | bytes) -> None:
    try:
        SessionDescription.parse(data)
    except SdpError:
        pass


_sdp_piece = st.sampled_from(
    [
        "v=0\n",
        "o=- 1 2 IN IP4 a\n",
        "s=-\n",
        "c=IN IP4 1.2.3.4\n",
        "t=0 0\n",
        "m=audio 5 RTP/AVP 0 96\n",
        "a=rtpmap:96 x/8000\n",
        "a=fmtp:96 y\n",
        "a=ptime:20\n",
        "a=sendonly\n",
        "m=",
        "a=",
        " ",
        ":",
        "/",
        "96",
        "\r\n",
        "b=AS:1\n",
        "t=1 2\n",
        "r=x\n",
    ]
)


@given(st.lists(_sdp_piece, max_size=25).map("".join))
def test_parse_structured_fuzz(text: str) -> None:
    try:
        sd = SessionDescription.parse(text)
    except SdpError:
        return
    assert SessionDescription.parse(sd.serialize()) == sd


def test_fmtp_without_parameters() -> None:
    sd = SessionDescription.parse(SIPP_UAC + "a=fmtp:0\n")
    assert sd.media[0].fmtp == {0: ""}
    assert sd.serialize().endswith(b"a=rtpmap:0 PCMU/8000\r\na=fmtp:0\r\n")


def test_serialize_refuses_line_breaks_in_values() -> None:
    sd = SessionDescription(session_name="a\r\nm=audio 1 RTP/AVP 0")
    with pytest.raises(SdpError):
        sd.serialize()


# --------------------------------------------------------------------------- answers (UAS)


def test_answer_exact_bytes_for_baresip_offer() -> None:
    offer = SessionDescription.parse(BARESIP)
    answer, neg = build_answer(offer, "198.51.100.7", 30000, session_id=42, version=1)
    assert answer.serialize() == crlf(
        "v=0\n"
        "o=- 42 1 IN IP4 198.51.100.7\n"
        "s=-\n"
        "c=IN IP4 198.51.100.7\n"
        "t=0 0\n"
        "m=audio 30000 RTP/AVP 0 101\n"
        "a=rtpmap:0 PCMU/8000\n"
        "a=rtpmap:101 telephone-event/8000\n"
        "a=fmtp:101 0-15\n"
        "a=ptime:20\n"
        "a=sendrecv\n"
    )
    assert neg == NegotiatedMedia(
        remote_addr="10.0.2.15",
        remote_port=16906,
        payload_type=0,
        codec="PCMU",
        dtmf_payload_type=101,
        ptime=20,
        direction=Direction.SENDRECV,
        local_direction=Direction.SENDRECV,
    )
    assert not neg.on_hold and neg.can_send and neg.can_receive


def test_answer_follows_offer_order_not_ours() -> None:
    offer = SessionDescription.parse(BARESIP_MANY)  # ... 18 104 8 0 10
    _, neg = build_answer(offer, "10.0.0.1", 4000, session_id=1, version=1)
    assert (neg.payload_type, neg.codec, neg.dtmf_payload_type) == (8, "PCMA", 10)
    _, neg = build_answer(offer, "10.0.0.1", 4000, session_id=1, version=1, supported=("PCMU",))
    assert (neg.payload_type, neg.codec) == (0, "PCMU")
    _, neg = build_answer(
        SessionDescription.parse(ASTERISK),
        "10.0.0.1",
        4000,
        session_id=1,
        version=1,
        supported=("PCMA", "PCMU"),
    )
    assert neg.codec == "PCMU"  # Asterisk listed 0 first; our order does not matter


def test_answer_sipp_uac() -> None:
    answer, neg = build_answer(
        SessionDescription.parse(SIPP_UAC), "127.0.0.1", 7000, session_id=5, version=5
    )
    assert (neg.remote_addr, neg.remote_port, neg.codec, neg.dtmf_payload_type) == (
        "127.0.0.1",
        6000,
        "PCMU",
        None,
    )
    assert answer.media[0].formats == [0]


def test_answer_rejects_video_keeps_position() -> None:
    offer = SessionDescription.parse(VIDEO_AUDIO)
    answer, neg = build_answer(offer, "203.0.113.9", 20000, session_id=9, version=1)
    assert answer.serialize() == crlf(
        "v=0\n"
        "o=- 9 1 IN IP4 203.0.113.9\n"
        "s=-\n"
        "c=IN IP4 203.0.113.9\n"
        "t=0 0\n"
        "m=video 0 RTP/AVP 96 97\n"
        "m=audio 20000 RTP/AVP 0 101\n"
        "a=rtpmap:0 PCMU/8000\n"
        "a=rtpmap:101 telephone-event/8000\n"
        "a=fmtp:101 0-15\n"  # no fmtp offered: RFC 4733 default 0-15
        "a=ptime:20\n"
        "a=sendrecv\n"
    )
    assert (neg.remote_addr, neg.remote_port) == ("192.168.0.5", 7078)


def test_answer_second_audio_stream_rejected() -> None:
    text = SIPP_UAC + "m=audio 6002 RTP/AVP 8\n"
    answer, neg = build_answer(SessionDescription.parse(text), "h", 7000, session_id=1, version=1)
    assert [m.port for m in answer.media] == [7000, 0]
    assert neg.remote_port == 6000


def test_answer_skips_srtp_stream_for_plain_one() -> None:
    text = (
        SIPP_UAC.replace("m=audio 6000 RTP/AVP 0", "m=audio 6000 RTP/SAVP 0")
        + "m=audio 6002 RTP/AVP 8\n"
    )
    answer, neg = build_answer(SessionDescription.parse(text), "h", 7000, session_id=1, version=1)
    assert [(m.proto, m.port) for m in answer.media] == [("RTP/SAVP", 0), ("RTP/AVP", 7000)]
    assert (neg.remote_port, neg.codec) == (6002, "PCMA")


def test_answer_time_mirrors_offer() -> None:
    offer = SessionDescription.parse(SIPP_UAC.replace("t=0 0", "t=3034423619 3042462419"))
    answer, _ = build_answer(offer, "h", 7000, session_id=1, version=1)
    assert answer.time == (3034423619, 3042462419)


@pytest.mark.parametrize(
    ("offered", "ours", "answered"),
    [
        ("sendrecv", "sendrecv", "sendrecv"),
        ("sendonly", "sendrecv", "recvonly"),
        ("recvonly", "sendrecv", "sendonly"),
        ("inactive", "sendrecv", "inactive"),
        ("sendrecv", "sendonly", "sendonly"),
        ("sendonly", "sendonly", "inactive"),
        ("recvonly", "recvonly", "inactive"),
    ],
)
def test_answer_direction(offered: str, ours: str, answered: str) -> None:
    offer = SessionDescription.parse(SIPP_UAC + f"a={offered}\n")
    answer, neg = build_answer(offer, "h", 7000, session_id=1, version=1, direction=ours)
    assert answer.media[0].direction is Direction(answered)
    assert neg.direction is Direction(offered) and neg.local_direction is Direction(answered)
    assert neg.on_hold is (offered in ("sendonly", "inactive"))


def test_hold_sendonly_offer() -> None:
    answer, neg = build_answer(
        SessionDescription.parse(HOLD_SENDONLY), "h", 7000, session_id=1, version=2
    )
    assert answer.media[0].direction is Direction.RECVONLY
    assert neg.on_hold and not neg.can_send and neg.can_receive


def test_hold_null_address_offer() -> None:
    _, neg = build_answer(
        SessionDescription.parse(HOLD_NULL_ADDR), "h", 7000, session_id=1, version=2
    )
    assert neg.remote_addr == "0.0.0.0" and neg.direction is Direction.SENDRECV
    assert neg.on_hold and not neg.can_send


def test_dtmf_events_intersection() -> None:
    offer = SessionDescription.parse(
        BARESIP.replace("a=fmtp:101 0-15", "a=fmtp:101 0-11,12,13-16,32-40")
    )
    answer, _ = build_answer(offer, "h", 7000, session_id=1, version=1)
    assert answer.media[0].fmtp == {101: "0-16"}
    offer = SessionDescription.parse(BARESIP.replace("a=fmtp:101 0-15", "a=fmtp:101 32-40"))
    answer, neg = build_answer(offer, "h", 7000, session_id=1, version=1)
    assert neg.dtmf_payload_type is None and answer.media[0].formats == [0]


def test_no_common_codec() -> None:
    offer = SessionDescription.parse(
        "v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 h\nt=0 0\nm=audio 4000 RTP/AVP 18 96\n"
        "a=rtpmap:96 opus/48000/2\nm=video 4002 RTP/AVP 97\na=rtpmap:97 VP8/90000\n"
    )
    with pytest.raises(SdpNegotiationError, match="G729, opus"):
        build_answer(offer, "h", 7000, session_id=1, version=1)
    # PCMU at the wrong clock rate is not PCMU for us.
    odd = SessionDescription.parse(
        SIPP_UAC.replace("m=audio 6000 RTP/AVP 0", "m=audio 6000 RTP/AVP 96").replace(
            "a=rtpmap:0 PCMU/8000", "a=rtpmap:96 PCMU/16000"
        )
    )
    with pytest.raises(SdpNegotiationError):
        build_answer(odd, "h", 7000, session_id=1, version=1)
    with pytest.raises(SdpError):  # the subclass relation the UA relies on for 488
        build_answer(offer, "h", 7000, session_id=1, version=1, supported=("PCMA",))


def test_answer_needs_a_connection_address() -> None:
    offer = SessionDescription.parse(SIPP_UAC.replace("c=IN IP4 127.0.0.1\n", ""))
    with pytest.raises(SdpNegotiationError):
        build_answer(offer, "h", 7000, session_id=1, version=1)


# --------------------------------------------------------------------------- answers (UAC)


def _our_offer() -> SessionDescription:
    return build_offer("192.0.2.10", 40000, session_id=1, version=1)


def test_negotiate_answer_from_asterisk() -> None:
    answer = SessionDescription.parse(
        "v=0\no=root 1 1 IN IP4 203.0.113.5\ns=Asterisk\nc=IN IP4 203.0.113.5\nt=0 0\n"
        "m=audio 18000 RTP/AVP 8 0 96\na=rtpmap:8 PCMA/8000\na=rtpmap:0 PCMU/8000\n"
        "a=rtpmap:96 telephone-event/8000\na=fmtp:96 0-16\na=ptime:30\na=maxptime:150\na=sendrecv\n"
    )
    neg = negotiate_answer(_our_offer(), answer)
    assert neg == NegotiatedMedia("203.0.113.5", 18000, 8, "PCMA", 96, 30, Direction.SENDRECV)


def test_negotiate_answer_with_our_own_answerer() -> None:
    offer = _our_offer()
    answer, uas_view = build_answer(offer, "198.51.100.7", 50000, session_id=2, version=1)
    uac_view = negotiate_answer(offer, SessionDescription.parse(answer.serialize()))
    assert (uac_view.remote_addr, uac_view.remote_port) == ("198.51.100.7", 50000)
    assert (uac_view.codec, uac_view.dtmf_payload_type) == (uas_view.codec, 101)


def test_negotiate_answer_hold_and_media_level_connection() -> None:
    answer = SessionDescription.parse(
        "v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n"
        "m=audio 18000 RTP/AVP 0\nc=IN IP4 10.0.0.2\na=inactive\n"
    )
    neg = negotiate_answer(_our_offer(), answer)
    assert neg.remote_addr == "10.0.0.2" and neg.dtmf_payload_type is None
    assert neg.on_hold and not neg.can_receive


@pytest.mark.parametrize(
    "answer",
    [
        "v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 h\nt=0 0\n",  # m= count differs
        "v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 h\nt=0 0\nm=audio 0 RTP/AVP 0\n",  # rejected
        "v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 h\nt=0 0\nm=audio 5 RTP/AVP 18\n",  # not offered
        "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=audio 5 RTP/AVP 0\n",  # no c=
        "v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 h\nt=0 0\nm=video 5 RTP/AVP 0\n",
    ],
)
def test_negotiate_answer_failures(answer: str) -> None:
    with pytest.raises(SdpNegotiationError):
        negotiate_answer(_our_offer(), SessionDescription.parse(answer))


# --------------------------------------------------------------------------- property round trip

_token = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._+", min_size=1, max_size=8
)
_line_text = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=20
)
_SPECIAL = {"rtpmap", "fmtp", "ptime", *[d.value for d in Direction]}
_attr_name = _token.filter(lambda n: n not in _SPECIAL)
_attributes = st.lists(st.tuples(_attr_name, st.none() | _line_text), max_size=4)
_connection = st.builds(Connection, _token, _token, _token)
_SESSION_RANK = {"i": 0, "u": 1, "e": 2, "p": 3, "b": 5, "r": 6, "z": 7, "k": 8, "x": 10, "y": 10}
_MEDIA_RANK = {"i": 0, "b": 2, "k": 3, "x": 10, "y": 10}


def _lines(rank: dict[str, int]) -> st.SearchStrategy[list[tuple[str, str]]]:
    raw = st.lists(st.tuples(st.sampled_from(sorted(rank)), _line_text), max_size=4)
    return raw.map(lambda ls: sorted(ls, key=lambda kv: rank[kv[0]]))


@st.composite
def _rtp_media(draw: st.DrawFn) -> MediaDescription:
    formats = draw(st.lists(st.integers(0, 127), min_size=1, max_size=6, unique=True))
    mapped = draw(st.lists(st.sampled_from(formats), unique=True))
    rtpmap = {
        pt: RtpMap(
            draw(_token.filter(lambda t: "/" not in t)),
            draw(st.integers(1, 10**6)),
            draw(st.integers(1, 8)),
        )
        for pt in mapped
    }
    fmtp_values = _line_text.filter(lambda v: not v.startswith(" "))
    fmtp = {pt: draw(fmtp_values) for pt in draw(st.lists(st.sampled_from(formats), unique=True))}
    return MediaDescription(
        media=draw(st.sampled_from(["audio", "video", "text"])),
        port=draw(st.integers(0, 65535)),
        proto=draw(st.sampled_from(["RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF"])),
        formats=formats,
        connection=draw(st.none() | _connection),
        rtpmap=rtpmap,
        fmtp=fmtp,
        ptime=draw(st.none() | st.integers(1, 1000)),
        direction=draw(st.none() | st.sampled_from(list(Direction))),
        attributes=draw(_attributes),
        port_count=draw(st.integers(1, 4)),
        lines=draw(_lines(_MEDIA_RANK)),
    )


_other_media = st.builds(
    MediaDescription,
    media=st.sampled_from(["image", "application"]),
    port=st.integers(0, 65535),
    proto=st.sampled_from(["udptl", "TCP/MSRP"]),
    format_tokens=st.lists(_token, min_size=1, max_size=3),
    attributes=_attributes,
)

_session = st.builds(
    SessionDescription,
    origin=st.builds(
        Origin, _token, st.integers(0, 2**64), st.integers(0, 2**64), _token, _token, _token
    ),
    session_name=_line_text,
    connection=st.none() | _connection,
    time=st.tuples(st.integers(0, 2**40), st.integers(0, 2**40)),
    media=st.lists(_rtp_media() | _other_media, max_size=3),
    direction=st.none() | st.sampled_from(list(Direction)),
    attributes=_attributes,
    lines=_lines(_SESSION_RANK),
)


@given(_session)
def test_round_trip_generated(sd: SessionDescription) -> None:
    assert SessionDescription.parse(sd.serialize()) == sd
