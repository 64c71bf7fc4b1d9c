"""Live sessions: every run publishes its state and takes control from any process.

A run (whoever started it: `ferry daemon`, `ferry run`, a console) owns a state
folder `<jobs folder>/.ferry/sessions/<session id>/` (`paths`) holding a small
JSON snapshot rewritten at most every 0.5 s and an append-only journal of its
events and log lines (`publisher`), and listens on a Unix socket (abstract
namespace, named in the snapshot) for control requests (hold / resume / stop of
the job or one machine) and for attach: the snapshot, then the events as they
happen (`server`). `client` lists the sessions of a jobs folder, tells a dead
run (its process gone) from a live one, sends requests and attaches.
"""
