"""The feature table: every interpretable feature of one song, audio first, then lyrics."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .factorization import AudioFactorization
from .lyrics import LyricsUnits


@dataclass
class Feature:
    index: int
    name: str  # ``drums_T3`` or the lyric unit's text
    kind: str  # ``audio`` or ``lyrics``
    stem: str | None = None
    segment: int | None = None
    start: float | None = None  # seconds
    end: float | None = None
    unit_index: int | None = None


@dataclass
class FeatureTable:
    features: list[Feature]
    n_audio: int
    n_lyrics: int
    lyrics_unit: str
    sample_rate: int
    stems: list[str]
    n_segments: int

    @classmethod
    def build(cls, fac: AudioFactorization, lyrics: LyricsUnits) -> FeatureTable:
        feats = []
        for c, name in enumerate(fac.component_names()):
            stem, seg, start, end = fac.component_info(c)
            feats.append(Feature(index=c, name=name, kind="audio", stem=stem, segment=seg,
                                 start=start / fac.sample_rate, end=end / fac.sample_rate))
        for u, text in enumerate(lyrics.units):
            feats.append(Feature(index=fac.n_components + u, name=text, kind="lyrics",
                                 unit_index=u))
        return cls(features=feats, n_audio=fac.n_components, n_lyrics=len(lyrics),
                   lyrics_unit=lyrics.kind, sample_rate=fac.sample_rate,
                   stems=list(fac.feature_stem_names), n_segments=fac.n_segments)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> Feature:
        return self.features[i]

    def to_dict(self) -> dict:
        return {"n_audio": self.n_audio, "n_lyrics": self.n_lyrics,
                "lyrics_unit": self.lyrics_unit, "sample_rate": self.sample_rate,
                "stems": self.stems, "n_segments": self.n_segments,
                "features": [asdict(f) for f in self.features]}

    @classmethod
    def from_dict(cls, d: dict) -> FeatureTable:
        return cls(features=[Feature(**f) for f in d["features"]], n_audio=d["n_audio"],
                   n_lyrics=d["n_lyrics"], lyrics_unit=d["lyrics_unit"],
                   sample_rate=d["sample_rate"], stems=list(d["stems"]),
                   n_segments=d["n_segments"])
