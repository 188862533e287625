"""The daemon: the scheduler, the checks it runs, the topology it keeps, the events it reacts to,
the writes it makes and the state it saves. Talks to AWS and Kubernetes only through the adapters
it is handed, and to the outside world through the ports the surface fills."""
