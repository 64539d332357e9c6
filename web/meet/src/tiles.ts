// The grid: one tile per camera and per screen share, sized by how many there are,
// the active speaker outlined, a pinned tile shown large.

import { ConnectionQuality, Track, type Participant, type TrackPublication } from 'livekit-client';
import { handRaised } from './attributes';
import { h } from './dom';
import { t, type Key } from './i18n';

const QUALITY: Record<ConnectionQuality, Key> = {
  [ConnectionQuality.Excellent]: 'qExcellent',
  [ConnectionQuality.Good]: 'qGood',
  [ConnectionQuality.Poor]: 'qPoor',
  [ConnectionQuality.Lost]: 'qLost',
  [ConnectionQuality.Unknown]: 'qUnknown',
};

interface Tile {
  element: HTMLElement;
  video: HTMLVideoElement;
  label: HTMLElement;
  mic: HTMLElement;
  hand: HTMLElement;
  reaction: HTMLElement;
  quality: HTMLElement;
}

export type View = 'grid' | 'speaker';

export class Grid {
  readonly element = h('section', { class: 'grid', 'aria-label': 'video', 'data-count': '0' });
  private tiles = new Map<string, Tile>();
  private pinned: string | null = null;
  private view: View = 'grid';
  private lastSpeaker: string | null = null;
  private reactionTimers = new Map<string, number>();

  /** The key of a participant's camera tile, or of their screen share's. */
  static key(p: Participant, screen = false): string {
    return `${p.identity}${screen ? '#screen' : ''}`;
  }

  /** Brings a participant's tiles in line with what they publish. */
  sync(p: Participant): void {
    this.ensure(p, false);
    const screen = p.getTrackPublication(Track.Source.ScreenShare);
    if (screen?.track || (p.isLocal && screen)) this.ensure(p, true);
    else this.drop(Grid.key(p, true));
    for (const screenShare of [false, true]) {
      const tile = this.tiles.get(Grid.key(p, screenShare));
      if (!tile) continue;
      const pub = p.getTrackPublication(screenShare ? Track.Source.ScreenShare : Track.Source.Camera);
      attachVideo(tile, pub);
      tile.label.textContent = screenShare ? t('screenOf', { name: nameOf(p) }) : `${nameOf(p)}${p.isLocal ? ` ${t('you')}` : ''}`;
    }
    const camTile = this.tiles.get(Grid.key(p));
    if (camTile) {
      const mic = p.getTrackPublication(Track.Source.Microphone);
      const muted = !mic || mic.isMuted;
      camTile.mic.textContent = muted ? t('muted') : '';
      camTile.mic.hidden = !muted;
      camTile.element.dataset.muted = String(muted);
      const hand = handRaised(p);
      camTile.hand.hidden = !hand;
      camTile.element.dataset.hand = String(hand);
      this.quality(p);
    }
    this.layout();
  }

  quality(p: Participant): void {
    const tile = this.tiles.get(Grid.key(p));
    if (!tile) return;
    const q = p.connectionQuality;
    tile.quality.dataset.quality = q;
    tile.quality.title = t('quality', { q: t(QUALITY[q]) });
    tile.quality.setAttribute('aria-label', tile.quality.title);
  }

  speaking(active: Participant[]): void {
    const keys = new Set(active.map((p) => Grid.key(p)));
    for (const [key, tile] of this.tiles) tile.element.classList.toggle('speaking', keys.has(key));
    // The speaker view features someone else: one's own face is the last one wants large.
    const loudest = active.find((p) => !p.isLocal) ?? active[0];
    if (loudest && this.tiles.has(Grid.key(loudest))) this.lastSpeaker = Grid.key(loudest);
    if (this.view === 'speaker') this.layout();
  }

  /** Shows `emoji` on `p`'s camera tile for `ms`. */
  react(p: Participant, emoji: string, ms: number): void {
    const key = Grid.key(p);
    const tile = this.tiles.get(key);
    if (!tile) return;
    tile.reaction.textContent = emoji;
    tile.reaction.hidden = false;
    clearTimeout(this.reactionTimers.get(key));
    this.reactionTimers.set(
      key,
      window.setTimeout(() => {
        tile.reaction.hidden = true;
      }, ms),
    );
  }

  setView(view: View): void {
    this.view = view;
    this.layout();
  }

  remove(p: Participant): void {
    this.drop(Grid.key(p));
    this.drop(Grid.key(p, true));
    this.layout();
  }

  private ensure(p: Participant, screen: boolean): Tile {
    const key = Grid.key(p, screen);
    const existing = this.tiles.get(key);
    if (existing) return existing;
    const video = h('video', { autoplay: true, playsinline: true, muted: true });
    if (p.isLocal && !screen) video.classList.add('mirrored');
    const label = h('span', { class: 'name' });
    const mic = h('span', { class: 'mic' });
    const hand = h('span', { class: 'hand', hidden: true, 'data-testid': 'hand' }, t('handUp'));
    const reaction = h('span', { class: 'reaction', hidden: true, 'aria-live': 'polite', 'data-testid': 'reaction' });
    const quality = h('span', { class: 'quality', role: 'img' });
    const pin = h('button', { type: 'button', class: 'pin', 'aria-pressed': 'false' }, t('pin'));
    const element = h(
      'figure',
      { class: screen ? 'tile screen' : 'tile', 'data-identity': p.identity, 'data-source': screen ? 'screen_share' : 'camera' },
      video,
      reaction,
      h('figcaption', {}, mic, hand, label, quality, pin),
    );
    pin.addEventListener('click', () => {
      this.pinned = this.pinned === key ? null : key;
      this.layout();
    });
    const tile = { element, video, label, mic, hand, reaction, quality };
    this.tiles.set(key, tile);
    this.element.append(element);
    return tile;
  }

  private drop(key: string): void {
    const tile = this.tiles.get(key);
    if (!tile) return;
    tile.element.remove();
    this.tiles.delete(key);
    if (this.pinned === key) this.pinned = null;
  }

  private layout(): void {
    this.element.dataset.count = String(this.tiles.size);
    const columns = Math.ceil(Math.sqrt(this.tiles.size));
    this.element.style.setProperty('--columns', String(Math.max(1, columns)));
    this.element.classList.toggle('has-pinned', this.pinned !== null && this.view === 'grid');
    this.element.classList.toggle('speaker-view', this.view === 'speaker');
    this.element.dataset.view = this.view;
    // In the speaker view one tile is large: the pinned one, else a screen share, else whoever spoke last.
    const screen = [...this.tiles.keys()].find((k) => k.endsWith('#screen'));
    const featured = this.view === 'speaker' ? (this.pinned ?? screen ?? this.lastSpeaker ?? this.tiles.keys().next().value ?? null) : null;
    for (const [key, tile] of this.tiles) {
      const isPinned = key === this.pinned;
      tile.element.classList.toggle('pinned', isPinned);
      tile.element.classList.toggle('featured', key === featured);
      tile.element.querySelector('.pin')?.setAttribute('aria-pressed', String(isPinned));
    }
  }
}

export function nameOf(p: Participant): string {
  return p.name || p.identity;
}

function attachVideo(tile: Tile, pub: TrackPublication | undefined): void {
  const track = pub?.track;
  const showing = tile.video.dataset.track;
  if (track && !pub.isMuted) {
    if (showing !== track.sid) {
      track.attach(tile.video);
      tile.video.dataset.track = track.sid ?? '';
    }
    tile.element.classList.remove('no-video');
  } else {
    tile.element.classList.add('no-video');
  }
}
