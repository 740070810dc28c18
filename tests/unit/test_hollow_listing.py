"""The hollow runtime's container list (agent/runtimes/hollow/shapes.py): an `id` filter
of full IDs looks the containers up instead of walking the node, and must list exactly
what the walk would."""

from flock.agent.runtimes.hollow import shapes
from flock.agent.runtimes.hollow.store import HollowNode


def _ids(rows: list[dict]) -> list[str]:
    return [row["Id"] for row in rows]


def test_an_id_filter_lists_what_a_walk_would():
    node = HollowNode()
    made = [node.create(f"c{i}", {"Image": "busybox"}) for i in range(5)]
    node.start(made[1])
    first, second = made[0].id, made[1].id
    newest_first = _ids(shapes.listing(node, True, -1, {}))

    def listed(ids, all_=True, **more):
        return _ids(shapes.listing(node, all_, -1, {"id": ids, **more}))

    assert listed([first]) == [first]
    assert listed([first[:12]]) == [first]  # a prefix still walks: same answer
    assert listed([first, second]) == [i for i in newest_first if i in (first, second)]
    assert listed([second, second]) == [second]
    assert listed([first], all_=False) == []  # not running: only with all
    assert listed([second], all_=False) == [second]
    assert listed(["0" * 64]) == []
    assert listed([first], label=["nope=1"]) == []  # the other filters still apply


def test_name_filters_are_the_engines_re2():
    # moby api/types/filters/parse.go Args.Match: Go regexp, a value that does not compile
    # is skipped (it was a re.error traceback here, and `(a+)+b` a frozen agent).
    node = HollowNode()
    long = node.create("a" * 5_000, {"Image": "busybox"})
    web = node.create("web-1", {"Image": "busybox"})

    def listed(*values):
        return _ids(shapes.listing(node, True, -1, {"name": list(values)}))

    assert listed("(a+)+b") == []
    assert listed("^/(a+)+$") == [long.id]
    assert listed("[") == []
    assert listed("[", r"web-1\z") == [web.id]
