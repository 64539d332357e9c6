// Page-side helpers driven by run.mjs through page.evaluate(). Uses only the public
// livekit-client API (UMD global `LivekitClient`) plus the recorders installed by the
// init script (window.__moim.pcs / window.__moim.wss).
(() => {
  const LK = window.LivekitClient;
  const statusEl = () => document.getElementById('status');

  const app = {
    room: null,
    events: [], // {name, t, ...details}
    data: [], // received data messages
    ready: !!LK,

    version() {
      return LK ? LK.version : null;
    },

    note(name, details = {}) {
      const e = { name, t: Date.now(), ...details };
      app.events.push(e);
      console.log(`[moim-test] event ${name} ${JSON.stringify(details)}`);
    },

    /** `publish`: 'both' (camera and microphone), 'camera', or 'none'. */
    async join(url, token, roomOptions = {}, publish = 'both') {
      LK.setLogLevel('info');
      const room = new LK.Room(roomOptions);
      app.room = room;
      const E = LK.RoomEvent;
      room
        .on(E.Connected, () => app.note('connected'))
        .on(E.Reconnecting, () => app.note('reconnecting'))
        .on(E.SignalReconnecting, () => app.note('signalReconnecting'))
        .on(E.Reconnected, () => app.note('reconnected'))
        .on(E.Disconnected, (reason) => app.note('disconnected', { reason }))
        .on(E.ConnectionStateChanged, (state) => app.note('connectionState', { state }))
        .on(E.ParticipantConnected, (p) => app.note('participantConnected', { identity: p.identity }))
        .on(E.ParticipantDisconnected, (p) =>
          app.note('participantDisconnected', { identity: p.identity }),
        )
        .on(E.TrackSubscribed, (track, pub, p) => {
          app.note('trackSubscribed', { identity: p.identity, kind: track.kind, sid: pub.trackSid });
          if (track.kind === 'video') {
            // Attach video so nothing can argue the decoder has no sink.
            const el = track.attach();
            el.muted = true;
            el.autoplay = true;
            el.playsInline = true;
            el.dataset.identity = p.identity;
            document.getElementById('media').appendChild(el);
          }
        })
        .on(E.TrackSubscriptionFailed, (sid, p, reason) =>
          app.note('trackSubscriptionFailed', { sid, identity: p?.identity, reason: String(reason) }),
        )
        .on(E.TrackUnsubscribed, (track, pub, p) =>
          app.note('trackUnsubscribed', { identity: p.identity, kind: track.kind }),
        )
        .on(E.LocalTrackPublished, (pub) => app.note('localTrackPublished', { kind: pub.kind }))
        .on(E.MediaDevicesError, (e) => app.note('mediaDevicesError', { message: e.message }))
        .on(E.ConnectionQualityChanged, (quality, p) =>
          app.note('connectionQuality', { identity: p.identity, quality }),
        )
        .on(E.TrackStreamStateChanged, (pub, state, p) =>
          app.note('streamState', { identity: p.identity, sid: pub.trackSid, source: pub.source, state }),
        )
        .on(E.ActiveSpeakersChanged, (speakers) =>
          app.note('activeSpeakers', { identities: speakers.map((p) => p.identity) }),
        )
        .on(E.DataReceived, (payload, participant, kind, topic) => {
          const text = new TextDecoder().decode(payload);
          app.data.push({ text, from: participant ? participant.identity : null, kind, topic, t: Date.now() });
          app.note('dataReceived', { from: participant?.identity, bytes: payload.byteLength, topic });
        });
      // The engine keeps the token it reconnects with; the server replaces
      // it with fresh ones (refresh_token). Only the expiry is noted.
      room.engine.on(LK.EngineEvent.TokenRefreshed, (fresh) => {
        const exp = LK.decodeTokenPayload(fresh).exp;
        app.note('tokenRefreshed', { exp });
      });
      statusEl().textContent = 'connecting';
      await room.connect(url, token);
      statusEl().textContent = 'connected';
      if (publish === 'both') {
        await room.localParticipant.enableCameraAndMicrophone();
      } else if (publish === 'camera') {
        await room.localParticipant.setCameraEnabled(true);
      }
      statusEl().textContent = publish === 'none' ? 'connected' : 'publishing';
      return {
        identity: room.localParticipant.identity,
        sid: room.localParticipant.sid,
        roomName: room.name,
        serverInfo: room.serverInfo ? { ...room.serverInfo } : null,
      };
    },

    summary() {
      const room = app.room;
      if (!room) return null;
      const remotes = [];
      for (const p of room.remoteParticipants.values()) {
        remotes.push({
          identity: p.identity,
          tracks: [...p.trackPublications.values()].map((pub) => ({
            kind: pub.kind,
            source: pub.source,
            subscribed: pub.isSubscribed,
            hasTrack: !!pub.track,
          })),
        });
      }
      return {
        state: room.state,
        local: room.localParticipant.identity,
        localTracks: [...room.localParticipant.trackPublications.values()].map((p) => p.kind),
        remotes,
      };
    },

    /**
     * Makes the microphone carry a steady 440 Hz tone, loud enough to be a
     * voice (about -9 dBov), in place of the fake device's short beeps.
     */
    async speak() {
      const ctx = new AudioContext();
      await ctx.resume();
      const tone = ctx.createOscillator();
      const gain = ctx.createGain();
      gain.gain.value = 0.5;
      const out = ctx.createMediaStreamDestination();
      tone.connect(gain).connect(out);
      tone.start();
      app.toneContext = ctx;
      const pub = app.room.localParticipant.getTrackPublication(LK.Track.Source.Microphone);
      await pub.track.replaceTrack(out.stream.getAudioTracks()[0], true);
      await app.room.localParticipant.setMicrophoneEnabled(true);
    },

    async setMicrophone(enabled) {
      await app.room.localParticipant.setMicrophoneEnabled(enabled);
    },

    /** bytesSent and framesEncoded of each outbound video layer, by rid. */
    async outboundVideo() {
      const out = {};
      for (const pc of window.__moim.pcs) {
        if (pc.connectionState === 'closed' || pc.signalingState === 'closed') continue;
        (await pc.getStats()).forEach((s) => {
          if (s.type === 'outbound-rtp' && s.kind === 'video') {
            out[s.rid || '-'] = { bytesSent: s.bytesSent, framesEncoded: s.framesEncoded || 0, limitedBy: s.qualityLimitationReason };
          }
        });
      }
      return out;
    },

    /** Sizes the <video> showing `identity`'s camera (adaptive stream asks for what it shows), or hides it. */
    styleVideo(identity, { width, height, hidden = false }) {
      const els = [...document.querySelectorAll('video')].filter((el) => el.dataset.identity === identity);
      if (!els.length) throw new Error(`no <video> shows ${identity}`);
      for (const el of els) {
        el.style.width = `${width}px`;
        el.style.height = `${height}px`;
        el.style.display = hidden ? 'none' : 'block';
      }
      return els.length;
    },

    /** Asks for `quality` ('low', 'medium' or 'high') of `identity`'s camera. */
    setRemoteQuality(identity, quality) {
      const p = app.room.remoteParticipants.get(identity);
      const pub = p && p.getTrackPublication(LK.Track.Source.Camera);
      if (!pub) throw new Error(`${identity} publishes no camera`);
      pub.setVideoQuality({ low: LK.VideoQuality.LOW, medium: LK.VideoQuality.MEDIUM, high: LK.VideoQuality.HIGH }[quality]);
    },

    /** Asks for at most `fps` frames a second of `identity`'s camera. */
    setRemoteFps(identity, fps) {
      const p = app.room.remoteParticipants.get(identity);
      const pub = p && p.getTrackPublication(LK.Track.Source.Camera);
      if (!pub) throw new Error(`${identity} publishes no camera`);
      pub.setVideoFPS(fps);
    },

    /** identity → connectionQuality, for the local participant and every remote one. */
    qualities() {
      const room = app.room;
      if (!room) return {};
      const out = { [room.localParticipant.identity]: room.localParticipant.connectionQuality };
      for (const p of room.remoteParticipants.values()) out[p.identity] = p.connectionQuality;
      return out;
    },

    /** Identities in room.activeSpeakers, loudest first. */
    activeSpeakers() {
      return app.room ? app.room.activeSpeakers.map((p) => p.identity) : [];
    },

    subscribedKinds(identity) {
      const p = app.room && app.room.remoteParticipants.get(identity);
      if (!p) return [];
      return [...p.trackPublications.values()]
        .filter((pub) => pub.isSubscribed && pub.track)
        .map((pub) => pub.kind)
        .sort();
    },

    /** Sums inbound-rtp counters over every live RTCPeerConnection on the page. */
    async stats() {
      const out = { pcs: 0, video: { framesDecoded: 0, packetsReceived: 0, bytesReceived: 0 }, audio: { packetsReceived: 0, bytesReceived: 0 }, inbound: [], outbound: [], candidatePairs: [] };
      for (const pc of window.__moim.pcs) {
        if (pc.connectionState === 'closed' || pc.signalingState === 'closed') continue;
        out.pcs += 1;
        let report;
        try {
          report = await pc.getStats();
        } catch (e) {
          continue;
        }
        report.forEach((s) => {
          const kind = s.kind || s.mediaType;
          if (s.type === 'inbound-rtp') {
            out.inbound.push({ kind, ssrc: s.ssrc, mid: s.mid, codecId: s.codecId, packetsReceived: s.packetsReceived, packetsLost: s.packetsLost, framesDecoded: s.framesDecoded, framesReceived: s.framesReceived, keyFramesDecoded: s.keyFramesDecoded, pliCount: s.pliCount, nackCount: s.nackCount });
            if (kind === 'video') {
              out.video.framesDecoded += s.framesDecoded || 0;
              out.video.packetsReceived += s.packetsReceived || 0;
              out.video.bytesReceived += s.bytesReceived || 0;
            } else if (kind === 'audio') {
              out.audio.packetsReceived += s.packetsReceived || 0;
              out.audio.bytesReceived += s.bytesReceived || 0;
            }
          } else if (s.type === 'outbound-rtp') {
            out.outbound.push({ kind, rid: s.rid, ssrc: s.ssrc, packetsSent: s.packetsSent, framesEncoded: s.framesEncoded, qualityLimitationReason: s.qualityLimitationReason });
          } else if (s.type === 'candidate-pair' && s.nominated) {
            out.candidatePairs.push({ state: s.state, bytesSent: s.bytesSent, bytesReceived: s.bytesReceived });
          }
        });
      }
      return out;
    },

    /**
     * Video RTP streams on every live PeerConnection with the codec getStats() says they
     * carry: what the encoder really sends and what the decoder really receives.
     */
    async videoCodecStats() {
      const out = { outbound: [], inbound: [] };
      for (const pc of window.__moim.pcs) {
        if (pc.connectionState === 'closed' || pc.signalingState === 'closed') continue;
        let report;
        try {
          report = await pc.getStats();
        } catch (e) {
          continue;
        }
        const mimeOf = (id) => (id && report.get(id) ? report.get(id).mimeType : null);
        report.forEach((s) => {
          if ((s.kind || s.mediaType) !== 'video') return;
          if (s.type === 'outbound-rtp') {
            out.outbound.push({ rid: s.rid, mimeType: mimeOf(s.codecId), packetsSent: s.packetsSent, framesEncoded: s.framesEncoded, scalabilityMode: s.scalabilityMode, encoderImplementation: s.encoderImplementation, frameWidth: s.frameWidth, frameHeight: s.frameHeight });
          } else if (s.type === 'inbound-rtp') {
            out.inbound.push({ mid: s.mid, mimeType: mimeOf(s.codecId), packetsReceived: s.packetsReceived, framesDecoded: s.framesDecoded, decoderImplementation: s.decoderImplementation, frameWidth: s.frameWidth, frameHeight: s.frameHeight });
          }
        });
      }
      return out;
    },

    /** The mime type of a remote participant's camera as its TrackInfo announces it. */
    remoteVideoMime(identity) {
      const p = app.room && app.room.remoteParticipants.get(identity);
      if (!p) return null;
      const pub = [...p.trackPublications.values()].find((x) => x.kind === 'video');
      return pub ? { mimeType: pub.mimeType, subscribed: pub.isSubscribed, hasTrack: !!pub.track } : null;
    },

    peerConnections() {
      return window.__moim.pcs.map((pc) => ({
        connectionState: pc.connectionState,
        iceConnectionState: pc.iceConnectionState,
        signalingState: pc.signalingState,
        transceivers: pc.getTransceivers().map((t) => `${t.mid}:${t.direction}/${t.currentDirection}:${t.receiver.track?.kind}`),
      }));
    },

    webSockets() {
      return window.__moim.wss.map((e) => ({
        path: e.path,
        created: e.created,
        opened: e.opened,
        closed: e.closed,
        closeCode: e.closeCode,
        closeReason: e.closeReason,
        readyState: e.ws.readyState,
        killedByTest: e.killedByTest,
        hasJoinRequest: new URL(e.url).searchParams.has('join_request'),
        reconnectParam: new URL(e.url).searchParams.get('reconnect'),
      }));
    },

    /** Closes the live signalling WebSocket underneath livekit-client (it did not ask for it). */
    killSignal() {
      const live = window.__moim.wss.filter((e) => e.ws.readyState === WebSocket.OPEN && /\/rtc(\/v1)?$/.test(e.path));
      if (live.length === 0) throw new Error('no open signalling WebSocket to kill');
      const e = live[live.length - 1];
      e.killedByTest = true;
      // Browsers only allow 1000 or 3000-4999 from script; 4000 is an application code
      // livekit-client does not treat specially, so it takes its "signal lost" path.
      e.ws.close(4000, 'moim-test: simulated signal loss');
      return { path: e.path, at: Date.now() };
    },

    async publishText(text, topic) {
      const bytes = new TextEncoder().encode(text);
      await app.room.localParticipant.publishData(bytes, { reliable: true, topic });
      return bytes.byteLength;
    },

    /** Answers RPC `method` with "<payload> back from <identity>". */
    registerRpc(method) {
      app.room.localParticipant.registerRpcMethod(method, async (data) => {
        app.note('rpcInvoked', { method, caller: data.callerIdentity });
        return `${data.payload} back from ${app.room.localParticipant.identity}`;
      });
    },

    async performRpc(destinationIdentity, method, payload) {
      const t = Date.now();
      const response = await app.room.localParticipant.performRpc({ destinationIdentity, method, payload });
      return { response, ms: Date.now() - t };
    },

    /** livekit-client's own fault injection (e.g. 'full-reconnect', 'signal-reconnect'). */
    async simulate(scenario) {
      const at = Date.now();
      await app.room.simulateScenario(scenario);
      return at;
    },

    /**
     * Publishes a screen share: a 1280x720 canvas that changes a little every 200 ms, as a
     * slide with a ticking clock does (headless Chromium has no screen to capture).
     */
    async publishScreen() {
      const canvas = document.createElement('canvas');
      canvas.width = 1280;
      canvas.height = 720;
      const g = canvas.getContext('2d');
      let n = 0;
      const draw = () => {
        g.fillStyle = '#f4f1ea';
        g.fillRect(0, 0, 1280, 720);
        g.fillStyle = '#223';
        g.font = '48px sans-serif';
        g.fillText('moim — shared slide', 80, 120);
        g.font = '32px monospace';
        g.fillText(`frame ${n++}`, 80, 640);
      };
      draw();
      app.screenTimer = setInterval(draw, 200);
      const [track] = canvas.captureStream(15).getVideoTracks();
      const pub = await app.room.localParticipant.publishTrack(track, {
        source: LK.Track.Source.ScreenShare,
        simulcast: false,
      });
      return pub.trackSid;
    },

    /** Every remote video track as received now: stream state and decoder counters. */
    async receivedVideo() {
      const out = [];
      for (const p of app.room.remoteParticipants.values()) {
        for (const pub of p.trackPublications.values()) {
          if (pub.kind !== 'video') continue;
          const v = {
            identity: p.identity,
            source: pub.source,
            sid: pub.trackSid,
            streamState: pub.track?.streamState ?? null,
            frameWidth: 0,
            framesDecoded: 0,
            freezeCount: 0,
            totalFreezesDuration: 0,
            packetsLost: 0,
            packetsReceived: 0,
            nackCount: 0,
            bytesReceived: 0,
          };
          const receiver = pub.track?.receiver;
          if (receiver) {
            (await receiver.getStats()).forEach((s) => {
              if (s.type !== 'inbound-rtp') return;
              for (const k of ['framesDecoded', 'freezeCount', 'totalFreezesDuration', 'packetsLost', 'packetsReceived', 'nackCount', 'bytesReceived']) {
                v[k] += s[k] || 0;
              }
              v.frameWidth = Math.max(v.frameWidth, s.frameWidth || 0);
            });
          }
          out.push(v);
        }
      }
      return out;
    },

    /** The remote participant as this page sees it now: sid and its video track's decoder. */
    async remoteVideo(identity) {
      const p = app.room && app.room.remoteParticipants.get(identity);
      if (!p) return null;
      const pub = [...p.trackPublications.values()].find((x) => x.kind === 'video');
      const out = { sid: p.sid, trackSid: pub?.trackSid ?? null, framesDecoded: 0, packetsReceived: 0 };
      const receiver = pub?.track?.receiver;
      if (!receiver) return out;
      const report = await receiver.getStats();
      report.forEach((s) => {
        if (s.type === 'inbound-rtp') {
          out.framesDecoded += s.framesDecoded || 0;
          out.packetsReceived += s.packetsReceived || 0;
        }
      });
      return out;
    },

    async leave() {
      const t = Date.now();
      await app.room.disconnect();
      return t;
    },

    /**
     * Environment probe: a loopback RTCPeerConnection pair inside the page carrying the fake
     * camera and microphone, read back through app.stats() — proves the counters this suite
     * relies on move in this Chromium without any server.
     */
    async probeLoopback(ms = 2500) {
      const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
      const a = new RTCPeerConnection();
      const b = new RTCPeerConnection();
      a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
      b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
      stream.getTracks().forEach((t) => a.addTrack(t, stream));
      const offer = await a.createOffer();
      await a.setLocalDescription(offer);
      await b.setRemoteDescription(offer);
      const answer = await b.createAnswer();
      await b.setLocalDescription(answer);
      await a.setRemoteDescription(answer);
      const s1 = await app.stats();
      await new Promise((r) => setTimeout(r, ms));
      const s2 = await app.stats();
      a.close();
      b.close();
      stream.getTracks().forEach((t) => t.stop());
      return { before: s1, after: s2 };
    },

    /** Environment probe: fake devices through plain getUserMedia. */
    async probeGetUserMedia() {
      const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
      const v = stream.getVideoTracks();
      const a = stream.getAudioTracks();
      const res = {
        video: v.map((t) => ({ label: t.label, readyState: t.readyState, settings: t.getSettings() })),
        audio: a.map((t) => ({ label: t.label, readyState: t.readyState })),
        secureContext: window.isSecureContext,
      };
      stream.getTracks().forEach((t) => t.stop());
      return res;
    },
  };

  window.app = app;
  if (statusEl()) statusEl().textContent = LK ? 'ready' : 'livekit-client missing';
  document.addEventListener('DOMContentLoaded', () => {
    statusEl().textContent = LK ? 'ready' : 'livekit-client missing';
  });
})();
