"""Everything that reads finished runs: records, tables, significance, correlation, plots.

Evaluation writes one ``results.json`` (and ``run.trec``) per run directory; this
package reads them through :class:`~colcompress.analysis.records.RunRecord` and never
the other way round. The command line is ``colcompress-report`` (``python -m
colcompress.report``, :mod:`colcompress.analysis.cli`).
"""
