import os

from watchkeeper.cache import ResultCache, sha256_file, source_fingerprint


def test_round_trip_and_hash_memo(tmp_path):
    cache = ResultCache(tmp_path / "c.sqlite3", max_entries=10, max_bytes=10**6)
    media = tmp_path / "m.bin"
    media.write_bytes(b"abc" * 1000)
    digest = cache.file_sha256(media)
    assert digest == sha256_file(media)
    assert cache.get(digest, "cfg") is None
    cache.put(digest, "cfg", '{"x": 1}')
    assert cache.get(digest, "cfg") == '{"x": 1}'
    assert cache.get(digest, "other-config") is None
    # A changed file gets a new hash even at the same path.
    media.write_bytes(b"abd" * 1000)
    os.utime(media, ns=(1, 1))
    assert cache.file_sha256(media) != digest


def test_least_recently_used_entries_are_evicted(tmp_path):
    cache = ResultCache(tmp_path / "c.sqlite3", max_entries=3, max_bytes=10**6)
    for i in range(3):
        cache.put(f"m{i}", "cfg", f'{{"i": {i}}}')
    cache.get("m0", "cfg")  # m0 becomes recent; m1 is now the oldest
    cache.put("m3", "cfg", '{"i": 3}')
    assert cache.get("m1", "cfg") is None
    assert {cache.get(k, "cfg") is not None for k in ("m0", "m2", "m3")} == {True}
    assert cache.stats()["entries"] == 3


def test_size_bound(tmp_path):
    cache = ResultCache(tmp_path / "c.sqlite3", max_entries=100, max_bytes=3000)
    incompressible = os.urandom(1500).hex()
    for i in range(4):
        cache.put(f"m{i}", "cfg", incompressible + str(i))
    assert cache.stats()["bytes"] <= 3000
    assert cache.get("m3", "cfg") is not None


def test_shared_between_instances(tmp_path):
    a = ResultCache(tmp_path / "c.sqlite3", max_entries=10, max_bytes=10**6)
    b = ResultCache(tmp_path / "c.sqlite3", max_entries=10, max_bytes=10**6)
    a.put("m", "cfg", "{}")
    assert b.get("m", "cfg") == "{}"


def test_source_fingerprint_follows_code_and_data_not_bytecode(tmp_path):
    (tmp_path / "analyzers").mkdir()
    (tmp_path / "analyzers" / "fire.py").write_text("THRESHOLD = 0.5\n")
    (tmp_path / "rules.yaml").write_text("fire: 1\n")
    first = source_fingerprint(tmp_path)

    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "fire.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "notes.txt").write_text("not code")
    assert source_fingerprint(tmp_path) == first

    (tmp_path / "analyzers" / "fire.py").write_text("THRESHOLD = 0.6\n")
    edited = source_fingerprint(tmp_path)
    assert edited != first
    (tmp_path / "analyzers" / "fire.py").rename(tmp_path / "analyzers" / "smoke.py")
    assert source_fingerprint(tmp_path) not in {first, edited}
