"""Render notes with FluidSynth (through pyfluidsynth) and write them as a standard MIDI file (through mido).

Each clip is played by a fresh ``fluidsynth.Synth`` (one that has played before carries state into the next clip),
while one more, kept alive per process and font, holds FluidSynth's sample cache, so that a fresh one loads
FluidR3_GM (148 MB) in about 0.1 s. The font is loaded with ``sfload(path, 1)`` so that every channel gets its preset
(otherwise channel 10, the drums, is silent); reverb and chorus are off, so a render depends on its notes alone.

Example::

    wav = render_notes(notes, programs={0: 73, 1: 24}, drum_kit=0, font="/usr/share/sounds/sf2/TimGM6mb.sf2",
                       sample_rate=16000, seconds=6.0)  # [N] float32
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tokenlm.data.sources.base import MissingRequirement
from tokenlm.data.sources.music.arrange import DRUM_CHANNEL, Note

#: SoundFonts by short name: (path, Debian package); the second one is the held-out timbre set
SOUNDFONTS = {
    "fluidr3": (Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), "fluid-soundfont-gm"),
    "timgm6mb": (Path("/usr/share/sounds/sf2/TimGM6mb.sf2"), "timgm6mb-soundfont"),
}
SYNTH_GAIN = 0.4
MAX_POLYPHONY = 256


def soundfont_path(name_or_path: str) -> Path:
    """The file of a SoundFont given by short name (``fluidr3``, ``timgm6mb``) or path.

    Raises:
        MissingRequirement: the font is not installed (names the Debian package that provides it).
    """
    if name_or_path in SOUNDFONTS:
        path, package = SOUNDFONTS[name_or_path]
        if not path.is_file():
            raise MissingRequirement(f"SoundFont {name_or_path} not found at {path}: apt-get install {package}")
        return path
    path = Path(name_or_path)
    if not path.is_file():
        raise MissingRequirement(f"SoundFont file {path} not found; give a .sf2 path or one of {sorted(SOUNDFONTS)}")
    return path


def check_fluidsynth() -> None:
    """Raise :class:`MissingRequirement` when FluidSynth or its Python binding is missing."""
    try:
        import fluidsynth  # noqa: F401
    except ImportError as err:
        text = str(err)
        if "fluidsynth" in text.lower() and ("library" in text.lower() or "couldn't find" in text.lower()):
            raise MissingRequirement("FluidSynth library not found: apt-get install libfluidsynth3") from None
        raise MissingRequirement("pyfluidsynth is not installed: pip install 'tokenlm[data]' "
                                 "(and apt-get install libfluidsynth3)") from None
    except OSError:
        raise MissingRequirement("FluidSynth library not found: apt-get install libfluidsynth3") from None


@functools.lru_cache(maxsize=4)
def _anchor(font: str, sample_rate: int):  # noqa: ANN202 - fluidsynth.Synth
    """A synthesizer kept alive per process and font: FluidSynth caches a loaded SoundFont's samples while some
    synthesizer holds it, so each clip's fresh synthesizer loads FluidR3_GM in about 0.1 s instead of 0.3 s."""
    return _new_synth(font, sample_rate)[0]


def _new_synth(font: str, sample_rate: int):  # noqa: ANN202 - (fluidsynth.Synth, font id)
    """A fresh synthesizer with ``font`` loaded (``sfload(path, 1)``: every channel gets its preset), reverb and
    chorus off. Each clip gets its own: one that has played before carries state into the next clip (the same notes
    then differ by up to -45 dB), so only a fresh one makes a clip depend on its own notes alone."""
    import fluidsynth

    synth = fluidsynth.Synth(gain=SYNTH_GAIN, samplerate=float(sample_rate))
    synth.setting("synth.reverb.active", 0)
    synth.setting("synth.chorus.active", 0)
    synth.setting("synth.polyphony", MAX_POLYPHONY)
    font_id = synth.sfload(font, 1)
    if font_id < 0:
        synth.delete()
        raise MissingRequirement(f"FluidSynth could not load the SoundFont {font}")
    return synth, font_id


@functools.lru_cache(maxsize=1)
def _write_float():  # noqa: ANN202 - a ctypes function
    """libfluidsynth's ``fluid_synth_write_float``, bound through pyfluidsynth's own library handle (pyfluidsynth's
    ``get_samples`` returns dithered 16-bit samples; float output keeps the synthesizer's full resolution)."""
    import ctypes

    import fluidsynth

    function = fluidsynth.cfunc(
        "fluid_synth_write_float", ctypes.c_int, ("synth", ctypes.c_void_p, 1), ("len", ctypes.c_int, 1),
        ("lout", ctypes.c_void_p, 1), ("loff", ctypes.c_int, 1), ("lincr", ctypes.c_int, 1),
        ("rout", ctypes.c_void_p, 1), ("roff", ctypes.c_int, 1), ("rincr", ctypes.c_int, 1))
    if function is None:
        raise MissingRequirement("this libfluidsynth has no fluid_synth_write_float: apt-get install libfluidsynth3")
    return function


def _samples(synth, frames: int) -> np.ndarray:  # noqa: ANN001 - fluidsynth.Synth
    """``[frames, 2]`` float32 stereo frames, full scale 1.0."""
    out = np.zeros((frames, 2), dtype=np.float32)
    if frames:
        pointer = out.ctypes.data
        _write_float()(synth.synth, frames, pointer, 0, 2, pointer, 1, 2)
    return out


#: SoundFont 2 generators a timbre variation may offset (number, lowest and highest NRPN offset in data units):
#: FluidSynth scales an offset by the generator's NRPN scale (2 for cutoff, envelope times and vibrato depth), so
#: the cutoff moves about -2.4 to +0.4 octaves, the resonance up to 6 dB, envelope times by 1/8 to 2-4 times, and a
#: vibrato of up to 20 cents is added
TIMBRE_GENERATORS = {
    "filter_cutoff": (8, -1200, 200),
    "filter_resonance": (9, 0, 60),
    "vibrato_depth": (6, 0, 10),
    "attack": (34, -300, 600),
    "decay": (36, -600, 600),
    "release": (38, -600, 600),
}
#: the NRPN parameter number (MSB) that addresses SoundFont generators in FluidSynth
SF2_NRPN_MSB = 120


def offset_generators(synth, channel: int, offsets: dict[str, int]) -> None:  # noqa: ANN001 - fluidsynth.Synth
    """Offset SoundFont generators of ``channel`` through NRPN (CC 99 = 120, CC 98 = generator, data entry CC 6 /
    38 = 8192 + offset), as FluidSynth implements the SoundFont 2.01 NRPN; ``offsets`` by
    :data:`TIMBRE_GENERATORS` name."""
    for name, value in offsets.items():
        if name not in TIMBRE_GENERATORS:
            raise ValueError(f"unknown timbre generator {name!r}; allowed: {sorted(TIMBRE_GENERATORS)}")
        generator, low, high = TIMBRE_GENERATORS[name]
        data = 8192 + int(min(max(value, low), high))
        synth.cc(channel, 99, SF2_NRPN_MSB)
        synth.cc(channel, 98, generator)
        synth.cc(channel, 6, (data >> 7) & 127)
        synth.cc(channel, 38, data & 127)


def render_notes(notes: Sequence[Note], programs: dict[int, int], drum_kit: int | None, font: str | Path,
                 sample_rate: int, seconds: float, channels: int = 1,
                 pans: dict[int, int] | None = None, timbre: dict[int, dict[str, int]] | None = None) -> np.ndarray:
    """Render ``notes`` for ``seconds``: ``[N]`` float32 (``channels=1``, the mean of FluidSynth's left and right)
    or ``[2, N]``. ``programs`` maps channels to General MIDI programs; ``drum_kit`` is the bank-128 preset of
    channel 10 (None: no drums); ``pans`` optional MIDI pan (0..127) per channel; ``timbre`` optional generator
    offsets per channel (:func:`offset_generators`)."""
    _anchor(str(font), int(sample_rate))
    synth, font_id = _new_synth(str(font), int(sample_rate))
    try:
        for channel, program in programs.items():
            synth.program_select(channel, font_id, 0, int(program))
        if drum_kit is not None:
            synth.program_select(DRUM_CHANNEL, font_id, 128, int(drum_kit))
        for channel, pan in (pans or {}).items():
            synth.cc(channel, 10, int(pan))
        for channel, offsets in (timbre or {}).items():
            offset_generators(synth, channel, offsets)
        total = int(round(seconds * sample_rate))
        events = []  # (sample, order, kind, note): note-offs before note-ons at the same sample
        for note in notes:
            start = int(round(note.start * sample_rate))
            if start >= total:
                continue
            events.append((start, 1, "on", note))
            events.append((max(int(round(note.end * sample_rate)), start + 1), 0, "off", note))
        events.sort(key=lambda e: (e[0], e[1], e[3].channel, e[3].pitch))
        blocks = []
        position = 0
        for sample, _, kind, note in events:
            sample = min(sample, total)
            if sample > position:
                blocks.append(_samples(synth, sample - position))
                position = sample
            if kind == "on":
                synth.noteon(note.channel, note.pitch, note.velocity)
            else:
                synth.noteoff(note.channel, note.pitch)
        if total > position:
            blocks.append(_samples(synth, total - position))
    finally:
        synth.delete()
    stereo = np.concatenate(blocks).T if blocks else np.zeros((2, 0), dtype=np.float32)  # [2, N]
    return stereo.mean(0) if channels == 1 else stereo


def midi_bytes(notes: Sequence[Note], programs: dict[int, int], drum_kit: int | None, tempo_bpm: float,
               meter: tuple[int, int]) -> bytes:
    """A standard MIDI file (type 1) of the notes: one track per channel, tempo and time signature in the first."""
    import mido

    ticks = 480
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks)
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    conductor.append(mido.MetaMessage("time_signature", numerator=meter[0], denominator=meter[1], time=0))
    midi.tracks.append(conductor)
    beat_s = 60.0 / tempo_bpm
    for channel in sorted({n.channel for n in notes}):
        track = mido.MidiTrack()
        if channel == DRUM_CHANNEL:
            if drum_kit:
                track.append(mido.Message("program_change", channel=channel, program=int(drum_kit), time=0))
        else:
            track.append(mido.Message("program_change", channel=channel, program=int(programs[channel]), time=0))
        events = []
        for note in notes:
            if note.channel == channel:
                events.append((int(round(note.start / beat_s * ticks)), 1, note.pitch, note.velocity))
                events.append((int(round(note.end / beat_s * ticks)), 0, note.pitch, 0))
        events.sort()
        now = 0
        for tick, on, pitch, velocity in events:
            kind = "note_on" if on else "note_off"
            track.append(mido.Message(kind, channel=channel, note=pitch, velocity=velocity, time=tick - now))
            now = tick
        midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()
