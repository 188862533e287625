"""The decision core: pure values and functions, no SDKs, no I/O, no logging, time passed in.

Read in pipeline order: the vocabulary (model, controllers, cluster_model, failures, settings),
the verdict (coverage, evaluate, ownership, vanished, topology_delta, transitions, ingress_join),
the enforce rails (memory, history, restores, policy), the events (events, event_match,
event_trust, event_evidence, attribution) and the migration checks (migration, v2_gc, iam_policy).
"""
