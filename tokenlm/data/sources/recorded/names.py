"""Names -> captions for the recorded samples: the LMMS and freedesktop file-name tables, drum-kit instrument names
(:func:`drum_name`), articles (:func:`with_article`) and the held-out rule for whole files (:func:`file_split`)."""

from __future__ import annotations

import re
import zlib

# LMMS file-name stem (trailing digits dropped) -> (phrase, category, instrument family); drums/ files are drums
_LMMS: dict[str, tuple[str, str, str | None]] = {
    "bassdrum": ("a bass drum", "drums", None), "bassdrum_acoustic": ("an acoustic bass drum", "drums", None),
    "clap": ("a hand clap", "drums", None), "clav": ("a clave", "drums", None),
    "crash": ("a crash cymbal", "drums", None), "hihat_closed": ("a closed hi-hat", "drums", None),
    "hihat_foot_pedal": ("a foot-pedal hi-hat", "drums", None), "hihat_opened": ("an open hi-hat", "drums", None),
    "kick": ("a kick drum", "drums", None), "kick_distorted": ("a distorted kick drum", "drums", None),
    "kick_hard": ("a hard kick drum", "drums", None), "kick_hardcore": ("a hardcore kick drum", "drums", None),
    "kick_hiphop": ("a hip-hop kick drum", "drums", None), "kick_long": ("a long kick drum", "drums", None),
    "kick_soft": ("a soft kick drum", "drums", None), "nasty_bass": ("a harsh bass drum", "drums", None),
    "nasty_rim": ("a harsh rimshot", "drums", None), "nasty_snare": ("a harsh snare drum", "drums", None),
    "ride": ("a ride cymbal", "drums", None), "rim": ("a rimshot", "drums", None),
    "shaker": ("a shaker", "drums", None), "sidestick": ("a side stick", "drums", None),
    "snare": ("a snare drum", "drums", None), "snare_acoustic": ("an acoustic snare drum", "drums", None),
    "snare_electro": ("an electronic snare drum", "drums", None), "snare_harsh": ("a harsh snare drum", "drums", None),
    "snare_hiphop": ("a hip-hop snare drum", "drums", None), "snare_muffled": ("a muffled snare drum", "drums", None),
    "snare_rim": ("a snare rimshot", "drums", None), "snare_short": ("a short snare drum", "drums", None),
    "tom": ("a tom", "drums", None), "tom_hi": ("a high tom", "drums", None), "tom_low": ("a low tom", "drums", None),
    "tom_mid": ("a mid tom", "drums", None), "wood": ("a woodblock", "drums", None),
    "zap": ("an electronic zap", "drums", None),
    "bassslap": ("a slap bass", "instrument", "bass"), "cello": ("a cello", "instrument", "strings"),
    "church_organ": ("a church organ", "instrument", "organ"), "e_organ": ("an electric organ", "instrument", "organ"),
    "e_piano_accord": ("a chord on an electric piano", "instrument", "piano"),
    "flute": ("a flute", "instrument", "pipe"), "harpsichord": ("a harpsichord", "instrument", "piano"),
    "piano": ("a piano", "instrument", "piano"), "steel_guitar": ("a steel-string guitar", "instrument", "guitar"),
    "steel_guitar_heavy_distorted": ("a heavily distorted steel-string guitar", "instrument", "guitar"),
    "steel_guitar_medium_distorted": ("a distorted steel-string guitar", "instrument", "guitar"),
    "steel_guitar_slight_distorted": ("a slightly distorted steel-string guitar", "instrument", "guitar"),
    "trumpet": ("a trumpet", "instrument", "brass"),
    "violin_double_stop": ("a violin playing a double stop", "instrument", "strings"),
    "violin_fingered": ("a violin playing fingered notes", "instrument", "strings"),
    "violin_pizzicato": ("a violin played pizzicato", "instrument", "strings"),
    "latin_brass": ("a Latin brass section", "instrument", "brass"),
    "latin_guitar": ("a Latin guitar phrase", "instrument", "guitar"),
    "bass": ("a bass note", "instrument", "bass"), "bass_acid": ("an acid synth bass", "instrument", "bass"),
    "bass_hard": ("a hard synth bass", "instrument", "bass"), "bass_punch": ("a punchy bass", "instrument", "bass"),
    "horror_bass": ("an eerie bass", "instrument", "bass"),
    "matrix1000_pluck": ("a plucked synth bass", "instrument", "bass"),
    "rave_bass": ("a rave synth bass", "instrument", "bass"),
    "synth_acid": ("an acid synth bass", "instrument", "bass"),
    "techno_synth": ("a techno synth bass", "instrument", "bass"),
    "bell_choir": ("a bell choir", "instrument", "chromatic percussion"),
    "chorus": ("a choir", "instrument", "ensemble"), "heaven_strings": ("lush synth strings", "instrument", "ensemble"),
    "juno_pad": ("a Juno synth pad", "instrument", "synth pad"),
    "korg_poly6_drone": ("a synth drone", "instrument", "synth pad"),
    "nord_ambient": ("an ambient synth pad", "instrument", "synth pad"),
    "orion_string": ("synth strings", "instrument", "ensemble"),
    "rave_choir": ("a synth choir", "instrument", "ensemble"),
    "space_strings": ("spacey synth strings", "instrument", "ensemble"),
    "strings": ("a string ensemble", "instrument", "ensemble"),
    "chroma_sound_effect": ("a synthesised sound effect", "effect", None),
    "explode": ("an explosion", "effect", None), "filter_sweep": ("a synth filter sweep", "effect", None),
    "scratch": ("a record scratch", "effect", None), "start": ("a start-up sound effect", "effect", None),
    "stop": ("a stopping sound effect", "effect", None), "warp": ("a warping sound effect", "effect", None),
    "wind_chimes": ("wind chimes", "effect", "chromatic percussion"),
    "applause": ("applause", "crowd", None), "breath": ("a breath", "effect", None),
    "buzz!": ("a buzz", "effect", None),
    "dong": ("a dong", "effect", None), "electric_ping": ("an electric ping", "effect", None),
    "hit": ("a hit", "effect", None), "metalish_dong": ("a metallic dong", "effect", None),
    "metronome": ("a metronome click", "effect", None), "raving_crowd": ("a cheering crowd", "crowd", None),
}
LMMS_FOLDERS = ("drums", "instruments", "basses", "stringsnpads", "latin", "effects", "misc")
# freedesktop theme file stem -> (phrase, category)
_FREEDESKTOP: dict[str, tuple[str, str]] = {
    "alarm-clock-elapsed": ("an alarm clock ringing", "alert"),
    "audio-test-signal": ("a burst of test noise", "effect"),
    "audio-volume-change": ("a short volume-change blip", "alert"), "bell": ("a bell", "alert"),
    "camera-shutter": ("a camera shutter", "effect"), "complete": ("a completion chime", "alert"),
    "device-added": ("a device-connected chime", "alert"), "device-removed": ("a device-removed chime", "alert"),
    "dialog-error": ("an error alert", "alert"), "dialog-information": ("an information blip", "alert"),
    "dialog-warning": ("a warning alert", "alert"), "message-new-instant": ("an instant-message notification", "alert"),
    "message": ("a message notification", "alert"), "network-connectivity-established": ("a connection chime", "alert"),
    "network-connectivity-lost": ("a disconnection chime", "alert"),
    "phone-incoming-call": ("a phone ringing", "alert"), "phone-outgoing-busy": ("a telephone busy tone", "alert"),
    "phone-outgoing-calling": ("a telephone ringback tone", "alert"),
    "power-plug": ("a power-plugged chime", "alert"), "power-unplug": ("a power-unplugged chime", "alert"),
    "screen-capture": ("a camera shutter", "effect"), "service-login": ("a log-in chime", "alert"),
    "service-logout": ("a log-out chime", "alert"), "suspend-error": ("an error beep", "alert"),
    "trash-empty": ("a rustle of crumpled paper", "effect"), "window-attention": ("an attention chime", "alert"),
    "window-question": ("a question chime", "alert"),
}
# drum-kit instrument name (normalised) -> readable name: the first pattern that matches wins
_DRUM_NAMES: tuple[tuple[str, str], ...] = (
    (r"crash.?ride.*bell", "crash-ride cymbal bell"), (r"crash.?ride", "crash-ride cymbal"),
    (r"ride.*(bell|cup)|^bell$", "ride cymbal bell"), (r"ride", "ride cymbal"),
    (r"(hi.?hat|\bhh\b|\bhat\b).*(pedal|\bpd\b|foot)|pedal.*(hh|hat)", "foot-pedal hi-hat"),
    (r"(hi.?hat|\bhh\b|\bhat\b).*semi|semi.*hat", "half-open hi-hat"),
    (r"(hi.?hat|\bhh\b|\bhat\b).*(open|\bop\b)|open.*(hh|hat)|side ohh", "open hi-hat"),
    (r"(hi.?hat|\bhh\b|\bhat\b).*(closed|\bcl\b)|closed.*(hh|hat)", "closed hi-hat"),
    (r"hi.?hat|\bhh\b|\bhat\b", "hi-hat"),
    (r"kick|bass ?drum", "kick drum"), (r"snare.*rim", "snare rimshot"), (r"snare.*roll", "snare roll"),
    (r"snare", "snare drum"), (r"rim|stick", "rimshot"), (r"floor tom|tom floor", "floor tom"),
    (r"tom.*(low|\blo\b)|low tom", "low tom"), (r"tom.*mid|mid.*tom|middle tom", "mid tom"),
    (r"tom.*(hi|high)|high tom", "high tom"), (r"\btom", "tom"), (r"china", "china cymbal"),
    (r"splash", "splash cymbal"), (r"crash", "crash cymbal"), (r"cymbal", "cymbal"), (r"snap", "finger snap"),
    (r"clap", "hand clap"), (r"cowbell", "cowbell"), (r"tambourine", "tambourine"), (r"agogo", "agogo bell"),
    (r"maraca", "maraca"), (r"clave", "clave"), (r"woodblock", "woodblock"), (r"cajon.*slap", "cajon slap"),
    (r"cajon", "cajon"), (r"bongo", "bongo"), (r"conga", "conga"), (r"djembe.*slap", "djembe slap"),
    (r"djembe.*bass", "djembe bass tone"), (r"djembe", "djembe"), (r"(sangban|dununba|kenkeni).*bell", "dunun bell"),
    (r"sangban|dununba|kenkeni", "dunun drum"), (r"waterglass", "water glass"), (r"whistle", "whistle"),
    (r"\bzap\b", "electronic zap"),
)
_BRANDS = re.compile(r"\b(pearl|sabian|paiste|zildjian|tama|varibreaks)\b")


def drum_name(instrument: str) -> str | None:
    """A readable name for a drum-kit instrument (``"Sabian Hat Closed"`` -> ``"closed hi-hat"``), or None."""
    text = re.sub(r"\(.*?\)", " ", instrument.lower())  # drop "(Tama Superstar 22")"
    text = re.sub(r"^[a-g]#?\d\s*-\s*", "", text)  # drop a note prefix: "c#3 - stick"
    text = " ".join(_BRANDS.sub(" ", text).split())
    for pattern, name in _DRUM_NAMES:
        if re.search(pattern, text):
            return name
    return None


def with_article(name: str) -> str:
    """``name`` with "a" or "an" in front."""
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def file_split(key: str) -> str:
    """The only split a file of a collection may appear in, from a fixed hash of its path inside the collection."""
    bucket = zlib.crc32(key.encode()) % 10
    return "test_heldout" if bucket == 0 else "valid" if bucket == 1 else "train"
