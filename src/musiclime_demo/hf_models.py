"""Randomly initialised Hugging Face models built from configs, for offline tests and benchmarks.

Pretrained weights cannot be downloaded everywhere (CI, air-gapped clusters), but the
architectures can be built from a config and saved with ``save_pretrained``; musiclime then
loads them through the same path as a downloaded model (``model.audio_encoder=<folder>``).

    python -m musiclime_demo.hf_models --out models/tiny --lyrics data/demo/songs
    # -> models/tiny/ast, models/tiny/roberta, models/tiny/ast-classifier,
    #    models/tiny/roberta-classifier

``size="tiny"`` is a 2-layer, 32-wide model (seconds on a CPU); ``size="paper"`` the real
sizes of the paper's encoders (AST-base: 12 layers, 768 wide; RoBERTa-large: 24 layers, 1024
wide), random weights: right for timing, meaningless for accuracy.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

AST_SIZES = {
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64),
    "paper": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                  intermediate_size=3072),
}
ROBERTA_SIZES = {
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, vocab_size=None),
    "paper": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                  intermediate_size=4096, vocab_size=50265),
}


def _labels(class_names: list[str] | None) -> dict:
    if not class_names:
        return {}
    return {"num_labels": len(class_names),
            "id2label": dict(enumerate(class_names)),
            "label2id": {n: i for i, n in enumerate(class_names)}}


def build_ast(out: str | Path, size: str = "tiny", class_names: list[str] | None = None,
              max_length: int = 1024, seed: int = 0) -> Path:
    """An AST (``ASTModel``, or ``ASTForAudioClassification`` when ``class_names`` are given)
    with its feature extractor (16 kHz, 128 mel bins, ``max_length`` 10 ms frames)."""
    import torch
    from transformers import (
        ASTConfig,
        ASTFeatureExtractor,
        ASTForAudioClassification,
        ASTModel,
    )

    torch.manual_seed(seed)
    cfg = ASTConfig(max_length=max_length, num_mel_bins=128, **AST_SIZES[size],
                    **_labels(class_names))
    model = ASTForAudioClassification(cfg) if class_names else ASTModel(cfg)
    out = Path(out)
    model.save_pretrained(out)
    ASTFeatureExtractor(max_length=max_length, num_mel_bins=128,
                        sampling_rate=16000).save_pretrained(out)
    return out


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000):
    """A byte-level BPE tokenizer (RoBERTa's kind) trained on ``texts``."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(texts), vocab_size=vocab_size, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    return RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, model_max_length=512,
                                bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                cls_token="<s>", unk_token="<unk>", pad_token="<pad>",
                                mask_token="<mask>")


def build_roberta(out: str | Path, texts: Iterable[str] | None = None, size: str = "tiny",
                  class_names: list[str] | None = None, seed: int = 0,
                  initializer_range: float = 0.02) -> Path:
    """A RoBERTa (``RobertaModel``, or ``RobertaForSequenceClassification`` with
    ``class_names``) and a tokenizer trained on ``texts`` (the demo lyrics).
    ``initializer_range``: the weights' standard deviation (the default 0.02 makes a tiny
    random classifier's output almost constant; 0.5 makes it react to its input)."""
    import torch
    from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaModel

    tok = train_tokenizer(texts or ["la la la", "a song"])
    sizes = dict(ROBERTA_SIZES[size])
    vocab = sizes.pop("vocab_size") or len(tok)
    torch.manual_seed(seed)
    cfg = RobertaConfig(vocab_size=max(vocab, len(tok)), max_position_embeddings=514,
                        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                        eos_token_id=tok.eos_token_id, initializer_range=initializer_range,
                        **sizes, **_labels(class_names))
    model = RobertaForSequenceClassification(cfg) if class_names else RobertaModel(
        cfg, add_pooling_layer=False)
    out = Path(out)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def demo_lyrics(folder: str | Path) -> list[str]:
    from musiclime.core.lyrics import read_lyrics

    return [read_lyrics(p) for p in sorted(Path(folder).rglob("*.txt"))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--lyrics", default="data/demo/songs", help="folder of .txt lyrics to "
                    "train the tokenizer on")
    ap.add_argument("--size", choices=sorted(AST_SIZES), default="tiny")
    ap.add_argument("--classes", default="ai,human", help="labels of the classifier variants")
    args = ap.parse_args(argv)
    out = Path(args.out)
    texts = demo_lyrics(args.lyrics) if Path(args.lyrics).is_dir() else None
    names = args.classes.split(",")
    for path in (build_ast(out / "ast", args.size),
                 build_roberta(out / "roberta", texts, args.size),
                 build_ast(out / "ast-classifier", args.size, names),
                 build_roberta(out / "roberta-classifier", texts, args.size, names)):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
