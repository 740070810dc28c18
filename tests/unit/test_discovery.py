import asyncio

import pytest

from flock.discovery import DiscoveryError, FileBackend, NodesBackend, open_backend


def fetch(url: str) -> list[str]:
    return asyncio.run(open_backend(url).fetch())


def test_nodes_list_and_bare_list_mean_the_same():
    assert fetch("nodes://10.0.0.1:2375,10.0.0.2:2375") == ["10.0.0.1:2375", "10.0.0.2:2375"]
    assert fetch("10.0.0.1:2375,10.0.0.2:2375") == ["10.0.0.1:2375", "10.0.0.2:2375"]
    assert isinstance(open_backend("nodes://a:1"), NodesBackend)


def test_range_expands_inclusively_and_dedupes():
    addrs = fetch("nodes://10.0.0.[10:12]:2375,10.0.0.11:2375")
    assert addrs == ["10.0.0.10:2375", "10.0.0.11:2375", "10.0.0.12:2375"]


def test_range_in_port():
    assert fetch("nodes://h:[4000:4002]") == ["h:4000", "h:4001", "h:4002"]


@pytest.mark.parametrize(
    "url, words",
    [
        ("", "no discovery URL"),
        ("consul://x:8500/p", "unsupported discovery URL"),
        ("nodes://", "at least one"),
        ("nodes://hostonly", "expected HOST:PORT"),
        ("nodes://h:99999", "expected HOST:PORT"),
        ("nodes://h:abc", "expected HOST:PORT"),
        ("nodes://10.0.0.[5:1]:2375", "greater than"),
        ("nodes://10.[1:2].0.[1:2]:2375", "only one"),
        ("nodes://10.0.[0:9999999]:1", "more than"),
        ("file://", "needs a path"),
    ],
)
def test_bad_urls_say_what_is_wrong(url, words):
    with pytest.raises(DiscoveryError, match=words):
        fetch(url)


def test_file_backend_reads_each_fetch(tmp_path):
    path = tmp_path / "cluster"
    path.write_text("# agents\n127.0.0.1:4001\n\n127.0.0.[2:3]:4001  # two more\n")
    backend = open_backend(f"file://{path}")
    assert isinstance(backend, FileBackend)
    assert asyncio.run(backend.fetch()) == ["127.0.0.1:4001", "127.0.0.2:4001", "127.0.0.3:4001"]
    path.write_text("127.0.0.9:4001\n")
    assert asyncio.run(backend.fetch()) == ["127.0.0.9:4001"]


def test_file_backend_reads_the_same_text_to_the_same_list_and_a_change_at_once(tmp_path):
    """The addresses of an unchanged file are kept between fetches (expanding 10,000
    lines costs the manager ~30 ms each time); a caller changing the list it got, an
    edit, or an edit that breaks the file and one that mends it all show."""
    path = tmp_path / "cluster"
    path.write_text("127.0.0.[1:2]:4001\n")
    backend = FileBackend(str(path))
    first = asyncio.run(backend.fetch())
    first.append("mangled by the caller")
    assert asyncio.run(backend.fetch()) == ["127.0.0.1:4001", "127.0.0.2:4001"]
    path.write_text("127.0.0.[1:2]:4001\nnot-an-address\n")
    with pytest.raises(DiscoveryError, match="line 2"):
        asyncio.run(backend.fetch())
    path.write_text("127.0.0.[1:2]:4001\n")
    assert asyncio.run(backend.fetch()) == ["127.0.0.1:4001", "127.0.0.2:4001"]
    path.write_text("127.0.0.2:4001\n")
    assert asyncio.run(backend.fetch()) == ["127.0.0.2:4001"]


def test_file_backend_names_the_bad_line(tmp_path):
    path = tmp_path / "cluster"
    path.write_text("127.0.0.1:4001\nnot-an-address\n")
    with pytest.raises(DiscoveryError, match="line 2"):
        fetch(f"file://{path}")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DiscoveryError, match="cannot read discovery file"):
        fetch(f"file://{tmp_path}/nope")


def test_register_is_a_no_op_for_static_backends():
    backend = open_backend("nodes://a:1")
    asyncio.run(backend.register("b:2", 60))
    assert asyncio.run(backend.fetch()) == ["a:1"]
