"""GStreamer webrtcbin peers driven by LiveKit signalling: a publisher that
sends VP8 from videotestsrc, and a subscriber that decodes what it gets.

webrtcbin runs on its own threads; the test's loop calls `step()` on each
peer to hand it signal frames, and reads the counters they keep."""

import json
import re
import subprocess
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import Gst, GstSdp, GstWebRTC  # noqa: E402

from harness import Signal  # noqa: E402

Gst.init(None)

WIDTH, HEIGHT = 320, 240


def _wait(promise, what):
    """The reply of a webrtcbin promise; its error, if any, raised."""
    result = promise.wait()
    reply = promise.get_reply()
    if result != Gst.PromiseResult.REPLIED:
        raise AssertionError(f"webrtcbin {what}: promise {result.value_nick}")
    if reply is not None and reply.has_field("error"):
        raise AssertionError(f"webrtcbin {what}: {reply.get_value('error').message}")
    return reply


def _fail_on_bus_error(pipeline, who):
    while msg := pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR):
        err, debug = msg.parse_error()
        raise AssertionError(f"{who}: GStreamer error: {err.message} ({debug})")


def _dtls_certificate_pem(webrtcbin):
    """webrtcbin's own certificate, read from its DTLS decoder."""
    it = webrtcbin.iterate_recurse()
    while True:
        ok, elem = it.next()
        if ok != Gst.IteratorResult.OK:
            return None
        if elem.get_factory() and elem.get_factory().get_name() == "dtlsdec":
            return elem.get_property("pem")


def certificate_key_type(webrtcbin):
    """'rsaEncryption', 'id-ecPublicKey', … as `openssl x509` names it."""
    pem = _dtls_certificate_pem(webrtcbin)
    if not pem:
        return None
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-text"], input=pem.encode(), capture_output=True
    ).stdout.decode()
    m = re.search(r"Public Key Algorithm: (\S+)", out)
    return m.group(1) if m else None


class _Peer:
    target = None  # "PUBLISHER" or "SUBSCRIBER": which PeerConnection this is

    def __init__(self, signal, pipeline, webrtc):
        self.sig = signal
        self.pipeline = pipeline
        self.pc = webrtc
        self.pc.connect("on-ice-candidate", self._on_local_candidate)
        self.started = time.monotonic()

    def _on_local_candidate(self, _pc, mline, candidate):
        self.sig.trickle(self.target, mline, candidate)

    def _add_remote_candidate(self, trickle):
        if trickle.get("target", "PUBLISHER") != self.target:
            return
        init = json.loads(trickle["candidateInit"])
        if init.get("candidate"):
            self.pc.emit("add-ice-candidate", init.get("sdpMLineIndex") or 0, init["candidate"])

    def step(self):
        _fail_on_bus_error(self.pipeline, self.sig.identity)
        while not self.sig.inbox.empty():
            self.handle(self.sig.inbox.get())

    def handle(self, msg):
        if "trickle" in msg:
            self._add_remote_candidate(msg["trickle"])

    def close(self):
        self.pipeline.set_state(Gst.State.NULL)
        self.sig.close()


class Publisher(_Peer):
    """Publishes one VP8 camera track of a solid colour, with webrtcbin's
    default DTLS certificate (RSA)."""

    target = "PUBLISHER"

    def __init__(self, server, room, identity, rgb):
        sig = Signal(server, room, identity, can_subscribe=False)
        sig.wait_for("join")
        sig.send({"addTrack": {
            "cid": "gst-camera", "name": "camera", "type": "VIDEO", "source": "CAMERA",
            "width": WIDTH, "height": HEIGHT,
        }})
        self.track = sig.wait_for("trackPublished")["track"]
        argb = 0xFF000000 | (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]
        pipeline = Gst.parse_launch(
            "webrtcbin name=pc bundle-policy=max-bundle "
            f"videotestsrc is-live=true pattern=solid-color foreground-color={argb} "
            f"! video/x-raw,width={WIDTH},height={HEIGHT},framerate=15/1 ! videoconvert "
            "! vp8enc deadline=1 keyframe-max-dist=15 ! rtpvp8pay pt=96 "
            "! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! pc."
        )
        super().__init__(sig, pipeline, pipeline.get_by_name("pc"))
        self.answer = None
        self.offered = False
        self._negotiate = threading.Event()
        self.pc.connect("on-negotiation-needed", lambda _pc: self._negotiate.set())
        pipeline.set_state(Gst.State.PLAYING)
        self.pc.emit("get-transceiver", 0).set_property(
            "direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY
        )

    def step(self):
        # One track, one offer: later negotiation-needed signals (webrtcbin
        # raises them as the transceiver settles) need no new offer.
        if self._negotiate.is_set() and not self.offered:
            self.offered = True
            reply, _keep = _wait_promise(self.pc, "create-offer", None)
            offer = reply.get_value("offer")
            _wait_promise(self.pc, "set-local-description", offer)
            self.sig.send({"offer": {"type": "offer", "sdp": offer.sdp.as_text(), "id": 1}})
        super().step()

    def handle(self, msg):
        if "answer" in msg:
            self.answer = msg["answer"]["sdp"]
            _, sdp = GstSdp.SDPMessage.new_from_text(self.answer)
            desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
            _wait_promise(self.pc, "set-remote-description", desc)
        super().handle(msg)


def _wait_promise(pc, signal, *args):
    """Emits `signal` and waits for its reply. The promise comes back too:
    the reply, and any description in it, live only as long as it does
    (and PyGObject's WebRTCSessionDescription.copy() loses the SDP)."""
    p = Gst.Promise.new()
    pc.emit(signal, *args, p)
    return _wait(p, signal), p


class Subscriber(_Peer):
    """Answers moim's subscriber offers with no codec preference of its own
    (no codec-preferences on any transceiver: webrtcbin picks) and decodes
    the VP8 it receives to RGB."""

    target = "SUBSCRIBER"

    def __init__(self, server, room, identity):
        sig = Signal(server, room, identity, can_publish=False)
        pipeline = Gst.Pipeline.new(identity)
        pc = Gst.ElementFactory.make("webrtcbin", "pc")
        pc.set_property("bundle-policy", "max-bundle")
        pipeline.add(pc)
        super().__init__(sig, pipeline, pc)
        self.offers = []
        self.answers = []
        self.frames = 0
        self.first_frame_at = None
        self.centre_rgb = None
        self.encodings = []
        self.rtp_packets = 0  # what webrtcbin hands the decoder, for failure messages
        pc.connect("pad-added", self._on_pad)
        pipeline.set_state(Gst.State.PLAYING)

    def handle(self, msg):
        if "offer" in msg:
            offer = msg["offer"]
            self.offers.append(offer["sdp"])
            _, sdp = GstSdp.SDPMessage.new_from_text(offer["sdp"])
            desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.OFFER, sdp)
            _wait_promise(self.pc, "set-remote-description", desc)
            reply, _keep = _wait_promise(self.pc, "create-answer", None)
            answer = reply.get_value("answer")
            text = answer.sdp.as_text()
            _wait_promise(self.pc, "set-local-description", answer)
            self.answers.append(text)
            self.sig.send({"answer": {"type": "answer", "sdp": text, "id": offer.get("id", 0)}})
        super().handle(msg)

    def _on_pad(self, _pc, pad):
        if pad.get_direction() != Gst.PadDirection.SRC:
            return
        caps = pad.get_current_caps() or pad.query_caps(None)
        self.encodings.append(caps.get_structure(0).get_value("encoding-name"))
        pad.add_probe(Gst.PadProbeType.BUFFER, self._count_rtp)
        encoding = self.encodings[-1]
        if encoding != "VP8":
            # Nothing else is published here; the test reports the encoding.
            chain = Gst.parse_bin_from_description("fakesink", True)
        else:
            # decodebin does not plug RTP depayloaders, so name them.
            chain = Gst.parse_bin_from_description(
                "rtpvp8depay ! vp8dec ! videoconvert ! video/x-raw,format=RGB "
                "! appsink name=sink emit-signals=true sync=false max-buffers=2 drop=true",
                True,
            )
            chain.get_by_name("sink").connect("new-sample", self._on_sample)
        self.pipeline.add(chain)
        chain.sync_state_with_parent()
        pad.link(chain.get_static_pad("sink"))

    def _count_rtp(self, _pad, _info):
        self.rtp_packets += 1
        return Gst.PadProbeReturn.OK

    def _on_sample(self, sink):
        sample = sink.emit("pull-sample")
        caps = sample.get_caps().get_structure(0)
        width, height = caps.get_value("width"), caps.get_value("height")
        buf = sample.get_buffer()
        ok, info = buf.map(Gst.MapFlags.READ)
        if ok:
            stride = (width * 3 + 3) & ~3  # GStreamer pads RGB rows to 4 bytes
            at = (height // 2) * stride + (width // 2) * 3
            self.centre_rgb = tuple(info.data[at:at + 3])
            buf.unmap(info)
        self.frames += 1
        if self.first_frame_at is None:
            self.first_frame_at = time.monotonic()
        return Gst.FlowReturn.OK
