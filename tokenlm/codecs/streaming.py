"""Decode codes to audio while they are still being generated.

A codec's decoder sees a little of the past and, unless it is causal, of the future: its convolutions are padded
on both sides and EnCodec's LSTM carries state. :class:`StreamingDecoder` takes frames as they come and gives back
the audio of every frame it can already decode well: the frames that have ``lookahead`` frames after them,
decoded in a window that starts ``context`` frames before them. When the last frame has arrived,
:meth:`StreamingDecoder.finish` decodes the rest exactly as a whole-sequence decode ends.

With enough context and lookahead the pieces, joined, equal ``codec.decode`` of the whole sequence to within a
small error. Measured on the shipped codec in float32 (4 prompts of 6 s, error RMS over signal RMS): lookahead 4
frames leaves -56 dB at worst, 8 frames with 50 frames of context -68 dB, with 100 frames -96 dB, with 150 -125 dB
(the LSTM's memory); hence the defaults, 100 and 8 (``tests/test_streaming.py`` checks -90 dB). The cost is one
decode of ``context + new + lookahead`` frames per call instead of one decode of everything.

Example::

    decoder = StreamingDecoder(codec)
    for codes in backend.stream_tokens(...):  # [B, K, n] new frames
        audio = decoder.push(codes)           # [B, C, m] new samples (m may be 0)
    audio = decoder.finish()                  # the rest
"""

from __future__ import annotations

import torch

from tokenlm.codecs.base import Codec

#: default frames of past decoded again before new frames (the decoder's left receptive field and LSTM warm-up)
DEFAULT_CONTEXT = 100
#: default frames waited for after a frame before its audio is given (the decoder's right receptive field)
DEFAULT_LOOKAHEAD = 8


class StreamingDecoder:
    """Turns codes that arrive in pieces into audio that leaves in pieces (see the module docstring).

    Args:
        codec: the codec whose :meth:`~tokenlm.codecs.base.Codec.decode` is streamed.
        context: frames before the first new one decoded with it (0 or more).
        lookahead: frames that must follow a frame before its audio is given (0 or more).
        min_frames: decode only once at least this many frames are ready (1 or more): fewer, larger decodes.
    """

    def __init__(self, codec: Codec, context: int = DEFAULT_CONTEXT, lookahead: int = DEFAULT_LOOKAHEAD,
                 min_frames: int = 1) -> None:
        for name, value, low in (("context", context, 0), ("lookahead", lookahead, 0), ("min_frames", min_frames, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"StreamingDecoder {name} must be a whole number of frames >= {low}, got {value!r}")
        self.codec, self.context, self.lookahead, self.min_frames = codec, context, lookahead, min_frames
        self.hop = round(codec.sample_rate / codec.frame_rate)
        self._codes: torch.Tensor | None = None  # [B, K, T'] the frames a later decode still reads
        self._dropped = 0  # frames before those (given, and beyond the context of every later window)
        self._given = 0  # frames whose audio has been given
        self._finished = False

    @property
    def frames(self) -> int:
        """Frames received so far."""
        return self._dropped + (0 if self._codes is None else int(self._codes.shape[-1]))

    def push(self, codes: torch.Tensor) -> torch.Tensor:
        """Add new frames ``[B, K, n]``; returns the audio ``[B, C, m * hop]`` of the frames now decodable (m is 0
        until ``min_frames`` are)."""
        if self._finished:
            raise ValueError("this StreamingDecoder has finished; make a new one")
        if codes.dim() != 3:
            raise ValueError(f"push takes codes shaped [B, K, n], got shape {tuple(codes.shape)}")
        self._codes = codes if self._codes is None else torch.cat([self._codes, codes.to(self._codes.device)], -1)
        ready = self.frames - self.lookahead
        if ready - self._given < self.min_frames:
            return torch.zeros(codes.shape[0], self.codec.channels, 0)
        return self._decode_until(ready)

    def finish(self) -> torch.Tensor:
        """The audio of every frame not given yet (the sequence's end, decoded as a whole decode ends it)."""
        audio = self._decode_until(self.frames)
        self._finished = True
        return audio

    def _decode_until(self, end: int) -> torch.Tensor:
        """Audio of frames ``[given, end)``, decoded in a window from ``given - context`` to the last frame."""
        if self._codes is None:
            raise ValueError("no frames yet: push some codes first")
        if end <= self._given:
            batch = self._codes.shape[0]
            return torch.zeros(batch, self.codec.channels, 0)
        start = max(0, self._given - self.context)  # in frames since the first; >= dropped
        wav = self.codec.decode(self._codes[..., start - self._dropped:]).float().cpu()  # [B, C, (T - start) * hop]
        piece = wav[..., (self._given - start) * self.hop: (end - start) * self.hop]
        self._given = end
        keep_from = max(0, end - self.context)  # no later window starts before this: the rest is never read again
        self._codes = self._codes[..., keep_from - self._dropped:]
        self._dropped = keep_from
        return piece
