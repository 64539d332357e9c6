"""Generated media going into the SDK, and what the SDK decodes coming out.

A publisher sends a solid colour and a pure tone, so a subscriber can tell
from the decoded pixels and samples alone that the right media arrived.
"""

from __future__ import annotations

import asyncio
import collections
import time

import numpy as np
from livekit import rtc

WIDTH, HEIGHT, FPS = 320, 240, 15
RATE = 48000
FRAME_SAMPLES = RATE // 100  # 10 ms, the frame size libwebrtc works in
TONE_AMPLITUDE = 0.3


async def wait_until(cond, timeout: float, what: str, step: float = 0.05):
    """Poll cond() until it is truthy; a bounded wait, never a timing check."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        await asyncio.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Publisher:
    """A camera track of one solid colour and a microphone track of one tone."""

    def __init__(self, rgb: tuple[int, int, int], tone_hz: int) -> None:
        self.rgb, self.tone_hz = rgb, tone_hz
        self.video = rtc.VideoSource(WIDTH, HEIGHT)
        self.audio = rtc.AudioSource(RATE, 1)
        self._tasks: list[asyncio.Task] = []

    async def publish(self, participant: rtc.LocalParticipant) -> None:
        vtrack = rtc.LocalVideoTrack.create_video_track("camera", self.video)
        atrack = rtc.LocalAudioTrack.create_audio_track("microphone", self.audio)
        self._tasks = [
            asyncio.create_task(self._video_loop()),
            asyncio.create_task(self._audio_loop()),
        ]
        await participant.publish_track(
            vtrack, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
        )
        await participant.publish_track(
            atrack, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )

    async def _video_loop(self) -> None:
        pixel = np.array([*self.rgb, 255], dtype=np.uint8)
        data = np.tile(pixel, WIDTH * HEIGHT).tobytes()
        frame = rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.RGBA, data)
        while True:
            self.video.capture_frame(frame)
            await asyncio.sleep(1 / FPS)

    async def _audio_loop(self) -> None:
        # One second holds a whole number of cycles, so looping it is seamless.
        t = np.arange(RATE) / RATE
        second = (TONE_AMPLITUDE * 32767 * np.sin(2 * np.pi * self.tone_hz * t)).astype(np.int16)
        pos = 0
        while True:
            chunk = second[pos : pos + FRAME_SAMPLES]
            pos = (pos + FRAME_SAMPLES) % RATE
            frame = rtc.AudioFrame(chunk.tobytes(), RATE, 1, FRAME_SAMPLES)
            # capture_frame waits while the source's queue is full: it paces itself.
            await self.audio.capture_frame(frame)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.audio.aclose()


class VideoSink:
    """Reads a subscribed video track, keeping the last frame and arrival times."""

    def __init__(self, track: rtc.Track) -> None:
        self.sid = track.sid
        self.stream = rtc.VideoStream(track, format=rtc.VideoBufferType.RGBA)
        self.count = 0
        self.first_at: float | None = None  # time.monotonic() of the first frame
        self.last: rtc.VideoFrame | None = None
        self.arrivals: collections.deque[float] = collections.deque(maxlen=2000)
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for ev in self.stream:
            self.count += 1
            if self.first_at is None:
                self.first_at = time.monotonic()
            self.last = ev.frame
            self.arrivals.append(time.monotonic())

    async def fresh_frames(self, n: int, timeout: float) -> None:
        start = self.count
        await wait_until(lambda: self.count >= start + n, timeout, f"{n} new video frames")

    def centre_rgb(self) -> tuple[float, float, float]:
        """Mean colour of the middle half of the last frame."""
        f = self.last
        assert f is not None, "no video frame decoded yet"
        px = np.frombuffer(bytes(f.data), dtype=np.uint8).reshape(f.height, f.width, 4)
        mid = px[f.height // 4 : 3 * f.height // 4, f.width // 4 : 3 * f.width // 4, :3]
        r, g, b = mid.reshape(-1, 3).mean(axis=0)
        return float(r), float(g), float(b)

    def size(self) -> tuple[int, int]:
        assert self.last is not None
        return self.last.width, self.last.height

    def longest_gap(self, since: float) -> float:
        """The longest time without a frame after `since` (seconds)."""
        times = [since, *(t for t in self.arrivals if t > since)]
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.stream.aclose()


class AudioSink:
    """Reads a subscribed audio track at 48 kHz mono, keeping the last second."""

    def __init__(self, track: rtc.Track) -> None:
        self.sid = track.sid
        self.stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1)
        self.frames = 0
        self._chunks: collections.deque[np.ndarray] = collections.deque(maxlen=100)
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for ev in self.stream:
            self.frames += 1
            self._chunks.append(np.frombuffer(bytes(ev.frame.data), dtype=np.int16).copy())

    async def fresh_audio(self, seconds: float, timeout: float) -> None:
        """Wait until `seconds` of audio arrived after now."""
        start = self.frames
        need = int(seconds * 100)
        await wait_until(lambda: self.frames >= start + need, timeout, f"{seconds} s of new audio")

    def analyse(self, seconds: float = 0.5) -> tuple[float, float]:
        """(RMS as a fraction of full scale, strongest frequency in Hz) of the last samples."""
        samples = np.concatenate(list(self._chunks))[-int(seconds * RATE) :].astype(np.float64)
        rms = float(np.sqrt(np.mean(samples**2)) / 32768)
        spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
        peak_hz = float(np.fft.rfftfreq(len(samples), 1 / RATE)[int(np.argmax(spectrum))])
        return rms, peak_hz

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.stream.aclose()
