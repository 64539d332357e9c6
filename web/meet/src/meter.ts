// A microphone level meter: the RMS of the track's samples, drawn as a bar a few times a second.

import { h } from './dom';

export interface Meter {
  element: HTMLElement;
  watch(track: MediaStreamTrack | null): void;
}

export function levelMeter(label: string): Meter {
  const bar = h('meter', { min: 0, max: 1, value: 0, 'aria-label': label, class: 'level', 'data-testid': 'mic-level' });
  let context: AudioContext | null = null;
  let timer: number | undefined;
  const stop = () => {
    if (timer !== undefined) clearInterval(timer);
    timer = undefined;
    void context?.close().catch(() => undefined);
    context = null;
    bar.value = 0;
  };
  return {
    element: bar,
    watch(track) {
      stop();
      if (!track) return;
      context = new AudioContext();
      const analyser = context.createAnalyser();
      analyser.fftSize = 512;
      context.createMediaStreamSource(new MediaStream([track])).connect(analyser);
      const samples = new Float32Array(analyser.fftSize);
      timer = window.setInterval(() => {
        analyser.getFloatTimeDomainData(samples);
        let sum = 0;
        for (const s of samples) sum += s * s;
        // RMS of full-scale speech is about 0.1 to 0.3; scale so speaking fills most of the bar.
        bar.value = Math.min(1, Math.sqrt(sum / samples.length) * 4);
      }, 100);
    },
  };
}
