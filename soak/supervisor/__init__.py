"""The supervisor's side: it never runs user code. ``soak run`` (``runner``) and ``soak watch``
(``watch``) schedule snapshots of a worker or an agent, store them, analyse the series in a
recycled child (``analysis_process``), serve metrics and show progress; ``ci`` soaks several targets."""
