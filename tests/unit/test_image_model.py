"""ImageColBERT: text queries against image documents through a vision tower, with every
compressor running on the visual token sequence."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from PIL import Image
from torch import nn
from transformers import AutoConfig, AutoModel

from colcompress.compressors.agc import AGC
from colcompress.compressors.memtok import MemTok
from colcompress.compressors.prune import IDFPruning
from colcompress.data.beir import Doc
from colcompress.data.media import MediaError
from colcompress.job import build_model
from colcompress.models.image_colbert import ImageColBERT
from colcompress.models.images import ImageInput, patch_ids
from tests.conftest import CONF

TEXT = {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2}
CLIP = {
    "model_type": "clip_vision_model",
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
}
CLIP_TOKENS = 17  # (32 / 8)^2 patches + the class token
BUDGET = 6
QUERIES = ["a dog runs on the grass", "two children play in the water"]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[ImageInput]:
    """Three random RGB images of different shapes, as image documents."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    out = []
    for i, (w, h) in enumerate([(48, 40), (40, 56), (70, 70)]):
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        out.append(ImageInput(f"d{i}", path))
    return out


def clip_model(compressor=None) -> ImageColBERT:
    torch.manual_seed(0)
    model = ImageColBERT(vision_config=CLIP, random_config=TEXT, dim=16, compressor=compressor)
    return model.eval()


def composed_model(compressor: str):
    """model=vit_tiny (SigLIP, 64 visual tokens) with a conf/compressor file, as run builds it."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["model=vit_tiny", f"compressor={compressor}"])
    cfg.budget = BUDGET
    torch.manual_seed(0)
    return build_model(cfg.model, cfg.compressor)


@pytest.mark.parametrize(
    ("compressor", "width"),
    [
        ("none", 64),
        ("hpool", BUDGET),
        ("agc", BUDGET),
        ("memtok", BUDGET),
        ("seqresize", BUDGET),
        ("crisp", BUDGET),
    ],
)
def test_every_compressor_runs_on_visual_tokens(images, compressor: str, width: int):
    model = composed_model(compressor)
    assert model.doc_length == 64 and model.vision.num_tokens == 64
    batch = model.tokenize_documents(images)
    assert batch.pixel_values.shape == (3, 3, 64, 64) and batch.mask.shape == (3, 64)
    docs = model.encode_documents(batch)
    assert docs.vectors.shape == (3, width, 16)
    assert docs.mask.sum(1).tolist() == [width] * 3  # 64 tokens are always above the budget
    norms = docs.vectors[docs.mask].norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    queries = model.encode_queries(model.tokenize_queries(QUERIES))
    scores = model.score(queries, docs)
    assert scores.shape == (2, 3) and torch.isfinite(scores).all()
    # training: the loss reaches the vision tower and the compressor's parameters
    model.train()
    loss = (
        model.score(
            model.encode_queries(model.tokenize_queries(QUERIES)), model.encode_documents(batch)
        )
        .logsumexp(1)
        .sum()
    )
    loss.backward()
    patch = model.vision.model.embeddings.patch_embedding.weight.grad
    assert patch is not None and patch.abs().sum() > 0
    for name, p in model.compressor.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.doc_projection.weight.grad.abs().sum() > 0


def test_appended_tokens_follow_the_visual_tokens_without_position_embedding(images):
    model = clip_model(MemTok(budget=3, hidden_size=32))
    batch = model.tokenize_documents(images)
    seen = []
    model.vision.model.embeddings.register_forward_hook(lambda m, a, out: seen.append(out))
    with torch.no_grad():
        with_memory = model.vision(
            batch.pixel_values, batch.input_ids, model.compressor.extra_token_embeddings()
        )
        alone = model.vision(batch.pixel_values, batch.input_ids)
    assert seen[0].shape == (3, CLIP_TOKENS + 3, 32) and seen[1].shape == (3, CLIP_TOKENS, 32)
    torch.testing.assert_close(seen[0][:, CLIP_TOKENS:], model.compressor.memory.expand(3, -1, -1))
    torch.testing.assert_close(seen[0][:, :CLIP_TOKENS], seen[1])
    assert with_memory.hidden.shape == alone.hidden.shape == (3, CLIP_TOKENS, 32)
    assert with_memory.extra_hidden.shape == (3, 3, 32) and alone.extra_hidden is None
    # the visual tokens attend to the memory tokens
    assert not torch.allclose(with_memory.hidden, alone.hidden)


def test_agc_saliency_is_the_universal_queries_attention_over_the_visual_tokens(images):
    model = clip_model(AGC(budget=4, hidden_size=32, num_queries=5))
    batch = model.tokenize_documents(images)
    layer = model.vision.model.encoder.layers[-1]
    inputs = []
    layer.register_forward_pre_hook(
        lambda m, args, kwargs: inputs.append(args[0]), with_kwargs=True
    )
    with torch.no_grad():
        states = model._document_states(batch, model.compressor.extra_token_embeddings(), True)
    n, t = CLIP_TOKENS, 5
    assert states.attentions.shape == (3, 2, t, n + t)  # the universal queries' rows
    # the last layer's softmax(q k^T / sqrt(d)), recomputed from its input
    attn = layer.self_attn
    x = layer.layer_norm1(inputs[0])
    q = attn.q_proj(x).view(3, n + t, 2, 16).transpose(1, 2)
    k = attn.k_proj(x).view(3, n + t, 2, 16).transpose(1, 2)
    expected = (q @ k.transpose(-1, -2) * 16**-0.5).softmax(-1)
    torch.testing.assert_close(states.attentions, expected[:, :, n:])
    alpha = model.compressor.saliency(states.attentions, states.mask)
    torch.testing.assert_close(alpha, expected[:, :, n:, :n].mean(dim=(1, 2)))
    # the centroids are the most salient visual tokens
    out = model.compressor(states.hidden, states)
    assert out.vectors.shape == (3, 4, 32)


def test_patch_ids_depend_on_the_patch_content_only():
    pixels = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    pixels[1, :, :8, :8] = pixels[0, :, :8, :8]  # the first patch of both images is the same
    ids = patch_ids(pixels, 8, leading=1)
    assert ids.shape == (2, 5) and ids[:, 0].tolist() == [0, 0]
    assert ids[0, 1] == ids[1, 1] and ids[0, 2] != ids[1, 2]
    assert len(set(ids[0, 1:].tolist())) == 4
    assert torch.equal(patch_ids(pixels[1:], 8, leading=1)[0], ids[1])  # batch-independent


def test_documents_are_read_at_encoding_with_errors_naming_the_file(images, tmp_path: Path):
    model = clip_model()
    doc = Doc("", "", images=(images[0].path,))
    assert model.document_input("d0", doc) == ImageInput("d0", images[0].path)
    with pytest.raises(ValueError, match="document 'd1' has no image: ImageColBERT encodes one"):
        model.document_input("d1", Doc("title", "text only"))
    pages = Doc("", "", images=(images[0].path, images[1].path))
    with pytest.raises(ValueError, match="document 'd2' has 2 images"):
        model.document_input("d2", pages)
    missing = ImageInput("gone", tmp_path / "gone.jpg")
    with pytest.raises(MediaError, match=re.escape(f"document 'gone': image file {missing.path}")):
        model.tokenize_documents([images[0], missing])


def test_settings_that_do_not_fit_images_are_refused():
    with pytest.raises(ValueError, match=r"model.doc_length=300, but the vision tower gives 17"):
        ImageColBERT(vision_config=CLIP, random_config=TEXT, dim=16, doc_length=300)
    with pytest.raises(ValueError, match="image documents have no vocabulary"):
        ImageColBERT(vision_config=CLIP, random_config=TEXT, compressor=IDFPruning(budget=4))
    backbone_init = AGC(budget=4, hidden_size=32, init="backbone")
    with pytest.raises(ValueError, match="image documents take compressor.init=normal"):
        ImageColBERT(vision_config=CLIP, random_config=TEXT, compressor=backbone_init)
    with pytest.raises(ValueError, match="give one of model.vision_config"):
        ImageColBERT(random_config=TEXT)
    with pytest.raises(ValueError, match="needs model_type"):
        ImageColBERT(vision_config={"hidden_size": 32}, random_config=TEXT)
    model = clip_model()
    with pytest.raises(ValueError, match="training.doc_length=8 would cut images of 17"):
        model.tokenize_documents([], 8)


def test_a_pretrained_tower_loads_from_its_folder(tmp_path: Path, images):
    config = AutoConfig.for_model(**CLIP)
    torch.manual_seed(1)
    AutoModel.from_config(config).save_pretrained(tmp_path / "tower")
    model = ImageColBERT(vision_backbone=str(tmp_path / "tower"), random_config=TEXT, dim=16)
    saved = AutoModel.from_pretrained(tmp_path / "tower")
    loaded = model.vision.model
    torch.testing.assert_close(
        loaded.embeddings.patch_embedding.weight, saved.embeddings.patch_embedding.weight
    )
    assert isinstance(loaded.post_layernorm, nn.Identity)  # feeds the pooled output only
    docs = model.eval().encode_documents(model.tokenize_documents(images))
    assert docs.vectors.shape == (3, CLIP_TOKENS, 16)


def test_fit_projection_fits_the_document_projection(images):
    model = clip_model()
    query_weight = model.projection.weight.clone()
    kept = model.fit_projection(images)
    assert 0 < kept <= 1
    assert torch.equal(model.projection.weight, query_weight)
    rows = model.doc_projection.weight
    torch.testing.assert_close(rows @ rows.T, torch.eye(16), atol=1e-5, rtol=0)
    assert len(model.encoders) == 2 and len(model.projections) == 2
    assert F.normalize(rows, dim=-1).shape == (16, 32)


def test_an_image_model_has_no_pylate_export(tmp_path: Path):
    from colcompress.models.export import export_pylate

    with pytest.raises(ValueError, match="ImageColBERT encodes image documents and has no PyLate"):
        export_pylate(clip_model(), tmp_path / "export")
    assert not (tmp_path / "export").exists()
