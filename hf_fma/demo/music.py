"""The demo's audio: a clip of a genre synthesized from its style, and each track's MP3 file.

Each track draws its own key, tempo, melody, chord progression, levels and mix, so a model has to learn the
genre rather than a file.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import numpy as np
import soundfile as sf

from .catalogue import DEMO_SHORT_SECONDS, Track
from .styles import DECAYING, PROGRESSIONS, STYLES, Style, Voice

def _time(n: int, sr: int) -> np.ndarray:
    # Synthesis runs in float32: twice as fast as float64, and far more precise than the MP3 it becomes.
    return np.arange(n, dtype=np.float32) / np.float32(sr)


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def _degree(scale: tuple[int, ...], degree: int) -> int:
    """Semitones of a scale degree; degrees beyond the scale wrap into the next octaves."""
    return scale[degree % len(scale)] + 12 * (degree // len(scale))


def _add(out: np.ndarray, sound: np.ndarray, start: float, sr: int, gain: float = 1.0) -> None:
    begin = int(round(start * sr))
    if begin >= len(out) or begin + len(sound) <= 0:
        return
    skip = max(0, -begin)
    end = min(len(out), begin + len(sound))
    out[begin + skip:end] += gain * sound[skip:end - begin]


def _note(voice: Voice, hz: float, seconds: float, sr: int) -> np.ndarray:
    """One note of a timbre. Decaying timbres ring for several time constants; others hold, then release."""
    decaying = voice.timbre in DECAYING
    n = int(min(3.0 * seconds, 2.0) * sr) if decaying else int((seconds + 0.05) * sr)
    t = _time(n, sr)
    if voice.vibrato:
        cycles = np.cumsum(hz * 2.0 ** (voice.vibrato * np.sin(2 * np.pi * 5.5 * t) / 12)) / sr
    else:
        cycles = hz * t
    frac = cycles % 1.0
    if voice.timbre in ("pluck", "piano"):
        # Additive partials whose upper harmonics die first: bright attack, mellow tail. The recurrences
        # sin(kx) = 2 cos(x) sin((k-1)x) - sin((k-2)x) and e^-(a k t) = e^-(a (k-1) t) e^-(a t) replace a
        # sin and an exp per partial with multiplications (long plucked notes are the costliest to make).
        n_partials = min(8 if voice.timbre == "pluck" else 6, int(0.45 * sr / hz))
        faster = 0.6 if voice.timbre == "pluck" else 0.3  # how much quicker each partial decays
        phase = 2 * np.pi * cycles
        two_cos, previous, current = 2 * np.cos(phase), np.zeros(n, np.float32), np.sin(phase)
        envelope, step = np.exp(-t / seconds), np.exp(-t * faster / seconds)
        wave = current * envelope
        for k in range(2, n_partials + 1):
            previous, current = current, two_cos * current - previous
            envelope = envelope * step
            wave += current * envelope / (k if voice.timbre == "pluck" else k**1.5)
    elif voice.timbre == "buzz":
        wave = np.tanh(3 * (2 * frac - 1)) * np.exp(-t / seconds)
    elif voice.timbre == "epiano":
        index = 2.5 * np.exp(-t / 0.15)  # FM bell attack, fading to a near-sine
        wave = np.sin(2 * np.pi * cycles + index * np.sin(2 * np.pi * cycles)) * np.exp(-t / seconds)
    elif voice.timbre == "organ":
        k = np.array([1, 2, 3, 4, 6, 8], np.float32)[:, None]
        amps = np.array([1.0, 0.7, 0.5, 0.35, 0.25, 0.2], np.float32)[:, None] * (k * hz < 0.45 * sr)
        wave = (amps * np.sin(2 * np.pi * k * cycles)).sum(axis=0) / 2
    elif voice.timbre in ("saw", "string"):
        wave = 2 * frac - 1
    elif voice.timbre == "square":
        wave = np.sign(0.5 - frac)
    elif voice.timbre == "triangle":
        wave = 4 * np.abs(frac - 0.5) - 1
    else:  # sine
        wave = np.sin(2 * np.pi * cycles)
    envelope = np.minimum(1.0, t / max(voice.attack, 1e-4))
    release = 0.02 if decaying else 0.05  # decaying notes are cut after 3 time constants (or 2 s): fade
    envelope *= np.clip((n / sr - t) / release, 0.0, 1.0)
    return wave * envelope


def _drum_kit(rng: np.random.Generator, sr: int, names: Iterable[str]) -> dict[str, np.ndarray]:
    """The drums a style uses, each peak-normalised. Every track tunes its own kit slightly."""

    def t(seconds):
        return _time(int(seconds * sr), sr)

    def noise(seconds):
        return rng.standard_normal(int(seconds * sr), np.float32)

    def tone(seconds, hz, sweep, sweep_time, decay):
        time_ = t(seconds)
        cycles = np.cumsum(hz + sweep * np.exp(-time_ / sweep_time)) / sr
        return np.sin(2 * np.pi * cycles) * np.exp(-time_ / decay)

    def hiss(seconds, decay, order=2):
        sound = noise(seconds)
        for _ in range(order):  # each difference tilts the spectrum up: a cheap high-pass
            sound = np.diff(sound, prepend=0.0)
        return sound * np.exp(-t(seconds) / decay)

    def clap():
        time_ = t(0.25)
        bursts = sum(np.exp(-np.clip(time_ - d, 0, None) / 0.006) * (time_ >= d) for d in (0.0, 0.011, 0.022))
        return np.diff(noise(0.25), prepend=0.0) * (bursts + 0.5 * np.exp(-time_ / 0.08))

    def ride():
        time_ = t(1.0)
        bell = sum(np.sin(2 * np.pi * f * rng.uniform(0.97, 1.03) * time_) for f in (3150, 3890, 5210, 6470))
        return bell * np.exp(-time_ / 0.35) + 0.3 * hiss(1.0, 0.2)

    recipes = {
        "kick": lambda: tone(0.5, rng.uniform(45, 55), rng.uniform(90, 130), 0.03, rng.uniform(0.12, 0.2)),
        "kick808": lambda: tone(1.2, rng.uniform(40, 48), 70, 0.04, rng.uniform(0.45, 0.7)),
        "snare": lambda: hiss(0.3, rng.uniform(0.07, 0.11), 1) * 0.4 + tone(0.3, rng.uniform(175, 200), 40, 0.01, 0.05),
        "clap": clap,
        "hat": lambda: hiss(0.08, rng.uniform(0.015, 0.03)),
        "openhat": lambda: hiss(0.35, rng.uniform(0.1, 0.15)),
        "crash": lambda: hiss(1.5, rng.uniform(0.6, 0.9), 1),
        "ride": ride,
        "handdrum": lambda: tone(0.4, rng.uniform(260, 320), 80, 0.02, 0.12) + 0.3 * hiss(0.4, 0.01, 1),
        "doum": lambda: tone(0.6, rng.uniform(90, 120), 40, 0.03, 0.2),
        "shaker": lambda: hiss(0.1, 0.03) * np.minimum(1.0, t(0.1) / 0.02),
        "brush": lambda: noise(0.3) * np.exp(-t(0.3) / 0.12),
    }
    kit = {name: recipes[name]() for name in names}
    return {name: sound / np.abs(sound).max() for name, sound in kit.items()}


def _grid(style: Style, rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """A beat-grid piece: drums and pitched parts over a chord progression, starting mid-bar."""
    beat = 60.0 / (style.bpm * rng.uniform(0.94, 1.06))
    step = beat / style.steps
    bar_steps = 4 * style.steps
    bar = bar_steps * step
    # Real clips start anywhere in a track; starting off the bar line keeps onsets from lining up.
    offset = rng.uniform(0, bar)
    n_bars = int(np.ceil((seconds + offset) / bar)) + 1
    n = int(seconds * sr)
    root = style.root + int(rng.integers(-3, 4))
    progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    swing = style.swing * rng.uniform(0.8, 1.2)

    def onset(bar_index: int, step_index: int) -> float:
        late = swing * step if step_index % 2 else 0.0
        return (bar_index * bar_steps + step_index) * step + late - offset

    pitched = np.zeros(n, np.float32)
    for voice in style.voices:
        pattern = voice.pattern or "".join("x" if s % voice.every == 0 else "." for s in range(bar_steps))
        level = voice.level * rng.uniform(0.75, 1.25)
        melody = style.melody or style.mode
        position = int(rng.integers(len(melody), 2 * len(melody)))  # walks start around the middle octave
        arp = 0
        cache: dict[int, np.ndarray] = {}
        for bar_index in range(n_bars):
            chord_root = 0 if voice.play == "drone" else progression[bar_index % len(progression)]
            for step_index, mark in enumerate(pattern):
                if mark != "x" or rng.random() > voice.density:
                    continue
                if voice.play == "walk":
                    position = int(np.clip(position + rng.choice((-2, -1, -1, 0, 1, 1, 2)), 0, 3 * len(melody)))
                    notes = [_degree(melody, position) - 12]
                elif voice.play == "arp":
                    notes = [_degree(style.mode, chord_root + voice.tones[arp % len(voice.tones)])]
                    arp += 1
                elif voice.play == "root":
                    notes = [_degree(style.mode, chord_root)]
                else:  # chord, drone
                    notes = [_degree(style.mode, chord_root + tone) for tone in voice.tones]
                start = onset(bar_index, step_index)
                for i, note in enumerate(notes):
                    # A part replays its few pitches many times: render each once per track.
                    if note not in cache:
                        cache[note] = _note(voice, _midi_hz(root + voice.octave + note), voice.length * beat, sr)
                    sound = cache[note]
                    _add(pitched, sound, start + i * voice.strum, sr, level)
    if style.distortion:
        pitched = np.tanh(style.distortion * pitched) / np.tanh(style.distortion)

    drums = np.zeros(n, np.float32)
    kit = _drum_kit(rng, sr, (name for name, _ in style.drums))
    for name, pattern in style.drums:
        for bar_index in range(n_bars):
            for step_index, mark in enumerate(pattern):
                # Soft hits drop out now and then, like a drummer's hand, not a loop.
                if mark == "x" or (mark == "o" and rng.random() > 0.15):
                    gain = (1.0 if mark == "x" else 0.4) * rng.uniform(0.8, 1.0)
                    _add(drums, kit[name], onset(bar_index, step_index), sr, gain)
    return pitched + style.drum_level * rng.uniform(0.8, 1.2) * drums


def _free(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """No pulse: slow beating drones, sweeping FM glissandi and band-limited noise bursts at random times."""
    n = int(seconds * sr)
    t = _time(n, sr)
    out = np.zeros(n, np.float32)
    for _ in range(int(rng.integers(2, 4))):
        hz = rng.uniform(60, 400)
        out += 0.15 * (np.sin(2 * np.pi * hz * t) + np.sin(2 * np.pi * (hz + rng.uniform(0.5, 3)) * t))
    for _ in range(int(rng.integers(6, 12))):
        length = rng.uniform(0.3, 2.0)
        local = _time(int(length * sr), sr)
        start_hz, end_hz = rng.uniform(100, 4000, size=2)
        hz = start_hz * (end_hz / start_hz) ** (local / length)  # exponential sweep
        cycles = np.cumsum(hz) / sr
        ratio, index = rng.uniform(1.1, 3.7), rng.uniform(0.5, 6)  # inharmonic ratios: clangs, not notes
        sound = np.sin(2 * np.pi * cycles + index * np.sin(2 * np.pi * ratio * cycles))
        _add(out, sound * np.sin(np.pi * local / length) * rng.uniform(0.2, 0.5), rng.uniform(-0.5, seconds), sr)
    for _ in range(int(rng.integers(4, 10))):
        length = rng.uniform(0.05, 0.8)
        sound = rng.standard_normal(int(length * sr), np.float32)
        if rng.random() < 0.5:
            sound = np.cumsum(sound) / np.sqrt(len(sound))  # brown noise: a rumble instead of a hiss
        envelope = np.exp(-_time(len(sound), sr) / (length / 3))
        _add(out, sound / np.abs(sound).max() * envelope * rng.uniform(0.2, 0.6), rng.uniform(0, seconds), sr)
    return out


# Vowel formants (F1, F2, F3) in Hz: /a/, /i/, /u/, /e/, /o/, /æ/.
_VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410),
           (660, 1720, 2410))


def _speech(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """A talking voice: syllables of formant-weighted harmonics, falling intonation, consonant noise, pauses."""
    n = int(seconds * sr)
    out = np.zeros(n, np.float32)
    pitch = rng.uniform(95, 210)  # the speaker's voice
    time_ = rng.uniform(-0.3, 0.2)
    while time_ < seconds:
        n_words = int(rng.integers(3, 9))
        for word in range(n_words):
            for _ in range(int(rng.integers(1, 4))):
                length = rng.uniform(0.12, 0.26)
                local = _time(int(length * sr), sr)
                # Intonation falls across the phrase and moves a little within each syllable.
                f0 = pitch * (1.1 - 0.25 * word / n_words) * (1 + rng.uniform(-0.08, 0.08) * local / length)
                cycles = np.cumsum(f0) / sr
                formants = np.array(_VOWELS[int(rng.integers(len(_VOWELS)))]) * rng.uniform(0.92, 1.08)
                k = np.arange(1, int(4000 / f0[0]) + 1)[:, None]
                weights = np.exp(-(((k * f0[0]) - formants[:, None, None]) / 110.0) ** 2).sum(axis=0) + 0.02
                voiced = (weights / k**0.5 * np.sin(2 * np.pi * k * cycles)).sum(axis=0)
                sound = voiced * np.sin(np.pi * local / length) ** 0.7
                if rng.random() < 0.6:  # a consonant before the vowel: a short high noise burst
                    burst = np.diff(rng.standard_normal(int(0.04 * sr), np.float32), prepend=0.0) * 0.15
                    _add(out, burst * np.hanning(len(burst)), time_, sr)
                    time_ += 0.03
                _add(out, sound / np.abs(sound).max() * rng.uniform(0.5, 0.9), time_, sr)
                time_ += length
            time_ += rng.uniform(0.04, 0.15)
        time_ += rng.uniform(0.3, 0.8)
    return out


def _filter(audio: np.ndarray, sr: int, highpass: float, lowpass: float) -> np.ndarray:
    """Butterworth-shaped magnitude response applied in the frequency domain (no scipy needed)."""
    spectrum = np.fft.rfft(audio)
    freqs = np.fft.rfftfreq(len(audio), 1.0 / sr)
    response = 1.0 / np.sqrt(1.0 + (freqs / lowpass) ** 8)
    response *= 1.0 / np.sqrt(1.0 + (highpass / np.maximum(freqs, 1e-3)) ** 4)
    return np.fft.irfft(spectrum * response.astype(np.float32), n=len(audio))


def _reverb(audio: np.ndarray, sr: int, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Convolution with a decaying-noise impulse response: a room, cheaply."""
    tail = _time(int(1.2 * sr), sr)
    response = rng.standard_normal(len(tail), np.float32) * np.exp(-tail / 0.3)
    size = 1 << int(np.ceil(np.log2(len(audio) + len(response))))
    wet = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(response, size), size)[: len(audio)]
    return audio + amount * wet * (np.abs(audio).max() / max(np.abs(wet).max(), 1e-9))


def _synthesize(style_name: str, rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """A mono clip of one genre, float32 in [-1, 1], shape (samples,)."""
    style = STYLES[style_name]
    if style.texture == "free":
        audio = _free(rng, seconds, sr)
    elif style.texture == "speech":
        audio = _speech(rng, seconds, sr)
    else:
        audio = _grid(style, rng, seconds, sr)
    audio = audio / max(np.abs(audio).max(), 1e-9)
    if style.hiss:
        audio = audio + style.hiss * rng.standard_normal(len(audio), np.float32)
    if style.crackle:
        clicks = np.zeros(len(audio), np.float32)
        positions = rng.integers(0, len(audio), size=int(style.crackle * seconds))
        clicks[positions] = rng.uniform(-0.6, 0.6, size=len(positions))
        audio = audio + clicks
    audio = _filter(audio, sr, style.highpass, style.lowpass * rng.uniform(0.85, 1.15))
    if style.reverb:
        audio = _reverb(audio, sr, style.reverb, rng)
    ramp = _time(len(audio), sr) / 0.01  # 10 ms fades in and out
    fade = np.minimum(1.0, np.minimum(ramp, ramp[::-1]))
    audio = audio * fade
    audio *= rng.uniform(0.5, 0.9) / max(np.abs(audio).max(), 1e-9)  # levels differ between tracks
    return audio.astype(np.float32)


def _id3_tag_only(title: str) -> bytes:
    """An ID3v2.3 tag with a title and padding but no MPEG frames: an .mp3 that holds no audio at all."""
    text = b"\x00" + title.encode("latin-1", "replace")
    frame = b"TIT2" + len(text).to_bytes(4, "big") + b"\x00\x00" + text
    body = frame + bytes(1024)
    size = len(body)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + body


def audio_file(track: Track, seed: int, clip_seconds: float) -> bytes:
    """The bytes of one track's .mp3."""
    if track.kind == "corrupt":
        return _id3_tag_only(f"demo track {track.track_id}")
    # Seeded by (seed, track id): a track sounds the same whichever thread makes it, in whatever order.
    rng = np.random.default_rng([seed, track.track_id])
    seconds = DEMO_SHORT_SECONDS if track.kind == "short" else clip_seconds
    sample_rate = 44100 if track.stereo else 22050
    audio = _synthesize(track.style, rng, seconds, sample_rate)
    if track.stereo:
        # Right = a quieter mix with a 13 ms echo: a stereo image that still sums to the same music.
        delay = int(0.013 * sample_rate)
        right = 0.8 * audio + 0.2 * np.concatenate([np.zeros(delay, np.float32), audio[:-delay]])
        audio = np.stack([audio, right], axis=1)  # (samples, 2)
    buffer = io.BytesIO()
    # compression_level 0.7: a third smaller than libsndfile's default at the same encoding speed and the
    # same audio bandwidth, which makes the archives' bzip2 pass a third faster.
    sf.write(buffer, audio, sample_rate, format="MP3", subtype="MPEG_LAYER_III", compression_level=0.7)
    return buffer.getvalue()


__all__ = ["audio_file"]
