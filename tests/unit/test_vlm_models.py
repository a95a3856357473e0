"""Vision-language models: Qwen2.5-VL for queries and documents of any modality, ColQwen2
and ColPali as they are, and every compressor on their token sequences."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from PIL import Image
from transformers import (
    ColPaliForRetrieval,
    ColPaliProcessor,
    ColQwen2ForRetrieval,
    ColQwen2Processor,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5OmniConfig,
    Qwen2_5OmniForConditionalGeneration,
    Qwen2VLImageProcessorPil,
)
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import apply_rotary_pos_emb

from colcompress.compressors.agc import AGC
from colcompress.compressors.hpool import HPool
from colcompress.compressors.memtok import MemTok
from colcompress.data.beir import Doc
from colcompress.data.media import load_video_frames
from colcompress.job import build_model
from colcompress.models.colvision import ColVision, load_colvision
from colcompress.models.images import ImageInput
from colcompress.models.qwen_loading import load_qwen, untrained_config
from colcompress.models.qwen_vl_colbert import QwenOmniColBERT, QwenVLColBERT
from colcompress.models.states import TokenStates
from colcompress.models.vlm_inputs import (
    AUDIO,
    IMAGE,
    TEXT,
    VIDEO,
    MediaInput,
    audio_tokens,
    video_patches,
)
from tests.conftest import CONF
from tests.unit.test_media import write_tone, write_video

BUDGET = 3
QUERIES = ["a dog runs on the grass", "two children play"]
NUM_FRAMES = 4  # model=qwen25vl_tiny's model.num_frames


def composed(model: str, compressor: str = "none", *overrides: str, budget: int = BUDGET):
    """A model as run builds it from colcompress/conf (seeded: equal overrides, equal weights)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "config", overrides=[f"model={model}", f"compressor={compressor}", *overrides]
        )
    cfg.budget = budget
    torch.manual_seed(0)
    return build_model(cfg.model, cfg.compressor).eval()


def model_config(model: str) -> DictConfig:
    """The composed ``model`` group of ``model=<model>``."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"model={model}"])
    return cfg.model


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three random RGB images of different shapes."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    out = []
    for i, (w, h) in enumerate([(90, 60), (56, 56), (40, 80)]):
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        out.append(path)
    return out


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory, images: list[Path]) -> Path:
    """A 6-frame MPEG-4 video (each image for 2 frames), 64 x 48 pixels."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_video(path, images, repeats=2, size=(64, 48))
    return path


@pytest.fixture(scope="module")
def documents(images: list[Path], video: Path) -> list[MediaInput]:
    """A photo with a caption, two pages, a video with a caption, a text."""
    return [
        MediaInput("photo", "a photo", (images[0],)),
        MediaInput("pages", "", (images[1], images[2])),
        MediaInput("clip", "a clip", (), video),
        MediaInput("text", "only text in this rather short document"),
    ]


@pytest.fixture(scope="module")
def tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One second of a 440 Hz tone, 16 kHz WAV."""
    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    write_tone(path, 16000, 1.0)
    return path


@pytest.fixture(scope="module")
def omni_documents(documents: list[MediaInput], tone: Path) -> list[MediaInput]:
    """The documents, the video with a sound track (a tone), and an audio-only document."""
    photo, pages, clip, text = documents
    return [
        photo,
        pages,
        MediaInput("clip", "a clip", (), clip.video, tone),
        MediaInput("tone", "", audio=tone),
        text,
    ]


def _pages(images: list[Path]) -> list[ImageInput]:
    return [ImageInput(f"d{i}", path) for i, path in enumerate(images)]


def _inputs(model: str, images: list[Path], documents: list[MediaInput], omni=()) -> list:
    return {"qwen25vl_tiny": documents, "qwen25omni_tiny": omni}.get(model) or _pages(images)


def _towers(model) -> list[torch.nn.Module]:
    """The vision tower and, where the model hears, the audio tower."""
    vlm = model.encoder.model
    names = ("visual", "vision_tower", "audio_tower")
    return [getattr(vlm, name) for name in names if hasattr(vlm, name)]


@pytest.mark.parametrize(
    "name", ["qwen25vl_tiny", "qwen25omni_tiny", "colqwen2_tiny", "colpali_tiny"]
)
@pytest.mark.parametrize("compressor", ["none", "hpool", "agc", "memtok", "seqresize", "crisp"])
def test_every_compressor_runs_on_the_token_sequence(
    name, compressor, images, documents, omni_documents
):
    model = composed(name, compressor)
    batch = model.tokenize_documents(_inputs(name, images, documents, omni_documents))
    lengths = batch.attention_mask.sum(1)
    assert (lengths > BUDGET).all()
    docs = model.encode_documents(batch)
    width = batch.input_ids.shape[1] if compressor == "none" else BUDGET
    assert docs.vectors.shape == (len(batch), width, 16)
    expected = lengths.tolist() if compressor == "none" else [BUDGET] * len(batch)
    assert docs.mask.sum(1).tolist() == expected
    norms = docs.vectors[docs.mask].norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    scores = model.score(model.encode_queries(model.tokenize_queries(QUERIES)), docs)
    assert scores.shape == (2, len(batch)) and torch.isfinite(scores).all()
    # training: the loss reaches the vision tower, the language model, the compressor
    model.train()
    queries = model.encode_queries(model.tokenize_queries(QUERIES))
    model.score(queries, model.encode_documents(batch)).logsumexp(1).sum().backward()
    for tower in _towers(model):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tower.parameters())
    assert model.encoder.model.get_input_embeddings().weight.grad.abs().sum() > 0
    for parameter_name, p in model.compressor.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, parameter_name
    assert model.projection.weight.grad.abs().sum() > 0


def test_documents_of_every_modality_become_one_sequence(documents, video):
    model = composed("qwen25vl_tiny")
    batch = model.tokenize_documents(documents)
    grids_i, grids_v = batch.features["image_grid_thw"], batch.features["video_grid_thw"]
    assert grids_i.shape == (3, 3) and grids_v.shape == (1, 3)  # photo + 2 pages, 1 video
    assert grids_v[0, 0] == NUM_FRAMES // 2  # 2 frames per temporal patch
    assert len(load_video_frames(video, "clip", NUM_FRAMES)) == NUM_FRAMES
    types, ids = batch.features["mm_token_type_ids"], batch.input_ids
    merged = [int(g.prod()) // 4 for g in grids_i]  # 2 x 2 patches per token
    assert (types[0] == IMAGE).sum() == merged[0]
    assert (types[1] == IMAGE).sum() == merged[1] + merged[2]
    assert (types[2] == VIDEO).sum() == int(grids_v[0].prod()) // 4
    assert (types[3] != TEXT).sum() == 0
    inputs = model.inputs
    prefix = inputs._ids("Passage: ")
    p, n = len(prefix), merged[0]
    assert (ids[:, :p] == torch.tensor(prefix)).all()  # the prefix first
    photo = ids[0, : int(batch.attention_mask[0].sum())].tolist()
    assert photo[p] == inputs.start_id and photo[p + 1 : p + 1 + n] == [inputs.image_id] * n
    assert photo[p + 1 + n] == inputs.end_id and photo[p + 2 + n :] == inputs._ids("a photo")
    assert batch.features["pixel_values"].shape[0] == sum(int(g.prod()) for g in grids_i)
    assert batch.features["pixel_values_videos"].shape[0] == int(grids_v[0].prod())


def test_video_patches_stack_frames_as_qwen2vl_video_processor_does():
    # frames already at a size the processor keeps (multiples of 28, within its pixel range)
    processor = Qwen2VLImageProcessorPil(min_pixels=3136, max_pixels=12544)
    frames = np.random.default_rng(1).integers(0, 256, (3, 56, 84, 3), dtype=np.uint8)
    out = processor(images=list(frames), return_tensors="pt")
    per_frame = out["pixel_values"].reshape(3, 6 * 4, -1)
    patches, grid_t = video_patches(per_frame, temporal_patch_size=2, patch_size=14)
    # transformers' Qwen2VLVideoProcessor.patchify on the normalised frames
    mean = torch.tensor(processor.image_mean)[:, None, None]
    std = torch.tensor(processor.image_std)[:, None, None]
    video = (torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255 - mean) / std
    video = torch.cat([video, video[-1:]])  # the last frame repeated to 2 x 2 frames
    grid = video.view(2, 2, 3, 2, 2, 14, 3, 2, 14).permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    torch.testing.assert_close(patches, grid.reshape(2 * 4 * 6, 3 * 2 * 14 * 14))
    assert int(grid_t) == 2


def test_attention_is_bidirectional_unless_asked_otherwise():
    both = composed("qwen25vl_tiny")
    causal = composed("qwen25vl_tiny", "none", "model.bidirectional=false")
    torch.testing.assert_close(both.projection.weight, causal.projection.weight)  # same weights
    a, b = both.tokenize_queries(["red apple pie"]), both.tokenize_queries(["red apple cake"])
    assert a.input_ids.shape == b.input_ids.shape
    differ = int((a.input_ids != b.input_ids).nonzero()[0, 1])  # the last word only
    with torch.no_grad():
        ha, hb = (both._query_states(x, False).hidden for x in (a, b))
        ca, cb = (causal._query_states(x, False).hidden for x in (a, b))
    assert differ > 0 and not torch.allclose(ha[:, :differ], hb[:, :differ])
    torch.testing.assert_close(ca[:, :differ], cb[:, :differ])


@pytest.mark.parametrize("name", ["qwen25vl_tiny", "colqwen2_tiny"])
def test_padding_does_not_change_a_document(name, images, documents):
    model = composed(name)
    inputs = _inputs(name, images, documents)
    with torch.no_grad():
        batch = model.tokenize_documents(inputs)
        together = model.encode_documents(batch)
        shortest = int(batch.attention_mask.sum(1).argmin())
        alone = model.encode_documents(model.tokenize_documents([inputs[shortest]]))
    n = int(alone.mask.sum())
    assert batch.input_ids.shape[1] > n  # padded in the batch
    torch.testing.assert_close(together.vectors[shortest, :n], alone.vectors[0], atol=1e-5, rtol=0)


def test_agc_saliency_is_the_universal_queries_attention_over_the_visual_tokens(documents):
    model = composed("qwen25vl_tiny", "agc", budget=4)  # 4 universal queries
    batch = model.tokenize_documents(documents[:2])
    language = model.encoder.model.language_model
    layer = language.layers[-1]
    seen = []
    layer.register_forward_pre_hook(lambda m, a, kw: seen.append((a, kw)), with_kwargs=True)
    with torch.no_grad():
        states = model._document_states(batch, model.compressor.extra_token_embeddings(), True)
    n, t = batch.input_ids.shape[1], 4
    assert states.attentions.shape == (2, 2, t, n + t)  # the universal queries' rows
    # the last layer's softmax(q k^T / sqrt(d)) over real keys, recomputed from its input
    args, kwargs = seen[-1]
    x = layer.input_layernorm(args[0] if args else kwargs["hidden_states"])
    attn = layer.self_attn
    q = attn.q_proj(x).view(2, n + t, 2, 16).transpose(1, 2)
    k = attn.k_proj(x).view(2, n + t, 1, 16).transpose(1, 2)
    cos, sin = kwargs["position_embeddings"]
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    keys = torch.cat([batch.attention_mask.bool(), torch.ones(2, t, dtype=torch.bool)], 1)
    logits = (q @ k.transpose(-1, -2) * 16**-0.5).masked_fill(~keys[:, None, None], -torch.inf)
    expected = logits.softmax(-1)
    torch.testing.assert_close(states.attentions, expected[:, :, n:])
    alpha = model.compressor.saliency(states.attentions, states.mask)
    visual = batch.features["mm_token_type_ids"] == IMAGE
    from_queries = expected[:, :, n:, :n].mean(dim=(1, 2))
    torch.testing.assert_close(alpha[visual], from_queries[visual])
    assert (alpha[~states.mask] == 0).all()
    out = model.compressor(states.hidden, states)
    assert out.vectors.shape == (2, 4, 32)


@pytest.mark.parametrize(
    ("name", "bidirectional"), [("qwen25vl_tiny", True), ("colqwen2_tiny", False)]
)
def test_memory_tokens_follow_each_documents_tokens(name, bidirectional, images, documents):
    model = composed(name, "memtok")
    batch = model.tokenize_documents(_inputs(name, images, documents)[:2])
    seen = []
    model.encoder.model.language_model.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw), with_kwargs=True
    )
    memory = model.compressor.extra_token_embeddings()
    with torch.no_grad():
        with_memory = model._document_states(batch, memory, False)
        alone = model._document_states(batch, None, False)
    n = batch.input_ids.shape[1]
    embeds, positions = seen[0]["inputs_embeds"], seen[0]["position_ids"]
    torch.testing.assert_close(embeds[:, n:], memory.expand(2, -1, -1))
    real = batch.attention_mask.bool()
    last = positions[..., :n].masked_fill(~real, -1).amax(dim=-1).amax(dim=0)  # [B]
    expected = last[:, None] + torch.arange(1, BUDGET + 1)
    assert (positions[..., n:] == expected).all()  # after each one's last token, every axis
    assert with_memory.extra_hidden.shape == (2, BUDGET, 32)
    changed = not torch.allclose(with_memory.hidden[real], alone.hidden[real])
    assert changed == bidirectional  # a causal model's tokens never see what follows


@pytest.fixture(scope="module", params=["colqwen2_tiny", "colpali_tiny"])
def saved(request, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """An untrained ColQwen2 / ColPali and its processor saved as a hub folder."""
    torch.manual_seed(0)
    model, processor = load_colvision(None, model_config(request.param).random_config, "minilm")
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return request.param, folder


def test_colvision_vectors_are_the_models_own_embeddings(saved, images):
    name, folder = saved
    model_class, processor_class = {
        "colqwen2_tiny": (ColQwen2ForRetrieval, ColQwen2Processor),
        "colpali_tiny": (ColPaliForRetrieval, ColPaliProcessor),
    }[name]
    reference = model_class.from_pretrained(folder).eval()
    processor = processor_class.from_pretrained(folder)
    ours = ColVision(backbone=str(folder)).eval()
    pages = [Image.open(path).convert("RGB") for path in images]
    with torch.no_grad():
        inputs = processor.process_images(images=pages)
        inputs.pop("labels", None)
        expected = reference(**inputs).embeddings
        docs = ours.encode_documents(ours.tokenize_documents(_pages(images)))
        text = processor.process_queries(text=QUERIES)
        expected_q = reference(**text).embeddings
        queries = ours.encode_queries(ours.tokenize_queries(QUERIES))
    mask = inputs["attention_mask"].bool()
    assert torch.equal(docs.mask, mask) and ours.dim == 16
    torch.testing.assert_close(docs.vectors[mask], expected[mask])
    assert torch.equal(queries.mask, text["attention_mask"].bool())
    torch.testing.assert_close(queries.vectors[queries.mask], expected_q[queries.mask])


def test_hpool_posthoc_compresses_a_ready_colvision_index(saved, images):
    name, folder = saved
    model = composed(
        name, "hpool_posthoc", f"model.backbone={folder}", "model.random_config=null",
        "model.tokenizer=null", budget=4,
    )  # fmt: skip
    batch = model.tokenize_documents(_pages(images))
    with torch.no_grad():
        full = model.encode_documents(batch, compress=False)
        pooled = model.encode_documents(batch)
    states = TokenStates(full.vectors, full.mask, batch.input_ids)
    expected = HPool(budget=4, protected_tokens=1, posthoc=True)(full.vectors, states)
    assert pooled.vectors.shape == (3, 4, 16) and pooled.mask.all()
    torch.testing.assert_close(pooled.vectors, F.normalize(expected.vectors, dim=-1))


def test_a_pretrained_qwen_vl_folder_loads(tmp_path: Path, documents):
    parts = load_qwen("vl", None, model_config("qwen25vl_tiny").random_config, "minilm", 3136,
                      12544)  # fmt: skip
    torch.manual_seed(1)
    config = untrained_config("vl", model_config("qwen25vl_tiny").random_config, parts.tokenizer)
    saved = Qwen2_5_VLForConditionalGeneration(config)  # the hub's layout (+ lm_head)
    for part in (saved, parts.tokenizer, parts.image_processor):
        part.save_pretrained(tmp_path)
    model = QwenVLColBERT(
        backbone=str(tmp_path), dim=16, doc_length=64, num_frames=4, video_max_pixels=3136
    ).eval()
    loaded = model.encoder.model.language_model.layers[0].mlp.up_proj.weight
    torch.testing.assert_close(loaded, saved.model.language_model.layers[0].mlp.up_proj.weight)
    assert QwenVLColBERT.config_sizes({"backbone": str(tmp_path), "dim": None}) == (32, 32)
    docs = model.encode_documents(model.tokenize_documents(documents))
    assert docs.vectors.shape[0] == 4 and torch.isfinite(docs.vectors).all()


def test_sizes_come_from_the_configs():
    assert QwenVLColBERT.config_sizes(model_config("qwen25vl_tiny")) == (32, 16)
    assert ColVision.config_sizes(model_config("colqwen2_tiny")) == (32, 16)
    assert ColVision.config_sizes(model_config("colpali_tiny")) == (32, 16)
    assert QwenOmniColBERT.config_sizes(model_config("qwen25omni_tiny")) == (32, 16)


def test_what_a_model_cannot_encode_is_refused(images, documents):
    model = composed("qwen25vl_tiny")
    with pytest.raises(ValueError, match="document 'a' has only audio"):
        model.document_input("a", Doc("", "", audio=Path("x.wav")))
    assert model.document_input("p", Doc("t", "x", images=(images[0],))).images == (images[0],)
    with pytest.raises(
        ValueError, match="document 'photo': its prefix and .* exceed model.doc_length=8"
    ):
        model.tokenize_documents(documents[:1], 8)
    with pytest.raises(ValueError, match="Qwen2.5-VL takes compressor.init=normal"):
        QwenVLColBERT(compressor=MemTok(budget=2, hidden_size=32, init="backbone"))
    colqwen2 = composed("colqwen2_tiny")
    with pytest.raises(ValueError, match="document 'd' has 2 images: ColVision encodes one"):
        colqwen2.document_input("d", Doc("", "", images=tuple(images[:2])))
    with pytest.raises(ValueError, match="document 'd0': .* tokens exceed model.doc_length=8"):
        colqwen2.tokenize_documents(_pages(images)[:1], 8)
    with pytest.raises(ValueError, match="model.dim=32 but the model projects to 16"):
        ColVision(random_config=model_config("colqwen2_tiny").random_config, tokenizer="minilm",
                  dim=32)  # fmt: skip
    with pytest.raises(ValueError, match="give one of model.backbone"):
        QwenVLColBERT()
    agc = AGC(budget=2, hidden_size=32)
    assert composed("colpali_tiny").encoder._recorder is None
    assert ColVision(random_config=model_config("colpali_tiny").random_config, tokenizer="minilm",
                     compressor=agc).encoder._recorder is not None  # fmt: skip


def test_audio_becomes_whisper_features_between_audio_tokens(omni_documents):
    model = composed("qwen25omni_tiny")
    batch = model.tokenize_documents(omni_documents)
    features, types = batch.features, batch.features["mm_token_type_ids"]
    assert features["input_features"].shape == (2, 16, 100)  # 1 s: 100 log-mel frames, 16 mels
    assert features["feature_attention_mask"].sum(1).tolist() == [100, 100]
    _, expected = model.encoder.model.audio_tower._get_feat_extract_output_lengths(
        torch.tensor([100])
    )
    assert audio_tokens(100) == int(expected) == 25
    assert (types == AUDIO).sum(1).tolist() == [0, 0, 25, 25, 0]
    inputs = model.inputs
    clip = batch.input_ids[2, : int(batch.attention_mask[2].sum())].tolist()
    first = clip.index(inputs.audio_id)
    assert clip[first - 1] == inputs.audio_start_id and clip[first + 25] == inputs.audio_end_id
    assert (types[2] == VIDEO).sum() > 0  # the video's block comes first
    with pytest.raises(ValueError, match="document 'tone' has audio .* reads no audio"):
        composed("qwen25vl_tiny").inputs.documents(omni_documents[3:4], 64)


@pytest.mark.parametrize("name", ["qwen25vl_tiny", "qwen25omni_tiny"])
def test_causal_encoding_is_the_models_own_forward(name, documents, omni_documents):
    model = composed(name, "none", "model.bidirectional=false")
    batch = model.tokenize_documents(omni_documents if name == "qwen25omni_tiny" else documents)
    features = dict(batch.features)
    if name == "qwen25omni_tiny":  # the thinker's own names
        features.pop("mm_token_type_ids")
        features["video_second_per_grid"] = features.pop("second_per_grid_ts")
    with torch.no_grad():
        ours = model._document_states(batch, None, False).hidden
        theirs = model.encoder.model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, **features
        ).last_hidden_state
    real = batch.attention_mask.bool()
    torch.testing.assert_close(ours[real], theirs[real])


def test_a_pretrained_qwen_omni_folder_loads_its_thinker(tmp_path: Path, omni_documents):
    random_config = model_config("qwen25omni_tiny").random_config
    parts = load_qwen("omni", None, random_config, "minilm", 3136, 12544)
    torch.manual_seed(1)
    thinker = untrained_config("omni", random_config, parts.tokenizer)
    saved = Qwen2_5OmniForConditionalGeneration(
        Qwen2_5OmniConfig(thinker_config=thinker.to_dict(), enable_audio_output=False)
    )
    for part in (saved, parts.tokenizer, parts.image_processor):
        part.save_pretrained(tmp_path)
    # the hub's layout: one preprocessor_config.json for images and audio, speaker prompts
    settings = tmp_path / "preprocessor_config.json"
    merged = {**json.loads(settings.read_text()), **parts.audio_processor.to_dict()}
    settings.write_text(json.dumps(merged))
    torch.save({}, tmp_path / "spk_dict.pt")
    model = QwenOmniColBERT(backbone=str(tmp_path), dim=16, doc_length=96, num_frames=4,
                            video_max_pixels=3136).eval()  # fmt: skip
    loaded = model.encoder.model.language_model.layers[0].mlp.up_proj.weight
    torch.testing.assert_close(
        loaded, saved.thinker.model.language_model.layers[0].mlp.up_proj.weight
    )
    assert model.inputs.audio_processor.feature_size == 16
    assert model.inputs.image_processor.size["longest_edge"] == 12544
    assert QwenOmniColBERT.config_sizes({"backbone": str(tmp_path), "dim": None}) == (32, 32)
    docs = model.encode_documents(model.tokenize_documents(omni_documents))
    assert docs.vectors.shape[0] == 5 and torch.isfinite(docs.vectors).all()
