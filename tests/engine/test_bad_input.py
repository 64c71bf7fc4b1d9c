"""Bad input: one line on stderr, exit 2, no traceback, and the repository untouched."""

from __future__ import annotations

import ctypes
import os
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from enginekit import (
    BS,
    JOB,
    MACHINE,
    assert_ok,
    assert_one_line_failure,
    day,
    tree_snapshot,
)

CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, PR_CAPBSET_DROP = 1, 2, 24


@pytest.fixture
def setup(tmp_path, ferry, make_machine):
    """A repository with two points of web01 and one of another machine; disks on hand."""
    repo = tmp_path / "repo"
    m = make_machine(41)
    m.add_disk("sda.img", size=3 * BS + 17)
    m.add_disk("sdb.img", size=2 * BS + 5)
    for d in range(2):
        if d:
            m.mutate("rewrite", "sda.img")
        m.backup(repo, day(d), method="forward", keep=5)
    m.backup(repo, day(0), machine="db01", method="reverse", keep=3)
    snapshot = tree_snapshot(repo)
    return repo, m, snapshot


def _backup_args(repo: Path, m, disks: list[Path] | None = None, **over) -> list[str]:
    """`ferry backup` arguments that succeed, with some options replaced by `over`."""
    opts = {"--repo": repo, "--job": JOB, "--machine": MACHINE, "--method": "forward",
            "--keep": "5", "--block-size": "256KiB", "--at": day(2).isoformat()}
    opts.update(over)
    args = ["backup"]
    for k, v in opts.items():
        args += [k, str(v)]
    for p in m.paths() if disks is None else disks:
        args += ["--disk", str(p)]
    return args


def _expect_refused(ferry, setup, args, *, code=2, words=(), **kw) -> str:
    repo, _m, before = setup
    res = ferry(*args, **kw)
    line = assert_one_line_failure(res, code)
    for w in words:
        assert w.lower() in line.lower(), line
    assert tree_snapshot(repo) == before, "the repository was changed"
    return line


def test_good_input_is_accepted(setup, ferry):
    """The control case: the same arguments without the mistake succeed."""
    repo, m, before = setup
    assert_ok(ferry(*_backup_args(repo, m)))
    assert tree_snapshot(repo) != before


def test_missing_disk_file(setup, ferry, tmp_path):
    repo, m, _ = setup
    args = _backup_args(repo, m) + ["--disk", str(tmp_path / "nope.img")]
    _expect_refused(ferry, setup, args, words=["nope.img"])


def test_directory_as_disk(setup, ferry, tmp_path):
    repo, m, _ = setup
    (tmp_path / "adir").mkdir()
    _expect_refused(ferry, setup, _backup_args(repo, m) + ["--disk", str(tmp_path / "adir")],
                    words=["adir"])


def test_fifo_as_disk_is_refused_without_hanging(setup, ferry, tmp_path):
    repo, m, _ = setup
    fifo = tmp_path / "pipe.img"
    os.mkfifo(fifo)
    _expect_refused(ferry, setup, _backup_args(repo, m) + ["--disk", str(fifo)],
                    words=["pipe.img"])


def test_disk_below_a_file(setup, ferry, tmp_path):
    """A path whose parent is a regular file cannot be opened (ENOTDIR)."""
    repo, m, _ = setup
    bogus = m.path("sda.img") / "disk.img"
    _expect_refused(ferry, setup, _backup_args(repo, m) + ["--disk", str(bogus)])


def _without_dac_override() -> None:  # runs in the child, before exec
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_unreadable_disk_file(setup, ferry):
    """chmod 000. As root the child drops CAP_DAC_OVERRIDE so permissions apply to it too."""
    repo, m, _ = setup
    disk = m.path("sdb.img")
    os.chmod(disk, 0)
    try:
        kw = {"preexec_fn": _without_dac_override} if os.geteuid() == 0 else {}
        # prove that a child started this way really cannot read the file
        cat = subprocess.run([sys.executable, "-c", f"open({str(disk)!r}, 'rb')"],
                             capture_output=True, **kw)
        assert cat.returncode != 0 and b"PermissionError" in cat.stderr
        _expect_refused(ferry, setup, _backup_args(repo, m), words=["sdb.img"], **kw)
    finally:
        os.chmod(disk, stat.S_IRUSR | stat.S_IWUSR)


@pytest.mark.parametrize("name", ["a/b", "../web01", "..", ".", "a..b", "x\ny", "tab\there",
                                  "bell\x07", "del\x7f", "zero\u200bwidth", "", "   "])
@pytest.mark.parametrize("which", ["--job", "--machine"])
def test_unsafe_names(setup, ferry, name, which):
    repo, m, _ = setup
    _expect_refused(ferry, setup, _backup_args(repo, m, **{which: name}))


def test_disk_name_with_control_character(setup, ferry, make_machine):
    repo, m, _ = setup
    other = make_machine(42)
    other.add_disk("bad\nname.img", size=BS + 1)
    _expect_refused(ferry, setup, _backup_args(repo, m, disks=other.paths()))


def test_two_disks_with_the_same_name(setup, ferry, make_machine):
    repo, m, _ = setup
    other = make_machine(43)
    other.add_disk("sda.img", size=BS + 1)
    _expect_refused(ferry, setup, _backup_args(repo, m, disks=m.paths() + other.paths()))


@pytest.mark.parametrize("method", ["backwards", "", "Forward", "incremental"])
def test_unknown_method(setup, ferry, method):
    repo, m, _ = setup
    _expect_refused(ferry, setup, _backup_args(repo, m, **{"--method": method}),
                    words=["method"])


def test_method_differs_from_the_chain(setup, ferry):
    repo, m, _ = setup
    _expect_refused(ferry, setup, _backup_args(repo, m, **{"--method": "reverse"}),
                    words=["forward"])


@pytest.mark.parametrize("keep", ["0", "-1", "x", "1.5", "", "2e3"])
def test_impossible_keep(setup, ferry, keep):
    repo, m, _ = setup
    _expect_refused(ferry, setup, _backup_args(repo, m, **{"--keep": keep}), words=["keep"])


@pytest.mark.parametrize("size", ["100KiB", "3MiB", "garbage", "128KiB", "16MiB", "0",
                                  "1.5MiB", "-256KiB", "256 KiBs", "262145"])
def test_bad_block_size(setup, ferry, size):
    repo, m, _ = setup
    _expect_refused(ferry, setup, _backup_args(repo, m, **{"--block-size": size}),
                    words=["block"])


def test_block_size_differs_from_the_chain(setup, ferry):
    repo, m, _ = setup
    _expect_refused(ferry, setup, _backup_args(repo, m, **{"--block-size": "1MiB"}),
                    words=["block size"])


@pytest.mark.parametrize("level", ["fast", "", "zstd", "auto-ish"])
def test_unknown_compression(setup, ferry, level):
    repo, m, _ = setup
    _expect_refused(ferry, setup, _backup_args(repo, m, **{"--compression": level}),
                    words=["compression"])


@pytest.mark.parametrize("at", ["yesterday", "2026-13-01T00:00", "2026-02-30T10:00", "",
                                "22:00", "2026-01-01T25:00", "1700000000"])
def test_bad_at(setup, ferry, at):
    repo, m, _ = setup
    _expect_refused(ferry, setup, _backup_args(repo, m, **{"--at": at}))


@pytest.mark.parametrize("when", [day(1), day(0.5), day(-30), day(1) - timedelta(seconds=1)])
def test_time_not_after_the_latest_point(setup, ferry, when):
    repo, m, _ = setup
    _expect_refused(ferry, setup, _backup_args(repo, m, **{"--at": when.isoformat()}),
                    words=["not after"])


def test_time_with_offset_not_after_the_latest_point(setup, ferry):
    repo, m, _ = setup
    local = day(1).astimezone()  # the latest point, written with its UTC offset
    _expect_refused(ferry, setup, _backup_args(repo, m, **{"--at": local.isoformat()}))


def test_unknown_option_and_missing_disk_option(setup, ferry):
    repo, m, _ = setup
    _expect_refused(ferry, setup, _backup_args(repo, m) + ["--bogus"])
    _expect_refused(ferry, setup, _backup_args(repo, m, disks=[]))


def test_bad_input_keeps_crash_leftovers(setup, ferry):
    """Refused input changes nothing, not even the leftovers of a killed run.

    (The next *successful* backup sweeps them; a refused one must not get that far.)
    """
    repo, m, _ = setup
    folder = repo / JOB / MACHINE
    (folder / "web01D2026-01-03T220000_deadbeef.fib.part").write_bytes(b"half a file")
    (folder / "web01.fbm.tmp").write_bytes(b"{")
    before = tree_snapshot(repo)
    for args in (_backup_args(repo, m, **{"--block-size": "1MiB"}),
                 _backup_args(repo, m, **{"--method": "reverse"}),
                 _backup_args(repo, m, **{"--at": day(1).isoformat()})):
        res = ferry(*args)
        assert_one_line_failure(res)
        assert tree_snapshot(repo) == before, f"changed by: {res.stderr.strip()}"


# --------------------------------------------------------------------------- export, chain, check


@pytest.mark.parametrize("point", ["0123456789abcdef", "nonsense", "2000-01-01T00:00", "2026-"])
def test_export_unknown_point(setup, ferry, tmp_path, point):
    repo, _m, _ = setup
    _expect_refused(ferry, setup, ["export", "--repo", repo, "--job", JOB, "--machine", MACHINE,
                                   "--point", point, "--out", tmp_path / "o"])


@pytest.mark.parametrize(("job", "machine"), [(JOB, "nobody"), ("No job", MACHINE),
                                              (JOB, "../web01"), ("..", MACHINE)])
def test_export_unknown_machine(setup, ferry, tmp_path, job, machine):
    repo, _m, _ = setup
    _expect_refused(ferry, setup, ["export", "--repo", repo, "--job", job, "--machine", machine,
                                   "--out", tmp_path / "o"])
    assert not (tmp_path / "o").exists()


def test_export_from_a_missing_repository(setup, ferry, tmp_path):
    _expect_refused(ferry, setup, ["export", "--repo", tmp_path / "none", "--job", JOB,
                                   "--machine", MACHINE, "--out", tmp_path / "o"])


@pytest.mark.parametrize("command", ["chain", "check"])
def test_chain_and_check_of_a_missing_repository(setup, ferry, tmp_path, command):
    _expect_refused(ferry, setup, [command, "--repo", tmp_path / "none"])


def test_unknown_command(setup, ferry):
    _expect_refused(ferry, setup, ["frobnicate"])
