"""Key hierarchy, sealing, keyed digests and password sources (engine/keys.py, password.py)."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.blockio import Compressor
from engine.keys import ChainKey, EncryptionError, KeyRing, WrongPassword
from engine.model import DiskInfo, Kind, MachineMeta, Method, RestorePoint
from engine.password import Password, PasswordError, PasswordSource, SourceKind
from engine.repository.container import FLAG_SEALED, ContainerWriter
from engine.repository.resolve import PointView

BS = 4096
# one ring for the whole module: scrypt runs once per salt, so the property tests stay fast
RING = KeyRing(password=Password(b"property test password"))
KEY, ENVELOPE = RING.create()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 40), st.sampled_from([b"a", b"b", b"\x00", b"r"]),
                          st.integers(1, BS)), min_size=1, max_size=30),
       st.sampled_from(["none", "optimal"]))
def test_random_block_sequences_round_trip_sealed(tmp_path_factory, writes, level):
    """Any sequence of block writes (repeats, zeros, short tails) sealed into a file the
    way the source mover does reads back exactly through PointView, equal blocks share
    one stored payload, and no plaintext block is stored."""
    folder = tmp_path_factory.mktemp("seal")
    comp = Compressor(level)
    disk: dict[int, bytes] = {}
    for block, kind, n in writes:
        if kind == b"r":
            disk[block] = os.urandom(n) if block % 3 else (b"fixed" * BS)[:n]
        else:
            disk[block] = kind * n
    size = (max(disk) + 1) * BS
    w = ContainerWriter(folder / "f.fbk", "full", BS)
    w.set_disk("d", size)
    stored = set()
    for block, data in sorted(disk.items()):
        data = data.ljust(BS, b"\x00") if block < max(disk) else data
        disk[block] = data
        plain = xxhash.xxh3_128_digest(data)
        dg = KEY.digest(plain, len(data))
        if data == bytes(len(data)):
            w.put("d", block, dg, len(data), 2)
            continue
        flags, payload = comp.compress(data)
        e = w.put("d", block, dg, len(data), flags | FLAG_SEALED,
                  KEY.seal(payload, dg, len(data), flags))
        stored.add((e.offset, dg))
    w.commit(state="p1")
    size = max(disk) * BS + len(disk[max(disk)])
    point = RestorePoint("p1", datetime(2026, 1, 1), Kind.FULL, "f.fbk", [DiskInfo("d", size)],
                         key=KEY.key_id)
    meta = MachineMeta("J", "m", BS, Method.FOREVER_FORWARD, level, [point],
                       keys={KEY.key_id: ENVELOPE})
    with PointView(folder, meta, point, RING) as view:
        for b, loc in view.blocks("d").items():
            data, problem = view.read_verified(loc)
            assert problem == "" and data == disk[b]
        zero = {b for b, d in disk.items() if d == bytes(len(d))}
        assert set(view.blocks("d")) == set(disk) - zero
    assert len({dg for _, dg in stored}) == len(stored)  # equal blocks: one payload
    blob = (folder / "f.fbk").read_bytes()
    for data in disk.values():
        if data != bytes(len(data)) and len(data) >= 64 and level == "none":
            assert data[:64] not in blob


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=0, max_size=3000), st.integers(0, 10_000), st.data())
def test_any_changed_byte_or_entry_field_fails_authentication(payload, raw, data):
    dg = KEY.digest(xxhash.xxh3_128_digest(payload), raw)
    sealed = KEY.seal(payload, dg, raw, 0)
    assert KEY.open(sealed, dg, raw, 0) == payload
    i = data.draw(st.integers(0, len(sealed) - 1))
    flipped = bytearray(sealed)
    flipped[i] ^= 1 << data.draw(st.integers(0, 7))
    for args in ((bytes(flipped), dg, raw, 0), (sealed, bytes(16), raw, 0),
                 (sealed, dg, raw + 1, 0), (sealed, dg, raw, 1)):
        with pytest.raises(EncryptionError):
            KEY.open(*args)


@given(st.binary(max_size=64), st.binary(max_size=64))
def test_keyed_digests_equal_exactly_for_equal_blocks(a, b):
    da = KEY.digest(xxhash.xxh3_128_digest(a), len(a))
    db = KEY.digest(xxhash.xxh3_128_digest(b), len(b))
    assert (da == db) == (a == b)
    other = ChainKey("0" * 16, os.urandom(64))  # another chain: unrelated digests
    assert other.digest(xxhash.xxh3_128_digest(a), len(a)) != da
    assert da != xxhash.xxh3_128_digest(a)  # the target cannot recompute it


def test_nonces_are_fresh_per_seal():
    seals = {KEY.seal(b"same", bytes(16), 4, 0)[:12] for _ in range(200)}
    assert len(seals) == 200


def test_envelope_opens_with_the_password_only_and_stores_its_parameters():
    ring = KeyRing(password=Password(b"pw one"))
    key, env = ring.create()
    assert env["kdf"]["name"] == "scrypt" and env["kdf"]["n"] >= 1 << 15
    assert "pw one" not in repr(env) and "pw one" not in repr(ring)
    again = KeyRing(password=Password(b"pw one")).open(key.key_id, env)
    assert again.digest(bytes(16), 1) == key.digest(bytes(16), 1)
    with pytest.raises(WrongPassword):
        KeyRing(password=Password(b"pw two")).open(key.key_id, env)
    with pytest.raises(WrongPassword):  # the id is bound into the wrap
        KeyRing(password=Password(b"pw one")).open("f" * 16, env)
    hostile = {**env, "kdf": {**env["kdf"], "n": 1 << 30}}
    with pytest.raises(EncryptionError, match="out of range"):
        KeyRing(password=Password(b"pw one")).open(key.key_id, hostile)
    with pytest.raises(EncryptionError):
        KeyRing(password=Password(b"pw one")).open(key.key_id, {**env, "wrapped": "@@"})


def test_password_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_PW", raising=False)
    with pytest.raises(PasswordError, match="NOPE_PW"):
        PasswordSource(SourceKind.ENV, "NOPE_PW").read()
    monkeypatch.setenv("SOME_PW", "s3cret-env\n")
    assert PasswordSource(SourceKind.ENV, "SOME_PW").read().bytes() == b"s3cret-env"
    f = tmp_path / "pw"
    f.write_text("s3cret-file\n")
    os.chmod(f, 0o640)
    with pytest.raises(PasswordError, match="0600") as err:
        PasswordSource(SourceKind.FILE, str(f)).read()
    assert "s3cret" not in str(err.value)
    os.chmod(f, 0o600)
    assert PasswordSource(SourceKind.FILE, str(f)).read().bytes() == b"s3cret-file"
    link = tmp_path / "link"
    link.symlink_to(f)
    with pytest.raises(PasswordError):  # a symlink could point anywhere
        PasswordSource(SourceKind.FILE, str(link)).read()
    script = tmp_path / "pw.py"
    script.write_text("import sys\nprint('s3cret-cmd')\nsys.exit(int(sys.argv[1]))\n")
    ok = PasswordSource(SourceKind.COMMAND, f"{sys.executable} {script} 0")
    assert ok.read().bytes() == b"s3cret-cmd"
    with pytest.raises(PasswordError, match="status 3") as err:
        PasswordSource(SourceKind.COMMAND, f"{sys.executable} {script} 3").read()
    assert "s3cret" not in str(err.value)
    assert repr(ok.read()) == "Password(***)" and "s3cret" not in f"{ok.read()}"


def _job(tmp_path: Path, storage: str) -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    p = tmp_path / "j.toml"
    p.write_text(f'name = "J"\n[source]\nrepository = "src"\njobs = ["D"]\n[target]\n'
                 f'repository = "dst"\n[storage]\n{storage}\n')
    return p


@pytest.mark.parametrize("storage, key, problem", [
    ("encryption = true", "storage.encryption", "needs a password source"),
    ('encryption = true\npassword_env = "A"\npassword_file = "f"', "storage.password_file",
     "exactly one"),
    ('password = "hunter2"', "storage.password", "never go in the job file"),
    ('encryption = true\npassword_env = "not a name"', "storage.password_env",
     "environment variable name"),
    ('encryption = "yes"\npassword_env = "A"', "storage.encryption", "true or false"),
])
def test_job_file_encryption_settings_refused(tmp_path, storage, key, problem):
    from engine.jobs.load import JobFileError, load_job

    with pytest.raises(JobFileError) as err:
        load_job(_job(tmp_path, storage))
    assert err.value.key == key and problem in str(err.value)
    assert "hunter2" not in str(err.value)


def test_job_file_encryption_round_trips(tmp_path):
    from engine.jobs.load import load_job
    from engine.jobs.save import save_job

    spec = load_job(_job(tmp_path, 'encryption = true\npassword_file = "secret/pw"'))
    assert spec.storage.encryption
    assert spec.storage.password_source == PasswordSource(SourceKind.FILE,
                                                          str(tmp_path / "secret" / "pw"))
    saved = save_job(spec)
    assert 'password_file = "secret/pw"' in (tmp_path / "j.toml").read_text()
    assert saved.storage == spec.storage
    spec = load_job(_job(tmp_path, 'encryption = true\npassword_command = "pass show ferry"'))
    assert spec.storage.password_source.kind == SourceKind.COMMAND
    assert save_job(spec).storage == spec.storage
