"""Public media releases converted to the BEIR layout with media fields.

Each reader takes the files of one release and fills a
:class:`~colcompress.data.releases.writer.CollectionWriter`: ViDoRe v2 (parquet,
:mod:`~colcompress.data.releases.vidore`), MSR-VTT 1k-A (the JSFusion CSV and the
videos, :mod:`~colcompress.data.releases.msrvtt`) and MultiVENT 2.0 (videos, queries,
TREC judgments, :mod:`~colcompress.data.releases.multivent`).
``colcompress-prepare-media`` (:mod:`colcompress.data.prepare_media`) runs them.
"""
