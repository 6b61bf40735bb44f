"""The one owner of the on-disk layout: file names, what kind a directory is, the eval, run
and study directories, where a target's diagnostics live, and a run's status.

Every reader and writer of run, eval and study directories (engine, report, dashboard) goes
through these modules, so a file name or a resolution rule is written once.
"""
