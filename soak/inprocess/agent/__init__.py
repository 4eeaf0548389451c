"""The agent, inside a service someone else started: its socket server (``server``), the API a
service calls (``embedding``) and ``python -m soak.agent``'s command line (``command``). Its public
face is :mod:`soak.agent`."""
