"""The placement wing: the one create path (create.py) and what goes through it besides
the Docker API and `flock run`: global copies (global_copies.py) and rescheduling
(reschedule.py). Above the scheduler, below the API fronts."""
