"""validate_config refuses bad settings before anything is trained, naming each one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from colcompress.validation import ConfigError, validate_config
from tests.conftest import CONF, DATA_DIR


def _cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["debug=default", *overrides])


@pytest.fixture(autouse=True)
def _data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLCOMPRESS_DATA_DIR", str(DATA_DIR))


def _problems(*overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(_cfg(*overrides))
    return str(info.value)


@pytest.mark.parametrize(
    "overrides",
    [
        (),
        ("compressor=agc", "budget=5", "test_budget=128"),
        ("compressor=crisp", "budget=null", "compressor.mode=relative", "compressor.ratio=4"),
        ("compressor=none", "budget=null"),
        ("index.nbits=1", "evaluation.metrics=[map,ndcg@5,hits@10-l2]"),
        ("dataset=scifact",),
        ("evaluation.chunk_docs=512",),
    ],
)
def test_valid_configurations_pass(overrides: tuple[str, ...]):
    validate_config(_cfg(*overrides))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("budget=abc",), "budget='abc': expected a positive integer (or null)"),
        (("budget=2.5",), "budget=2.5: expected a positive integer (or null)"),
        (("budget=0",), "budget=0: expected a positive integer (or null)"),
        (("test_budget=true", "compressor=agc"), "test_budget=True: expected a positive integer"),
        (("compressor=hpool", "compressor.budget=-3"), "compressor.budget=-3: expected a positive"),
        (("compressor=memtok", "budget=null"), "budget=null: compressor MemTok needs a positive"),
        (("index.nbits=3",), "index.nbits=3: expected one of [1, 2, 4, 8]"),
        (
            ("evaluation.metrics=[ndcg@10,ndgc@10]",),
            "evaluation.metrics: unknown metric 'ndgc@10' (Metric ndgc not supported)",
        ),
        (("evaluation.metrics=[recall@x]",), "unknown metric 'recall@x'"),
        (("optimized_metric=map",), "optimized_metric='map': not one of evaluation.metrics"),
        (("evaluation.baselines=[bm25,splade]",), "evaluation.baselines: unknown ['splade']"),
        (("evaluation.chunk_docs=0",), "evaluation.chunk_docs=0: expected a positive integer"),
        pytest.param(
            ("dataset.eval_split=validation",),
            "dataset.eval_split=validation: no ",
            marks=pytest.mark.data,  # the split list is read from the collection's qrels
        ),
        (("dataset.train_split=null",), "dataset.train_split=null: the collection is for"),
        (("dataset.name=absent_but_not_empty",), None),
        (("init_from=/nonexistent/last.ckpt",), "init_from=/nonexistent/last.ckpt: no such file"),
        (("dataset.teacher_scores=/nope.tsv",), "dataset.teacher_scores=/nope.tsv: no such file"),
        (("training.init_compressor=random",), "training.init_compressor='random': expected one"),
        (("training.init_compressor=fresh",), "training.init_compressor=fresh: needs init_from"),
        (("training.freeze_encoder_steps=-1",), "training.freeze_encoder_steps=-1: expected an"),
    ],
)
def test_bad_settings_are_named(overrides: tuple[str, ...], message: str | None):
    if message is None:  # a dataset that is not there yet is downloaded, not refused
        validate_config(_cfg(*overrides))
        return
    assert message in _problems(*overrides)


def test_every_problem_is_listed_at_once():
    text = _problems("budget=abc", "index.nbits=3", "evaluation.metrics=[foo]")
    assert text.count("\n  - ") == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_a_gpu_trainer_without_a_gpu_is_refused():
    assert "trainer.accelerator=gpu: no CUDA devices here; use trainer=cpu" in _problems(
        "trainer=gpu"
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_more_gpus_than_present_are_refused():
    count = torch.cuda.device_count()
    assert f"trainer.devices={count + 1}: only {count} CUDA devices here" in _problems(
        "trainer=gpu", f"trainer.devices={count + 1}"
    )


def _checkpoint(path: Path, model: dict, compressor: dict) -> Path:
    torch.save(
        {"state_dict": {}, "colcompress_model_config": {"model": model, "compressor": compressor}},
        path,
    )
    return path


@pytest.fixture
def agc_checkpoint(tmp_path: Path) -> Path:
    cfg = _cfg("compressor=agc")
    return _checkpoint(
        tmp_path / "agc.ckpt",
        OmegaConf.to_container(cfg.model, resolve=True),
        OmegaConf.to_container(cfg.compressor, resolve=True),
    )


def test_checkpoint_settings_that_differ_are_refused(agc_checkpoint: Path):
    ckpt = f"init_from={agc_checkpoint}"
    validate_config(_cfg("compressor=agc", ckpt))
    text = _problems("compressor=agc", ckpt, "compressor.weighting=false", "model.normalize=clip")
    assert (
        f"init_from={agc_checkpoint} was trained with compressor.weighting=True, the command "
        "line says compressor.weighting=False; keep the checkpoint's value or add "
        "checkpoint_overrides=[compressor.weighting] to use False"
    ) in text
    assert "model.normalize='l2', the command line says model.normalize='clip'" in text
    validate_config(
        _cfg(
            "compressor=agc",
            ckpt,
            "compressor.weighting=false",
            "model.normalize=clip",
            "checkpoint_overrides=[compressor.weighting,model.normalize]",
        )
    )
    assert "was trained with compressor colcompress.compressors.agc.AGC" in _problems(
        "compressor=memtok", ckpt
    )
    # two-stage training loads the encoder and projection only
    validate_config(_cfg("compressor=memtok", ckpt, "training.init_compressor=fresh"))
    resume = _problems(
        "compressor=agc", f"ckpt_path={agc_checkpoint}", "model.skip_punctuation=false"
    )
    assert "ckpt_path=" in resume and "model.skip_punctuation=True" in resume


def test_posthoc_compressor_on_a_plain_model_is_allowed(tmp_path: Path):
    cfg = _cfg()
    plain = _checkpoint(
        tmp_path / "plain.ckpt",
        OmegaConf.to_container(cfg.model, resolve=True),
        OmegaConf.to_container(cfg.compressor, resolve=True),
    )
    validate_config(_cfg("compressor=hpool_posthoc", "train=false", f"init_from={plain}"))


FLICKR = DATA_DIR.parent / "images" / "flickr8k_1k"
IMAGES = ("model=vit_tiny", "dataset=flickr8k", f"dataset.path={FLICKR}")


@pytest.mark.skipif(not (FLICKR / "corpus.jsonl").is_file(), reason=f"needs {FLICKR}")
def test_image_documents_take_the_random_baseline_only():
    validate_config(_cfg(*IMAGES, "evaluation.baselines=[random]"))
    text = _problems(*IMAGES, "evaluation.baselines=[bm25,random,dense]", "dataset.eval_split=dev")
    assert (
        "evaluation.baselines: ['bm25', 'dense'] read document text, but ImageColBERT "
        "encodes image documents; use evaluation.baselines=[random]"
    ) in text
    assert "dataset.eval_split=dev: no such split in dataset.document_split.sizes" in text
    assert "training.teacher_zero_shot=true: the zero-shot teacher reads text" in _problems(
        *IMAGES, "evaluation.baselines=[]", "training.teacher_zero_shot=true"
    )
    source = _problems(*IMAGES, "evaluation.baselines=[]", "dataset.document_split.source=all")
    assert f"dataset.document_split.source=all: no {FLICKR}/qrels/all.tsv" in source
