"""Keeping replicas together: the follower publishes every committed world in change
order (this process's commits and, on a shared database, the others'); the fleet
board shares each replica's Envoys with the rest, in its own format
(``posted``)."""
