"""General MIDI: the 128 program names, the 16 instrument families, and the programs the music source arranges
for (with the register each one plays a melody in)."""

from __future__ import annotations

from dataclasses import dataclass

#: General MIDI level 1 program names, program 0..127
GM_PROGRAMS = (
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano", "Electric Piano 1",
    "Electric Piano 2", "Harpsichord", "Clavinet", "Celesta", "Glockenspiel", "Music Box", "Vibraphone", "Marimba",
    "Xylophone", "Tubular Bells", "Dulcimer", "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ",
    "Reed Organ", "Accordion", "Harmonica", "Tango Accordion", "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)",
    "Electric Guitar (jazz)", "Electric Guitar (clean)", "Electric Guitar (muted)", "Overdriven Guitar",
    "Distortion Guitar", "Guitar Harmonics", "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)",
    "Fretless Bass", "Slap Bass 1", "Slap Bass 2", "Synth Bass 1", "Synth Bass 2", "Violin", "Viola", "Cello",
    "Contrabass", "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani", "String Ensemble 1",
    "String Ensemble 2", "Synth Strings 1", "Synth Strings 2", "Choir Aahs", "Voice Oohs", "Synth Voice",
    "Orchestra Hit", "Trumpet", "Trombone", "Tuba", "Muted Trumpet", "French Horn", "Brass Section", "Synth Brass 1",
    "Synth Brass 2", "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon",
    "Clarinet", "Piccolo", "Flute", "Recorder", "Pan Flute", "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina",
    "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)", "Lead 5 (charang)",
    "Lead 6 (voice)", "Lead 7 (fifths)", "Lead 8 (bass + lead)", "Pad 1 (new age)", "Pad 2 (warm)",
    "Pad 3 (polysynth)", "Pad 4 (choir)", "Pad 5 (bowed)", "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)",
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)", "FX 5 (brightness)", "FX 6 (goblins)",
    "FX 7 (echoes)", "FX 8 (sci-fi)", "Sitar", "Banjo", "Shamisen", "Koto", "Kalimba", "Bagpipe", "Fiddle", "Shanai",
    "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock", "Taiko Drum", "Melodic Tom", "Synth Drum", "Reverse Cymbal",
    "Guitar Fret Noise", "Breath Noise", "Seashore", "Bird Tweet", "Telephone Ring", "Helicopter", "Applause",
    "Gunshot",
)
#: the 16 General MIDI families, eight programs each (family i holds programs 8i .. 8i + 7)
GM_FAMILIES = (
    "piano", "chromatic percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass", "reed", "pipe",
    "synth lead", "synth pad", "synth effects", "ethnic", "percussive", "sound effects",
)


def family_of(program: int) -> str:
    """The General MIDI family of ``program`` (0..127)."""
    if not 0 <= int(program) < 128:
        raise ValueError(f"General MIDI programs are 0..127, got {program!r}")
    return GM_FAMILIES[int(program) // 8]


@dataclass(frozen=True)
class Instrument:
    """A program the music source plays, the word a caption uses for it, and the MIDI note its melodies centre on."""

    program: int
    word: str
    centre: int

    @property
    def family(self) -> str:
        return family_of(self.program)

    @property
    def name(self) -> str:
        return GM_PROGRAMS[self.program]


#: programs that carry a melody, by family (the twelve pitched families that play tunes)
MELODY_INSTRUMENTS = (
    Instrument(0, "piano", 67), Instrument(1, "bright piano", 67), Instrument(4, "electric piano", 67),
    Instrument(6, "harpsichord", 67),
    Instrument(8, "celesta", 79), Instrument(9, "glockenspiel", 84), Instrument(11, "vibraphone", 72),
    Instrument(12, "marimba", 72), Instrument(13, "xylophone", 79),
    Instrument(16, "organ", 67), Instrument(19, "church organ", 67), Instrument(21, "accordion", 67),
    Instrument(22, "harmonica", 72),
    Instrument(24, "nylon-string guitar", 62), Instrument(25, "acoustic guitar", 62),
    Instrument(26, "jazz guitar", 62), Instrument(27, "electric guitar", 64),
    Instrument(32, "upright bass", 43), Instrument(33, "electric bass", 43), Instrument(35, "fretless bass", 43),
    Instrument(40, "violin", 74), Instrument(41, "viola", 64), Instrument(42, "cello", 52),
    Instrument(46, "harp", 67),
    Instrument(48, "string ensemble", 67), Instrument(49, "string section", 67), Instrument(52, "choir", 67),
    Instrument(56, "trumpet", 69), Instrument(57, "trombone", 55), Instrument(60, "French horn", 60),
    Instrument(61, "brass section", 64),
    Instrument(64, "soprano saxophone", 72), Instrument(65, "alto saxophone", 65), Instrument(68, "oboe", 74),
    Instrument(71, "clarinet", 67), Instrument(70, "bassoon", 52),
    Instrument(73, "flute", 77), Instrument(72, "piccolo", 86), Instrument(74, "recorder", 77),
    Instrument(75, "pan flute", 74),
    Instrument(80, "square-wave synth lead", 69), Instrument(81, "sawtooth synth lead", 69),
    Instrument(87, "bass-and-lead synth", 64),
    Instrument(88, "new-age synth pad", 67), Instrument(89, "warm synth pad", 67), Instrument(90, "polysynth pad", 67),
)
#: programs that play the chords under a melody
CHORD_INSTRUMENTS = tuple(i for i in MELODY_INSTRUMENTS if i.program in (0, 4, 16, 19, 21, 24, 25, 26, 46, 48, 49, 52,
                                                                        61, 88, 89, 90))
#: programs that play the bass line
BASS_INSTRUMENTS = tuple(i for i in MELODY_INSTRUMENTS if i.family == "bass")
#: program -> instrument
BY_PROGRAM = {i.program: i for i in MELODY_INSTRUMENTS}
#: families a melody can be played by (the instrument-family detector's classes)
MELODY_FAMILIES = tuple(dict.fromkeys(i.family for i in MELODY_INSTRUMENTS))
#: General MIDI drum kits (bank 128 presets) and the word for each
DRUM_KITS = {0: "standard", 8: "room", 16: "power", 24: "electronic", 25: "808", 32: "jazz", 40: "brush"}



def _family_centre(family: str) -> int:
    centres = sorted(i.centre for i in MELODY_INSTRUMENTS if i.family == family)
    return centres[len(centres) // 2]


#: every program of the twelve melody families (the curated ones as above, the rest at their family's median
#: register): ``--lead-programs all`` draws leads from these, for a wider idea of each family
ALL_MELODY_PROGRAMS = tuple(
    BY_PROGRAM.get(program) or Instrument(program, GM_PROGRAMS[program].lower(), _family_centre(family_of(program)))
    for program in range(8 * len(MELODY_FAMILIES))
)
#: program -> instrument, over every program of the melody families
INSTRUMENT_BY_PROGRAM = {i.program: i for i in ALL_MELODY_PROGRAMS}
