"""The evaluation suite: code datasets into tidy result rows, build the paper's table and R-D figures.

``results`` (the row schema and the results files), ``lossless`` and ``lossy`` (one row per image of an iREC
codec; ``coding``, what their rows share), ``baselines`` (classical codecs), ``tables`` and ``rd`` (the lossless
table, R-D curves and BD-rates), ``plotting``, and ``pipeline`` / ``suite`` (the notebooks' steps and
``run_all.sh``).
"""
