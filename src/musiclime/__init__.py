"""musiclime: reproducible MusicLIME explanations of multimodal (audio + lyrics) music classifiers."""

__version__ = "0.1.0"
