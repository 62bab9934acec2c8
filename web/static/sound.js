// Short synthesised sounds (WebAudio: no files to fetch) for a tap, a win
// and a loss, and a buzz (navigator.vibrate) where the device has one. The
// mute switch is remembered across visits. Browsers start audio only after
// a user gesture, so the AudioContext is made on the first sound.
//
//   import { Sounds } from "/static/sound.js";
//   const sounds = new Sounds();
//   sounds.play("win");          // no-op when muted
//   sounds.setMuted(true);       // remembered in localStorage
//   sounds.log                   // [{kind, at, muted}] what was asked for (tests read it)

const MUTE_KEY = "tapgrid.muted";
const TONES = {
  tap: { notes: [[660, 0, 0.05]], type: "triangle", gain: 0.08, buzz: 12 },
  win: { notes: [[660, 0, 0.09], [880, 0.09, 0.09], [1320, 0.18, 0.16]], type: "sine", gain: 0.12, buzz: [30, 40, 60] },
  loss: { notes: [[300, 0, 0.12], [220, 0.12, 0.18]], type: "sawtooth", gain: 0.04, buzz: 80 },
  refund: { notes: [[520, 0, 0.1]], type: "sine", gain: 0.05, buzz: 0 },
};

export class Sounds {
  constructor() {
    this.ctx = null;
    this.log = [];
    try {
      this.muted = localStorage.getItem(MUTE_KEY) === "1";
    } catch (_) {
      this.muted = false;
    }
  }

  setMuted(muted) {
    this.muted = Boolean(muted);
    try { localStorage.setItem(MUTE_KEY, this.muted ? "1" : "0"); } catch (_) { /* private mode */ }
  }

  play(kind) {
    const tone = TONES[kind];
    if (!tone) return;
    this.log.push({ kind, at: Date.now(), muted: this.muted });
    if (this.log.length > 50) this.log.shift();
    if (this.muted) return;
    if (tone.buzz && typeof navigator.vibrate === "function") {
      try { navigator.vibrate(tone.buzz); } catch (_) { /* not allowed here */ }
    }
    try {
      const Ctx = globalThis.AudioContext || globalThis.webkitAudioContext;
      if (!Ctx) return;
      if (!this.ctx) this.ctx = new Ctx();
      const ctx = this.ctx;
      if (ctx.state === "suspended") ctx.resume().catch(() => {});
      const t = ctx.currentTime;
      for (const [freq, start, len] of tone.notes) {
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.type = tone.type;
        osc.frequency.value = freq;
        gain.gain.setValueAtTime(0.0001, t + start);
        gain.gain.exponentialRampToValueAtTime(tone.gain, t + start + 0.01);
        gain.gain.exponentialRampToValueAtTime(0.0001, t + start + len);
        osc.connect(gain).connect(ctx.destination);
        osc.start(t + start);
        osc.stop(t + start + len + 0.02);
      }
    } catch (_) {
      // No audio device: the game goes on silently.
    }
  }
}
