"""The tombstone store (tomb.TombStore): a dict of key -> record whose records live in
temporary files behind an index of 8-byte slots.  It must behave exactly like the dict it
replaced (membership, records, insertion order, expiry by the record's last packet time),
read the files only when a key is there, and close its files when their tombstones are gone."""
from __future__ import annotations

import os
import random
import struct

import pytest

from tcpanalyze import engine as E
from tcpanalyze import tomb

S = 1_000_000_000


def _rec(stream: int, last_ns: int, extra: int = 0) -> bytes:
    """A record as the store reads it: stream and last packet time first (then anything)."""
    return struct.pack("<qq", stream, last_ns) + bytes([stream & 255]) * (tomb.SIZE_FIXED - 16 + extra)


def _key(i: int, v6: bool = False) -> bytes:
    n = 16 if v6 else 4
    return i.to_bytes(n, "big") + (i * 7919 % 2**32).to_bytes(n, "big") + struct.pack("<HH", i % 65536, 80)


def _files(st) -> list:
    """The store's open generation files."""
    return [f for f in st.files if f is not None]


@pytest.fixture
def small_buffers(monkeypatch):
    """A write buffer and sweep reads smaller than one entry's multiple: flushes and entries
    split across reads happen all the time."""
    monkeypatch.setattr(tomb, "K_WRITE_BUF", 700)
    monkeypatch.setattr(tomb, "K_SCAN_READ", 500)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_behaves_like_a_dict(seed, small_buffers):
    """Random stores, replacements, deletions, expiries and lookups against a dict with the
    same expiry rule; every few steps the whole content and its order are compared."""
    rng = random.Random(seed)
    linger = 20 * S
    st = tomb.TombStore(linger)
    model: dict[bytes, bytes] = {}
    now = 0
    keys = [_key(i, v6=i % 3 == 0) for i in range(3000)]
    keys += [E.reverse_key(k) for k in keys[:1000]]      # both directions of a connection stored
    for step in range(20000):
        now += rng.randrange(0, S // 50)
        op = rng.random()
        k = rng.choice(keys)
        if op < 0.45:
            # a record whose last packet is a little before now; some long (unacked segments)
            rec = _rec(step, now - rng.randrange(0, 2 * S), extra=rng.choice([0, 0, 0, 40, 400, 5000]))
            st[k] = rec
            model[k] = rec
        elif op < 0.55:
            if k in model:
                del st[k]
                del model[k]
            else:
                with pytest.raises(KeyError):
                    del st[k]
        elif op < 0.58:
            cutoff = now - linger
            gone = [key for key, rec in model.items() if tomb.last_ns(rec) < cutoff]
            for key in gone:
                del model[key]
            assert st.expire(now, linger) == len(gone)
        else:
            assert (k in st) == (k in model)
            assert st.get(k) == model.get(k)
            rk = E.reverse_key(k)
            assert st.find(k, rk) == ((k, 0) if k in model else (rk, 1) if rk in model else None)
        assert len(st) == len(model)
        if step % 2000 == 0:
            assert st.items() == list(model.items())
    assert st.items() == list(model.items())
    assert [st[k] for k in model] == list(model.values())
    files = _files(st)
    assert files and not any(f.closed for f in files)
    st.clear()
    assert len(st) == 0 and st.items() == [] and _files(st) == [] and all(f.closed for f in files)


def test_a_miss_reads_nothing():
    st = tomb.TombStore(120 * S)
    for i in range(20000):
        st[_key(i)] = _rec(i, i)
    st.expire(0, 120 * S)            # writes out the buffer: lookups now read the files
    before = st.reads
    for i in range(20000, 60000):
        assert _key(i) not in st
        assert st.get(_key(i)) is None
    # a miss reads an entry only when a 31-bit fingerprint matches (about one in 10,000)
    assert st.reads - before < 40
    assert st[_key(5)] == _rec(5, 5) and st.reads > before
    assert st.index_bytes() < 20000 * 16


def test_find_looks_for_a_key_and_its_reverse_with_one_probe():
    """``find(key, reverse)``: the tombstone stored under the key (direction 0) or else under
    its reverse (direction 1); a miss reads no entry for either."""
    st = tomb.TombStore(120 * S)
    keys = [_key(i, v6=i % 5 == 0) for i in range(6000)]
    for i, k in enumerate(keys[:3000]):
        if i % 2:
            st.put(k, E.reverse_key(k), _rec(i, i))
        else:
            st[k] = _rec(i, i)
    st.expire(0, 120 * S)            # writes out the buffer: lookups now read the files
    before = st.reads
    for k in keys[3000:]:
        rk = E.reverse_key(k)
        assert st.find(k, rk) is None and st.find(rk, k) is None
    assert st.reads - before < 10
    for i, k in enumerate(keys[:3000]):
        rk = E.reverse_key(k)
        assert st.find(k, rk) == (k, 0) and st.find(rk, k) == (k, 1)
        assert st[k] == _rec(i, i) and rk not in st
    # both directions stored: the key itself comes first, whatever the order of the slots
    k = keys[7]
    rk = E.reverse_key(k)
    st[rk] = _rec(1, 1)
    assert st.find(k, rk) == (k, 0) and st.find(rk, k) == (rk, 0)
    del st[k]
    assert st.find(k, rk) == (rk, 1) and st[rk] == _rec(1, 1)
    # a connection from an endpoint to itself has one key, its own reverse
    same = bytes([10, 0, 0, 1, 10, 0, 0, 1]) + struct.pack(">HH", 5000, 5000)
    assert E.reverse_key(same) == same
    st.put(same, same, _rec(2, 2))
    assert st.find(same, same) == (same, 0) and st[same] == _rec(2, 2)


def test_generations_close_their_files_as_tombstones_leave():
    """A generation per ``span_ns`` of capture time; once its tombstones are past the linger
    time its file is closed; an empty store holds no file."""
    linger = 120 * S
    st = tomb.TombStore(linger)
    assert st.span_ns == 10 * S
    t = 0
    seen = {}
    for sweep in range(40):              # 400 s: 100 tombstones a second, swept every 10 s
        for i in range(1000):
            k = sweep * 1000 + i
            st[_key(k)] = _rec(k, t + i * S // 100)
        t += 10 * S
        st.expire(t, linger)
        assert len(st) == min(sweep + 1, 12) * 1000
        files = _files(st)
        assert len(st.order) <= 14 and len(files) == len(st.order)
        assert all(os.fstat(f.fileno()).st_nlink == 0 for f in files)     # no name on disk
        seen.update((id(f), f) for f in files)
    assert len(seen) >= 40 and sum(f.closed for f in seen.values()) == len(seen) - len(st.order)
    # every tombstone is past the linger time
    assert st.expire(t + linger + 10 * S, linger) == 12000
    assert len(st) == 0 and st.order == [] and _files(st) == [] and all(f.closed for f in seen.values())
    # a long linger time makes longer generations (at most about 32 of them)
    assert tomb.TombStore(3600 * S).span_ns == 3600 * S // 32


def test_the_flow_table_evicts_tombstones_in_dict_order():
    """Over ``max_connections`` the least recently active go first, tombstones included, with
    ties in the order the tombstones were stored (as the dict before the store)."""
    table = E.FlowTable(5, 120 * S, 0, False)
    for i in range(6):
        table.tombs[_key(i)] = _rec(i, 1000 if i in (1, 4) else 2000 + i)
    table.live = 6
    table.tombs[_key(1)] = _rec(1, 1000)       # a newer record keeps the key's place
    gone = []
    table.evict_oldest(lambda c, r: gone.append(c))
    assert table.evicted == 1 and table.live == 5
    assert _key(1) not in table.tombs and _key(4) in table.tombs
    assert [k for k, _r in table.tombs.items()] == [_key(i) for i in (0, 2, 3, 4, 5)]


def test_an_unwritable_temporary_directory_is_an_output_error(monkeypatch, tmp_path, small_buffers):
    """Tombstones and spilled records that cannot reach their temporary files end the run
    with an output error (exit code 4) naming the directory, not an error about the capture."""
    import tempfile

    from tcpanalyze import records
    from tcpanalyze.errors import OutputError

    missing = tmp_path / "gone"
    monkeypatch.setattr(tempfile, "tempdir", str(missing))
    st = tomb.TombStore(20 * S)
    with pytest.raises(OutputError) as e:
        for i in range(200):
            st[_key(i)] = _rec(i, i * S // 100)
    assert str(e.value).startswith(f"cannot write a temporary file in {missing}:")
    spill = records._SpillFile()
    with pytest.raises(OutputError) as e:
        spill.put(b"x" * (records.K_SPILL_CHUNK + 1))
    assert str(e.value).startswith(f"cannot write a temporary file in {missing}:")
    with pytest.raises(OutputError) as e:
        records._SpillFile(named=True)
    assert str(e.value).startswith(f"cannot write a temporary file in {missing}:")
