// Generated media going into the SDK, and what the SDK decodes coming out. A
// publisher sends a solid colour and a pure tone, so a subscriber can tell from the
// decoded pixels and samples alone that the right media arrived.
import {
  AudioFrame,
  AudioSource,
  AudioStream,
  LocalAudioTrack,
  LocalVideoTrack,
  TrackPublishOptions,
  TrackSource,
  VideoBufferType,
  VideoFrame,
  VideoSource,
  VideoStream,
} from '@livekit/rtc-node';
import { setTimeout as sleep } from 'node:timers/promises';

import { waitUntil } from './harness.mjs';

export const WIDTH = 320;
export const HEIGHT = 240;
const FPS = 15;
const RATE = 48000;
const FRAME_SAMPLES = RATE / 100; // 10 ms, the frame size libwebrtc works in
const TONE_AMPLITUDE = 0.3;

/** A camera track of one solid colour and a microphone track of one tone. */
export class Publisher {
  constructor(rgb, toneHz) {
    this.rgb = rgb;
    this.toneHz = toneHz;
    this.video = new VideoSource(WIDTH, HEIGHT);
    this.audio = new AudioSource(RATE, 1);
    this.running = false;
  }

  async publish(participant) {
    const vtrack = LocalVideoTrack.createVideoTrack('camera', this.video);
    const atrack = LocalAudioTrack.createAudioTrack('microphone', this.audio);
    this.running = true;
    this.loops = [this.videoLoop(), this.audioLoop()];
    await participant.publishTrack(vtrack, new TrackPublishOptions({ source: TrackSource.SOURCE_CAMERA }));
    await participant.publishTrack(atrack, new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }));
  }

  async videoLoop() {
    const data = new Uint8Array(WIDTH * HEIGHT * 4);
    for (let i = 0; i < data.length; i += 4) data.set([...this.rgb, 255], i);
    const frame = new VideoFrame(data, WIDTH, HEIGHT, VideoBufferType.RGBA);
    while (this.running) {
      this.video.captureFrame(frame);
      await sleep(1000 / FPS);
    }
  }

  async audioLoop() {
    // One second holds a whole number of cycles, so looping it is seamless.
    const second = new Int16Array(RATE);
    for (let i = 0; i < RATE; i++) {
      second[i] = Math.round(TONE_AMPLITUDE * 32767 * Math.sin((2 * Math.PI * this.toneHz * i) / RATE));
    }
    let pos = 0;
    while (this.running) {
      const chunk = second.slice(pos, pos + FRAME_SAMPLES);
      pos = (pos + FRAME_SAMPLES) % RATE;
      // captureFrame waits while the source's queue is full: it paces itself.
      await this.audio.captureFrame(new AudioFrame(chunk, RATE, 1, FRAME_SAMPLES));
    }
  }

  async stop() {
    this.running = false;
    await Promise.allSettled(this.loops ?? []);
    await this.audio.close();
  }
}

/** Reads `stream` until it ends or `reader.cancel()`; returns the reader and the loop's promise. */
function drain(stream, onItem) {
  const reader = stream.getReader();
  return { reader, done: readAll(reader, onItem) };
}

async function readAll(reader, onItem) {
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      onItem(value);
    }
  } catch {
    // the stream was cancelled at the end of the test
  }
}

/** Reads a subscribed video track, keeping the last frame and arrival times. */
export class VideoSink {
  constructor(track) {
    this.stream = new VideoStream(track);
    this.count = 0;
    this.last = null;
    this.arrivals = [];
    ({ reader: this.reader, done: this.done } = drain(this.stream, (ev) => {
      this.count++;
      this.last = ev.frame;
      this.arrivals.push(Date.now());
      if (this.arrivals.length > 2000) this.arrivals.shift();
    }));
  }

  async freshFrames(n, timeoutMs) {
    const start = this.count;
    await waitUntil(() => this.count >= start + n, timeoutMs, `${n} new video frames`);
  }

  /** Mean colour of the middle half of the last frame, and its size. */
  centre() {
    if (!this.last) throw new Error('no video frame decoded yet');
    const f = this.last.convert(VideoBufferType.RGBA);
    const sum = [0, 0, 0];
    let n = 0;
    for (let y = Math.floor(f.height / 4); y < Math.floor((3 * f.height) / 4); y++) {
      for (let x = Math.floor(f.width / 4); x < Math.floor((3 * f.width) / 4); x++) {
        const i = (y * f.width + x) * 4;
        sum[0] += f.data[i];
        sum[1] += f.data[i + 1];
        sum[2] += f.data[i + 2];
        n++;
      }
    }
    return { rgb: sum.map((s) => s / n), width: f.width, height: f.height };
  }

  /** The longest time without a frame after `since` (ms). */
  longestGap(since) {
    const times = [since, ...this.arrivals.filter((t) => t > since)];
    let gap = 0;
    for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i] - times[i - 1]);
    return gap;
  }

  async close() {
    await this.reader.cancel().catch(() => {});
    await this.done;
  }
}

/** Reads a subscribed audio track at 48 kHz mono, keeping the last second. */
export class AudioSink {
  constructor(track) {
    this.stream = new AudioStream(track, RATE, 1);
    this.frames = 0;
    this.chunks = [];
    ({ reader: this.reader, done: this.done } = drain(this.stream, (frame) => {
      this.frames++;
      this.chunks.push(Int16Array.from(frame.data));
      if (this.chunks.length > 100) this.chunks.shift();
    }));
  }

  /** Wait until `ms` of audio arrived after now (frames are 10 ms). */
  async freshAudio(ms, timeoutMs) {
    const start = this.frames;
    await waitUntil(() => this.frames >= start + ms / 10, timeoutMs, `${ms} ms of new audio`);
  }

  /** RMS (fraction of full scale) and the strongest frequency (Hz) of the last `ms`. */
  analyse(ms = 500) {
    const all = this.chunks.flatMap((c) => Array.from(c));
    const x = all.slice(-Math.round((ms / 1000) * RATE));
    const rms = Math.sqrt(x.reduce((a, v) => a + v * v, 0) / x.length) / 32768;
    // A plain DFT over the speech band in 2 Hz steps: enough to name a pure tone.
    let peakHz = 0;
    let peak = -1;
    for (let hz = 100; hz <= 2000; hz += 2) {
      const w = (2 * Math.PI * hz) / RATE;
      let re = 0;
      let im = 0;
      for (let i = 0; i < x.length; i++) {
        re += x[i] * Math.cos(w * i);
        im -= x[i] * Math.sin(w * i);
      }
      const p = re * re + im * im;
      if (p > peak) {
        peak = p;
        peakHz = hz;
      }
    }
    return { rms, peakHz };
  }

  async close() {
    await this.reader.cancel().catch(() => {});
    await this.done;
  }
}
