"""Cross-check the checkpoint formats and the export against PyLate itself.

PyLate 1.6.0 pins fast-plaid<=1.4.6 and transformers<=5.3, so it cannot share the
project's environment (torch 2.11.0 + fast-plaid 1.7.0.2110). Install it beside it,
without dependencies, and run this script with both on the path::

    pip install --no-deps --target /tmp/pylate pylate==1.6.0 sentence-transformers==5.3.0
    PYTHONPATH=/tmp/pylate:$PWD python benchmarks/pylate_crosscheck.py

(PyLate imports ``datasets`` for training only; where it is not installed a stub
module is put on the path.) For each case the script prints the largest absolute
difference between PyLate's vectors and colcompress's, queries and documents, and
exits non-zero above 1e-5:

- a colcompress model exported with ``export_pylate`` and loaded by
  ``pylate.models.ColBERT(folder)``;
- tiny PyLate-layout, answerai-colbert-small-layout and Stanford-layout checkpoints
  (tests/checkpoints.py) loaded by PyLate (which reads Stanford checkpoints too) and by
  colcompress.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colcompress.models.colbert import ColBERT  # noqa: E402
from colcompress.models.export import export_pylate  # noqa: E402
from tests.checkpoints import DOCS, QUERIES, write_pylate, write_stanford  # noqa: E402

TINY = {
    "num_hidden_layers": 2,
    "hidden_size": 32,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
TOLERANCE = 1e-5


def _stub_datasets(root: Path) -> None:
    """Put a ``datasets`` stub on the path when the package is missing."""
    if importlib.util.find_spec("datasets") is not None:
        return
    package = root / "stubs" / "datasets"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "def __getattr__(name):\n"
        "    if name.startswith('__'):\n"
        "        raise AttributeError(name)\n"
        "    return type(name, (), {})\n"
    )
    sys.path.insert(0, str(package.parent))


@torch.no_grad()
def _ours(model: ColBERT, texts: list[str], is_query: bool) -> list[torch.Tensor]:
    model.eval()
    if is_query:
        out = model.encode_queries(model.tokenize_queries(texts))
    else:
        out = model.encode_documents(model.tokenize_documents(texts))
    return [v[m] for v, m in zip(out.vectors, out.mask)]


def _difference(folder: Path, model: ColBERT) -> float:
    from pylate import models

    theirs = models.ColBERT(str(folder), device="cpu")
    worst = 0.0
    for texts, is_query in ((QUERIES, True), (DOCS, False)):
        pylate = theirs.encode(texts, is_query=is_query, convert_to_tensor=True)
        for a, b in zip(_ours(model, texts, is_query), pylate):
            if a.shape != b.shape:
                raise AssertionError(f"{folder}: shapes {tuple(a.shape)} vs {tuple(b.shape)}")
            worst = max(worst, float((a - b.float()).abs().max()))
    return worst


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="pylate-crosscheck-"))
    _stub_datasets(root)
    cases: dict[str, tuple[Path, ColBERT]] = {}
    torch.manual_seed(0)
    for name, options in {
        "export colbert-style": dict(
            query_augmentation=True, query_marker="[unused0]", doc_marker="[unused1]"
        ),
        "export attend": dict(query_augmentation=True, attend_to_augmentation=True),
        "export plain": dict(query_augmentation=False),
    }.items():
        model = ColBERT(random_config=TINY, dim=16, query_length=12, doc_length=20, **options)
        cases[name] = (export_pylate(model.eval(), root / name.replace(" ", "_")), model)
    settings = {"query_length": 16, "document_length": 24}
    folder = write_pylate(root / "pylate_layout", settings).folder
    cases["pylate layout"] = (folder, ColBERT(backbone=str(folder), format="pylate", dim=None))
    answerai = {"query_prefix": "[unused0]", "document_prefix": "[unused1]", **settings}
    folder = write_pylate(root / "answerai_layout", answerai, dim=96, stanford_root=True).folder
    cases["answerai layout"] = (folder, ColBERT(backbone=str(folder), format="pylate", dim=None))
    metadata = {"query_maxlen": 16, "doc_maxlen": 24, "dim": 16}
    folder = write_stanford(root / "stanford_layout", metadata).folder
    cases["stanford layout"] = (folder, ColBERT(backbone=str(folder), format="stanford", dim=None))
    failed = False
    for name, (folder, model) in cases.items():
        worst = _difference(folder, model)
        failed |= worst > TOLERANCE
        print(f"{name:20s} max |pylate - colcompress| = {worst:.2e}")
    return int(failed)


if __name__ == "__main__":
    raise SystemExit(main())
