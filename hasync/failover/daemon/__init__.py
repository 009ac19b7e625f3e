"""The failover daemon. The package itself imports nothing: `hasync status`, `history`
and the on-call verbs read the daemon's state files (persist.py) without loading the
loop and everything it pulls in.

  run.py        ``run_daemon()`` puts it together (wiring only)

  loop.py       set-up, the one wait-and-dispatch loop, the clean exit
  heartbeat.py  Sender (rhythm, templates) and Receiver (drain, the one fast path)
  executor.py   carries out the FSM's actions; the worker's reports back to the FSM
  worker.py     the job thread (every command through the Runner) and its mailbox
  control.py    the control socket's server (the language: failover/protocol.py)
  status.py     the status document
The policy is in the pure core: failover/membership.py, chain.py, resource_state.py.
"""
