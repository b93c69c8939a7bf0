"""Video nodes (``pip install 'chainlib[video]'``, PyAV with its bundled FFmpeg).

- ``video.frames`` (iterator): decode a video's frames lazily, in order;
- ``video.info``: frame rate, frame count, size, duration, audio;
- ``video.save`` (collector): encode frames (images or an image sequence) to H.264, with the
  source's audio.

A resumable video run writes each frame with ``image.save`` (one manifest record per frame) and
encodes the sequence with ``video.save(frames=...)`` once every frame exists; see
``docs/models.md``.
"""

from __future__ import annotations

from .frames import frames, info
from .save import save

__all__ = ["frames", "info", "save"]
