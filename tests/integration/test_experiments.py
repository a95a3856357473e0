"""Experiment configs compose job by job; a joblib sweep runs and the report tables it."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf, read_write

from colcompress.analysis import render
from colcompress.analysis.tables import build_report
from tests.conftest import CONF
from tests.integration.helpers import colcompress, results_files

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


# settings an experiment leaves to the command line (???)
REQUIRED = {
    "beir_recipe": ["none_ckpt=logs/none/checkpoints/last.ckpt"],
    "msrvtt_1ka": ["init_from=ckpt/none.ckpt"],
    "multivent2": ["init_from=ckpt/none.ckpt"],
}


def _jobs(name: str) -> list[list[str]]:
    """The override lists of every job the experiment's sweep launches."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[f"experiment={name}", *REQUIRED.get(name, [])],
            return_hydra_config=True,
        )
    params = OmegaConf.to_container(cfg.hydra.sweeper.params or {})
    parser = OverridesParser.create()
    swept = [parser.parse_override(f"{k}={v}") for k, v in params.items()]
    values = [
        [f"{o.key_or_group}={v}" for v in o.sweep_string_iterator()]
        if o.is_sweep_override()
        else [f"{o.key_or_group}={o.get_value_element_as_str()}"]
        for o in swept
    ]
    return [list(combo) for combo in itertools.product(*values)]


def test_the_paper_studies_are_there():
    expected = {"beir_table", "agc_ablation", "transfer_budget", "agc_queries", "crisp", "lossless"}
    assert expected <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_job_composes(name: str):
    text = (CONF / "experiment" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_")
    jobs = _jobs(name)
    assert len(jobs) >= 2, f"experiment {name} sweeps nothing"
    signatures = {}
    for overrides in jobs:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(
                "config", overrides=[f"experiment={name}", *REQUIRED.get(name, []), *overrides]
            )
        assert cfg.task_name == name
        compressor = OmegaConf.to_container(cfg.compressor, resolve=True)
        training = OmegaConf.to_container(cfg.training, resolve=True)
        setting = tuple(o for o in overrides if not o.startswith("dataset"))
        signatures[setting] = json.dumps(
            [compressor, training, cfg.budget, cfg.test_budget, cfg.model.get("scoring")],
            sort_keys=True,
        )
        if set(compressor) - {"_target_"}:  # parameters and their values are accepted
            cls = get_class(cfg.compressor._target_)
            instantiate(cfg.compressor, **({"hidden_size": 32} if cls.needs_hidden_size else {}))
    # every swept value (other than the dataset) changes what is trained or indexed
    assert len(set(signatures.values())) == len(signatures)


@pytest.mark.parametrize("debug", [[], ["debug=default"]])
def test_beir_recipe_starts_every_compressor_from_the_none_model(debug: list[str]):
    ckpt = "logs/none/checkpoints/last.ckpt"
    inits = {}
    for name in ("seqresize", "memtok", "agc", "hpool", "crisp"):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(
                "config",
                overrides=["experiment=beir_recipe", f"none_ckpt={ckpt}", f"compressor={name}"]
                + debug,
            )
        assert cfg.init_from == cfg.training.teacher_ckpt == ckpt and cfg.budget == 32
        assert cfg.training.init_compressor == "fresh" and cfg.training.freeze_encoder_steps > 0
        assert cfg.training.distillation_weight > 0
        assert cfg.model.get("random_config") is not None if debug else True
        cls = get_class(cfg.compressor._target_)
        compressor = instantiate(
            cfg.compressor, **({"hidden_size": 32} if cls.needs_hidden_size else {})
        )
        inits[name] = compressor.init if name in ("seqresize", "memtok", "agc") else None
    assert inits == {
        "seqresize": "avgpool",
        "memtok": "normal",
        "agc": "normal",
        "hpool": None,
        "crisp": None,
    }
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        plain = compose("config", overrides=["compressor=seqresize"])
    assert plain.compressor.init == "random" and plain.training.init_compressor == "checkpoint"


def test_ablation_rows_switch_one_component_each():
    rows = {}
    for ablation in ("full", "no_weight", "no_select", "no_cluster"):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("config", overrides=["experiment=agc_ablation", f"ablation={ablation}"])
        c = cfg.compressor
        rows[ablation] = (c.weighting, c.selection, c.clustering)
    assert rows == {
        "full": (True, "saliency", True),
        "no_weight": (False, "saliency", True),
        "no_select": (True, "random", True),
        "no_cluster": (True, "saliency", False),
    }


def _compose_all(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def test_sweep_dir_resolves_before_any_job():
    """Sweepers resolve hydra.sweep.dir before a job exists (no HydraConfig yet):
    it must not depend on ${hydra:...} (e.g. through paths.root_dir)."""
    cfg = _compose_all("experiment=beir_table")
    HydraConfig.instance().cfg = None
    assert OmegaConf.select(cfg, "hydra.sweep.dir")


def test_launcher_and_search_configs():
    cfg = _compose_all("experiment=transfer_budget", "hydra/launcher=slurm")
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher") and cfg.budget == 32
    assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.hydra.launcher.timeout_min > 0
    assert cfg.hydra.sweeper.params.test_budget == "5,32,128"
    cfg = _compose_all("hydra/launcher=joblib")
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 2
    cfg = _compose_all("hparams_search=optuna_agc")
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert cfg.hydra.sweeper.direction == "maximize"
    assert cfg.optimized_metric in cfg.evaluation.metrics and cfg.dataset.eval_split == "dev"
    assert set(cfg.hydra.sweeper.params) == {"training.lr", "training.temperature"}
    assert cfg.compressor._target_.endswith("AGC")


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize(
    ("name", "job"),
    [
        ("beir_table", ["dataset=scifact", "compressor=agc"]),
        ("agc_ablation", ["ablation=no_select"]),
        ("transfer_budget", ["compressor=hpool", "test_budget=3"]),
        ("agc_queries", ["budget=4", "compressor.num_queries=2"]),
    ],
)
def test_an_experiment_job_runs_in_debug_size(name: str, job: list[str], tmp_path: Path):
    """One job of each study end to end (crisp and lossless: test_compressors_e2e)."""
    colcompress(
        tmp_path,
        "-m",
        f"experiment={name}",
        "debug=default",
        "evaluation.baselines=[]",
        "logger=none",
        f"hydra.sweep.dir={tmp_path / 'logs' / 'sweep'}",
        *job,
    )
    (path,) = results_files(tmp_path)
    results = json.loads(path.read_text())
    assert results.get("status") != "failed", results.get("error")
    assert results["config"]["tags"] == [name]  # the study was applied (debug renames the task)
    assert all(0.0 <= v <= 1.0 for v in results["metrics"].values())


@pytest.mark.slow
def test_joblib_sweep_then_report(tiny_sweep: Path):
    """2 compressors x 2 budgets through the joblib launcher, then the report."""
    files = results_files(tiny_sweep)
    assert len(files) == 4
    sweep_dir = tiny_sweep / "logs" / "sweep"
    assert {f.parent.parent for f in files} == {sweep_dir}
    report = build_report([sweep_dir], metrics=["ndcg@10", "recall@100"])
    assert report.rows == ["none", "hpool@4", "hpool@8"]
    assert report.columns == ["nfcorpus"] and not report.failed
    assert any("superseded" in n for n in report.notes)  # none ran twice (budget unused)
    base = report.cells["none", "nfcorpus"]
    for row in ("hpool@4", "hpool@8"):
        cell = report.cells[row, "nfcorpus"]
        assert cell.run.index["vectors_per_doc"] <= int(row.split("@")[1])
        for metric in report.metrics:
            expected = 100 * cell.metrics[metric] / base.metrics[metric]
            assert cell.pct[metric] == pytest.approx(expected)
            p = cell.p_value.get(metric)
            assert p is None or 0.0 <= p <= 1.0
        assert cell.p_value  # tested against the qrels of the sliced split
    # run.trec + the re-sliced qrels reproduce every run's own metrics
    assert not [n for n in report.notes if "different data" in n or "no significance" in n]
    assert "| hpool@4 |" in render.markdown(report)


def test_local_multirun_with_multi_device_ddp_is_refused(monkeypatch: pytest.MonkeyPatch):
    """Lightning re-runs the command line for every extra DDP rank, so a local sweep of
    DDP jobs would start the sweep once per device; SLURM tasks are not re-launched."""
    from hydra.types import RunMode

    from colcompress.job import _check_launch

    cfg = _compose_all("trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu")

    def launch(mode: RunMode) -> None:
        with read_write(cfg.hydra):
            cfg.hydra.mode = mode
        HydraConfig.instance().set_config(cfg)
        _check_launch(cfg)

    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    try:
        with pytest.raises(ValueError, match="local multirun.*hydra/launcher=slurm"):
            launch(RunMode.MULTIRUN)
        launch(RunMode.RUN)  # a single DDP job is fine
        monkeypatch.setenv("SLURM_NTASKS", "2")
        launch(RunMode.MULTIRUN)  # under SLURM every rank is a task of its own
    finally:
        HydraConfig.instance().cfg = None


@pytest.mark.slow
@pytest.mark.data
def test_beir_recipe_runs_from_a_none_checkpoint_in_debug_size(tmp_path: Path):
    """Stage 0 (none) then stage 1 (agc, two-stage, distilled, proportional budget)."""
    quiet = ["debug=default", "evaluation.baselines=[]", "logger=none", "trainer.max_steps=3"]
    colcompress(tmp_path / "none", "compressor=none", *quiet)
    (ckpt,) = (tmp_path / "none" / "logs").rglob("step3.ckpt")
    colcompress(
        tmp_path / "agc",
        "experiment=beir_recipe",
        f"none_ckpt={ckpt}",
        "compressor=agc",
        "budget=8",
        "training.freeze_encoder_steps=2",
        "training.pair_distillation_weight=1.0",
        "compressor.budget_mode=proportional",
        *quiet,
    )
    (path,) = results_files(tmp_path / "agc")
    results = json.loads(path.read_text())
    assert results.get("status") != "failed", results.get("error")
    assert results["config"]["tags"] == ["beir_recipe"]
    assert results["config"]["training"]["teacher_ckpt"] == str(ckpt)
    assert 7.5 <= results["index"]["vectors_per_doc"] <= 8.5  # 8 per document on average


def test_flickr8k_study_composes_for_image_documents(monkeypatch: pytest.MonkeyPatch):
    from colcompress.job import build_model
    from colcompress.models.image_colbert import ImageColBERT
    from colcompress.validation import validate_config
    from tests.unit.test_media import FLICKR

    monkeypatch.setenv("COLCOMPRESS_DATA_DIR", str(FLICKR.parent.parent / "beir"))
    jobs = _jobs("flickr8k")
    assert sorted(" ".join(job) for job in jobs) == ["budget=32", "budget=5"]
    for job in [["compressor=none"], ["compressor=hpool_posthoc", "train=false"], *jobs]:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("config", overrides=["experiment=flickr8k", *job])
        assert cfg.dataset.path.endswith("/../images/flickr8k_1k")
        assert cfg.dataset.document_split.sizes == {"train": 800, "test": 200}
        assert list(cfg.evaluation.baselines) == ["random"]
        assert {"recall@1", "recall@10", "ndcg@10"} <= set(cfg.evaluation.metrics)
        assert cfg.model.doc_length == 101 and cfg.model.vision_config.image_size == 160
        if (FLICKR / "corpus.jsonl").is_file():
            validate_config(cfg)
    model = build_model(cfg.model, cfg.compressor)  # the last job: agc at budget 32
    assert isinstance(model, ImageColBERT) and model.vision.num_tokens == 101
    assert model.compressor.queries.shape == (32, 256)  # the ViT's hidden size
