"""What runs inside the measured process: the worker that drives a workload, the agent inside a
service someone else started, their control thread and wire format, and the probes (with the C
extensions under them). Nothing here imports the supervisor's side or anything heavy."""
