"""How each genre of the demo sounds: its tempo, rhythm and percussion, timbres, register, filtering and
texture, as data that `hf_fma.demo.music` plays."""

from __future__ import annotations

from dataclasses import dataclass

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
_MIXOLYDIAN = (0, 2, 4, 5, 7, 9, 10)
_PHRYGIAN_DOMINANT = (0, 1, 4, 5, 7, 8, 10)
_MAJOR_PENTATONIC = (0, 2, 4, 7, 9)
_MINOR_PENTATONIC = (0, 3, 5, 7, 10)
_BLUES = (0, 3, 5, 6, 7, 10)
# Chord progressions as degrees of the style's 7-note mode, one chord per bar.
PROGRESSIONS = ((0, 5, 3, 4), (0, 3, 4, 3), (0, 4, 5, 3), (5, 3, 0, 4), (0, 0, 3, 4), (0, 3, 0, 4))
# Timbres whose notes die away on their own (length = decay time); the others hold for `length`.
DECAYING = {"pluck", "piano", "buzz", "epiano"}


@dataclass(frozen=True)
class Voice:
    """One pitched part of a style. Durations are in beats so they follow the track's tempo."""

    timbre: str  # sine/triangle/square/saw/string: held waveform; organ: additive; DECAYING: plucked/struck
    octave: int  # semitones above the style's root
    play: str  # walk: melody | arp: chord tones in turn | chord: all tones | root: bass | drone: tonic chord
    every: int = 4  # grid steps between onsets
    pattern: str = ""  # one bar of onsets ('x'), instead of `every`
    density: float = 1.0  # probability that an onset sounds
    length: float = 1.0  # beats
    level: float = 0.3
    attack: float = 0.005  # seconds
    vibrato: float = 0.0  # depth in semitones
    tones: tuple[int, ...] = (0, 2, 4)  # chord tones as mode degrees above the chord's root
    strum: float = 0.0  # seconds between successive chord tones


@dataclass(frozen=True)
class Style:
    """How a genre sounds: grid and tempo, drums, harmony, parts and the mix around them."""

    bpm: float = 0.0
    steps: int = 4  # grid steps per beat: 4 = sixteenths, 3 = triplets / shuffle
    swing: float = 0.0  # fraction of a step by which every second step is late
    drums: tuple[tuple[str, str], ...] = ()  # (drum, one bar: 'x' hit, 'o' soft hit, '.' rest)
    drum_level: float = 0.5
    mode: tuple[int, ...] = _MAJOR
    melody: tuple[int, ...] | None = None  # scale of "walk" parts (default: the mode)
    root: int = 48  # MIDI note of the tonic, before the per-track transposition
    voices: tuple[Voice, ...] = ()
    texture: str = "grid"  # grid: parts on a beat grid | free: no pulse | speech: a talking voice
    distortion: float = 0.0  # tanh drive on the pitched parts
    lowpass: float = 10000.0
    highpass: float = 40.0
    reverb: float = 0.0
    hiss: float = 0.0
    crackle: float = 0.0  # clicks per second, as on a worn record


STYLES = {
    # Four-on-the-floor kick, offbeat open hats and claps; sawtooth bass and fast arpeggios, bright.
    "Electronic": Style(
        bpm=126, drums=(("kick", "x...x...x...x..."), ("clap", "....x.......x..."), ("openhat", "..x...x...x...x."),
                        ("hat", "oooooooooooooooo")),
        mode=_MINOR, root=45, lowpass=11000, voices=(
            Voice("saw", 0, "root", every=2, length=0.4, level=0.45),
            Voice("saw", 24, "arp", every=1, density=0.9, length=0.2, level=0.2),
            Voice("saw", 12, "chord", every=16, length=4, level=0.07, attack=0.2))),
    # No pulse: glissandi, FM clangs, noise bursts and beating drones.
    "Experimental": Style(texture="free", lowpass=14000, reverb=0.4),
    # Plucked strings, strummed chords, no drums, mid register.
    "Folk": Style(
        bpm=96, mode=_MAJOR, root=55, lowpass=7000, reverb=0.15, voices=(
            Voice("pluck", 12, "walk", every=2, density=0.7, length=1.2, level=0.45),
            Voice("pluck", 0, "chord", every=8, length=2.5, level=0.3, strum=0.025),
            Voice("pluck", -12, "root", every=8, length=2.5, level=0.35))),
    # Slow swung beat, long sub-bass 808 kick and bass, sparse keys, dusty top end.
    "Hip-Hop": Style(
        bpm=88, swing=0.3, drums=(("kick808", "x......x..x....."), ("snare", "....x.......x..."),
                                  ("hat", "x.o.x.o.x.o.x.o.")),
        drum_level=0.7, mode=_MINOR, melody=_MINOR_PENTATONIC, root=36, lowpass=6000, hiss=0.004, voices=(
            Voice("sine", 0, "root", pattern="x......x..x.....", length=1.5, level=0.5),
            Voice("epiano", 24, "walk", every=4, density=0.45, length=1.5, level=0.22),
            Voice("epiano", 12, "chord", every=16, length=3, level=0.1))),
    # Slow piano melody over soft pads, no drums, reverberant.
    "Instrumental": Style(
        bpm=66, mode=_MAJOR, root=52, lowpass=5000, reverb=0.5, voices=(
            Voice("piano", 12, "walk", every=4, density=0.8, length=2.5, level=0.5),
            Voice("sine", 0, "chord", every=16, length=4.2, level=0.18, attack=0.5),
            Voice("sine", -12, "root", every=16, length=4, level=0.25, attack=0.1))),
    # 12/8 hand drums and shaker, a sitar-like buzzing lead with vibrato over a tonic drone.
    "International": Style(
        bpm=100, steps=3, drums=(("handdrum", "x..x.xx..x.x"), ("doum", "x.....x....."), ("shaker", "oooooooooooo")),
        mode=_PHRYGIAN_DOMINANT, root=50, lowpass=9000, voices=(
            Voice("buzz", 12, "walk", every=3, density=0.75, length=1.2, level=0.35, vibrato=0.3),
            Voice("saw", -12, "drone", every=12, length=4.2, level=0.08, tones=(0, 4)))),
    # Backbeat, square-wave stabs and a catchy square lead in a major pentatonic.
    "Pop": Style(
        bpm=116, drums=(("kick", "x.......x.x....."), ("snare", "....x.......x..."), ("hat", "x.x.x.x.x.x.x.x.")),
        mode=_MAJOR, melody=_MAJOR_PENTATONIC, root=48, lowpass=10000, voices=(
            Voice("triangle", -12, "root", every=2, length=0.45, level=0.4),
            Voice("square", 12, "chord", every=4, length=0.4, level=0.07),
            Voice("square", 24, "walk", every=2, density=0.7, length=0.45, level=0.13))),
    # Fast, loud drums with crash; distorted power-chord eighths and bass.
    "Rock": Style(
        bpm=144, drums=(("kick", "x.....x.x......."), ("snare", "....x.......x..."), ("hat", "x.x.x.x.x.x.x.x."),
                        ("crash", "x...............")),
        drum_level=0.6, mode=_MINOR, root=40, distortion=6.0, lowpass=8000, voices=(
            Voice("saw", 0, "chord", every=2, length=0.45, level=0.4, tones=(0, 4, 7)),
            Voice("saw", -12, "root", every=2, length=0.45, level=0.3))),
    # Triplet shuffle, bent triangle lead on the blues scale, walking bass, organ bed.
    "Blues": Style(
        bpm=76, steps=3, drums=(("kick", "x.....x....."), ("snare", "...x.....x.."), ("hat", "x.xx.xx.xx.x")),
        drum_level=0.35, mode=_MIXOLYDIAN, melody=_BLUES, root=45, lowpass=6000, voices=(
            Voice("triangle", 12, "walk", every=3, density=0.6, length=0.9, level=0.35, vibrato=0.4),
            Voice("triangle", -12, "walk", every=3, length=0.9, level=0.3),
            Voice("organ", 0, "chord", every=12, length=4, level=0.08, attack=0.05))),
    # Bowed strings: slow attacks, vibrato, sustained four-part chords, no drums, reverberant.
    "Classical": Style(
        bpm=72, mode=_MAJOR, root=55, lowpass=4500, reverb=0.6, voices=(
            Voice("string", 12, "walk", every=4, density=0.9, length=1.1, level=0.22, attack=0.08, vibrato=0.15),
            Voice("string", 0, "chord", every=16, length=4.1, level=0.1, attack=0.3, vibrato=0.1,
                   tones=(0, 2, 4, 7)),
            Voice("string", -12, "root", every=8, length=2.1, level=0.14, attack=0.1))),
    # Boom-chick: bass on 1 and 3, strummed chord on 2 and 4, twangy plucked lead.
    "Country": Style(
        bpm=108, drums=(("kick", "x.......x......."), ("snare", "....o.......o...")), drum_level=0.35,
        mode=_MAJOR, melody=_MAJOR_PENTATONIC, root=50, lowpass=8000, voices=(
            Voice("triangle", -12, "root", pattern="x.......x.......", length=0.9, level=0.4),
            Voice("pluck", 0, "chord", pattern="....x.......x...", length=0.8, level=0.25, strum=0.012),
            Voice("pluck", 24, "walk", every=2, density=0.6, length=0.7, level=0.3))),
    # Brushes, warm pads and a breathy flute-like lead with vibrato, reverberant.
    "Easy Listening": Style(
        bpm=84, drums=(("brush", "x.x.x.x.x.x.x.x."), ("kick", "x.......x.......")), drum_level=0.2,
        mode=_MAJOR, root=53, lowpass=5000, reverb=0.4, voices=(
            Voice("sine", 0, "chord", every=16, length=4.2, level=0.2, attack=0.4),
            Voice("sine", 24, "walk", every=4, density=0.7, length=1.6, level=0.25, attack=0.05, vibrato=0.2),
            Voice("sine", -12, "root", every=8, length=1.8, level=0.25))),
    # Swing ride, hi-hat on 2 and 4, walking bass, sparse seventh-chord comping.
    "Jazz": Style(
        bpm=132, steps=3, drums=(("ride", "x..x.xx..x.x"), ("hat", "...o.....o..")), drum_level=0.4,
        mode=_MIXOLYDIAN, root=41, lowpass=6000, reverb=0.2, voices=(
            Voice("sine", 0, "walk", every=3, length=0.9, level=0.45),
            Voice("triangle", 12, "chord", every=3, density=0.3, length=0.6, level=0.08, tones=(0, 2, 4, 6)),
            Voice("square", 24, "walk", every=3, density=0.35, length=0.8, level=0.05, vibrato=0.15))),
    # A narrow-band gramophone sound: oom-pah piano, hiss and crackle.
    "Old-Time / Historic": Style(
        bpm=100, mode=_MAJOR, root=48, highpass=350, lowpass=2800, hiss=0.03, crackle=12, voices=(
            Voice("piano", -12, "root", pattern="x.......x.......", length=1, level=0.4),
            Voice("piano", 0, "chord", pattern="....x.......x...", length=0.8, level=0.25),
            Voice("piano", 12, "walk", every=2, density=0.8, length=1, level=0.35))),
    # Backbeat with syncopated bass, organ chords and electric-piano fills.
    "Soul-RnB": Style(
        bpm=96, swing=0.12, drums=(("kick", "x..x......x....."), ("snare", "....x.......x..."),
                                   ("hat", "x.x.x.x.x.x.x.x.")),
        mode=_MINOR, root=43, lowpass=7000, voices=(
            Voice("sine", 0, "root", pattern="x..x..x...x.x...", length=0.6, level=0.45),
            Voice("organ", 12, "chord", every=16, length=4, level=0.09, attack=0.03),
            Voice("epiano", 24, "walk", every=2, density=0.5, length=1, level=0.18))),
    # A voice talking: formant-shaped harmonics in syllables, words and pauses; no music.
    "Spoken": Style(texture="speech", highpass=80, lowpass=7000, hiss=0.003),
}


__all__ = ["DECAYING", "PROGRESSIONS", "STYLES", "Style", "Voice"]
