"""The supervisor's side: it never runs user code. ``soak run`` (``runner``: a worker, or a run to
resume, ``resume``) and ``soak watch`` (``watch``) store a run and schedule its snapshots of a
worker or an agent (``wiring``, ``schedule``), analyse the series in a recycled child
(``analysis_process``), serve metrics and show progress; ``ci`` soaks several targets."""
