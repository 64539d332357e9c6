"""GStreamer's webrtcbin against a real moim server, over LiveKit's `/rtc`
signalling: the way cameras, RTSP feeds and broadcast tools join rooms."""

import re
import time
import unittest

from harness import MoimServer
from peers import Publisher, Subscriber, certificate_key_type

# A colour that survives VP8 and two colour-space conversions recognisably.
COLOUR = (230, 40, 160)
TOLERANCE = 40
FRAMES_WANTED = 30


def pump(peers, until, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in peers:
            p.step()
        if until():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def video_formats(sdp):
    """{mid: [encoding names in m-line order]} for every video section."""
    out = {}
    for section in re.split(r"\r?\n(?=m=)", sdp)[1:]:
        head = section.splitlines()[0]
        if not head.startswith("m=video"):
            continue
        mid = re.search(r"^a=mid:(\S+)", section, re.M)
        names = dict(re.findall(r"^a=rtpmap:(\d+) ([^/\s]+)", section, re.M))
        out[mid.group(1) if mid else "?"] = [names.get(pt, pt) for pt in head.split()[3:]]
    return out


class WebrtcbinInterop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = MoimServer().start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        print(f"\nmoim log: {cls.server.log_file}")

    def tearDown(self):
        for p in getattr(self, "peers", []):
            p.close()

    def join(self, room):
        started = time.monotonic()
        pub = Publisher(self.server, room, "camera", COLOUR)
        sub = Subscriber(self.server, room, "viewer")
        self.peers = [pub, sub]
        pump(self.peers, lambda: sub.frames >= FRAMES_WANTED, 30,
             f"{FRAMES_WANTED} decoded frames at the subscriber\n{self.server.log_tail()}")
        print(f"\n  {room}: first frame decoded {sub.first_frame_at - started:.2f} s after "
              f"the publisher joined; {sub.frames} frames; centre pixel {sub.centre_rgb}")
        return pub, sub

    def assert_colour(self, rgb):
        self.assertIsNotNone(rgb)
        for got, want in zip(rgb, COLOUR):
            self.assertLessEqual(abs(got - want), TOLERANCE, f"centre pixel {rgb}, sent {COLOUR}")

    def test_a_camera_with_an_rsa_dtls_certificate_is_seen_by_a_viewer(self):
        pub, sub = self.join("rsa-camera")
        # What made moim refuse it before: webrtcbin's default certificate.
        self.assertEqual(certificate_key_type(pub.pc), "rsaEncryption")
        self.assertEqual(certificate_key_type(sub.pc), "rsaEncryption")
        self.assert_colour(sub.centre_rgb)
        self.assertNotIn("DTLS", "\n".join(
            line for line in self.server.log_text().splitlines() if " WARN " in line))

    def test_a_viewer_with_no_codec_preference_is_offered_only_the_track_codec(self):
        _, sub = self.join("no-preference")
        offered = [f for sdp in sub.offers for f in video_formats(sdp).values()]
        self.assertTrue(offered, "moim never offered the viewer a video section")
        for formats in offered:
            # The track's codec and its retransmissions, nothing else.
            self.assertEqual(formats[0], "VP8", f"offered {formats}")
            self.assertTrue(set(formats) <= {"VP8", "rtx"}, f"offered {formats}")
        answered = [f for sdp in sub.answers for f in video_formats(sdp).values()]
        self.assertTrue(answered and answered[-1][0] == "VP8", f"answered {answered}")
        self.assertEqual(sub.encodings, ["VP8"])
        self.assert_colour(sub.centre_rgb)


if __name__ == "__main__":
    unittest.main(verbosity=2)
