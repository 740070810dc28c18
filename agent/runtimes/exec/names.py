"""Container names: the Engine's validation and its adjective_surname generator."""

from __future__ import annotations

import random
import re

from flock.agent.runtimes.exec.errors import bad_request

VALID_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
LEFT = ("admiring", "brave", "clever", "dazzling", "eager", "festive", "gallant", "happy",
        "jolly", "keen", "lucid", "modest", "nifty", "optimistic", "quirky", "serene",
        "trusting", "upbeat", "vibrant", "zealous")
RIGHT = ("babbage", "curie", "darwin", "euclid", "fermi", "galileo", "hopper", "kepler",
         "lovelace", "meitner", "newton", "noether", "pascal", "ritchie", "shannon",
         "tesla", "turing", "wozniak", "yalow", "zuse")


def check_name(name: str) -> str:
    """The name without its leading slash; 400 when the Engine would refuse it."""
    if not VALID_NAME.match(name):
        raise bad_request(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                          f"are allowed")
    return name.lstrip("/")


def generate_name(taken: set[str]) -> str:
    for attempt in range(1000):
        name = f"{random.choice(LEFT)}_{random.choice(RIGHT)}"
        if attempt > 10:
            name += str(random.randint(0, 99))
        if name not in taken:
            return name
    raise RuntimeError("no free container name")
