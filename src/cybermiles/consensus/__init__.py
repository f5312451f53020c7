"""Tendermint-style BFT consensus: a pure state machine plus the pieces around it.

Nothing in this package does I/O except ``wal`` and ``privval`` (files); the state machine
consumes events (proposal, vote, timeout) and returns actions (broadcast, schedule a timeout,
commit), so it runs unchanged in the deterministic simulator of the tests and in the node.
"""
