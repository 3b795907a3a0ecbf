"""Pure parts of running safely beside other things: lab names, paths from names, log file
names, mountinfo, one-line OS errors, state file modes (in a temporary directory)."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from labnet.cli import os_error
from labnet.errors import SpecError
from labnet.kernel.mounts import parse_mountinfo
from labnet.kernel.teardown import Removal, TeardownIncomplete
from labnet.names import MAX_FILE_NAME, lab_name_problem, log_file_name, owner_from_mark
from labnet.safepath import UnsafePath, child
from labnet.state import StateDir, list_labs


@pytest.mark.parametrize("name", ["demo", "a", "t1234n5", "a-b-c", "x" * 32])
def test_lab_names_that_are_fine(name):
    assert lab_name_problem(name) is None


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "../../etc", "Demo", "-a", "a-",
                                  "a_b", "x" * 33, "a\0b", "a b", None, 7])
def test_lab_names_that_are_not(name):
    assert lab_name_problem(name) is not None


def test_owner_marks():
    assert owner_from_mark("labnet:demo") == "demo"
    assert owner_from_mark("labnet:../canary") == "../canary"  # parsed, then refused by name
    assert lab_name_problem(owner_from_mark("labnet:../canary")) is not None
    assert owner_from_mark("something else") is None


def test_state_dir_refuses_names_that_are_not_lab_names(tmp_path):
    for bad in ("..", "../x", "a/b", ""):
        with pytest.raises(SpecError, match="not a valid DNS-1123 label"):
            StateDir(bad, tmp_path)


def test_paths_from_names_stay_inside_their_directory(tmp_path):
    assert child(tmp_path, "demo") == tmp_path / "demo"
    for bad in ("..", ".", "a/b", "", "a\0b"):
        with pytest.raises(UnsafePath):
            child(tmp_path, bad)
    outside = tmp_path / "outside"
    outside.mkdir()
    base = tmp_path / "base"
    base.mkdir()
    (base / "link").symlink_to(outside)
    with pytest.raises(UnsafePath, match="leads out of"):
        child(base, "link")


def test_state_files_are_created_root_only(tmp_path):
    state = StateDir("demo", tmp_path / "run")
    state.write("desired.json", "{}")
    with state.locked():
        pass
    mode = lambda p: stat.S_IMODE(os.lstat(p).st_mode)  # noqa: E731
    assert mode(tmp_path / "run") == 0o700 and mode(state.root) == 0o700
    assert mode(state.root / "desired.json") == 0o600 and mode(state.lock_path) == 0o600
    # an older labnet's world-readable directory is mended, a stale temporary file not reused
    os.chmod(state.root, 0o755)
    (state.root / "plan.json.tmp").write_text("old")
    os.chmod(state.root / "plan.json.tmp", 0o666)
    state.write("plan.json", "{}")
    assert mode(state.root) == 0o700 and mode(state.root / "plan.json") == 0o600


def test_only_lab_directories_are_labs(tmp_path):
    (tmp_path / "demo").mkdir()
    (tmp_path / "Not_A_Lab").mkdir()
    (tmp_path / "evil").symlink_to(tmp_path / "demo")
    (tmp_path / "file").write_text("")
    assert list_labs(tmp_path) == ["demo"]


def test_log_file_names_stay_short_and_distinct():
    assert log_file_name("default", "web", "c") == "default_web_c.log"
    pod = "p" * 253
    a, b = log_file_name("default", pod, "one"), log_file_name("default", pod, "two")
    assert len(a) <= MAX_FILE_NAME and a.endswith(".log") and "/" not in a
    assert a != b and a == log_file_name("default", pod, "one")


def test_mountinfo_with_escapes_and_optional_fields():
    text = ("43 27 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw\n"
            "44 43 0:4 net:[4026532177] /run/netns/a\\040b rw shared:2 master:1 - nsfs nsfs rw\n"
            "45 27 0:4 net:[4026532178] /run/netns/c rw - nsfs nsfs rw\n")
    mounts = parse_mountinfo(text)
    assert [(m.id, m.parent, m.mount_point, m.fstype) for m in mounts] == [
        (43, 27, "/run/netns", "ext4"), (44, 43, "/run/netns/a b", "nsfs"),
        (45, 27, "/run/netns/c", "nsfs")]
    assert mounts[1].root == "net:[4026532177]"


def test_os_errors_become_one_line_that_says_what_to_do():
    line = str(os_error(OSError(errno.EBUSY, "Device or resource busy", "/run/netns/x")))
    assert line.startswith("/run/netns/x: Device or resource busy (something still uses it")
    assert "\n" not in line
    assert "ulimit -n" in str(os_error(OSError(errno.EMFILE, "Too many open files")))
    assert "free space" in str(os_error(OSError(errno.ENOSPC, "No space left on device", "/run")))


def test_an_incomplete_teardown_is_one_line_per_namespace():
    result = Removal(["demo-node1"], {"demo-node2": "still mounted at /x", "demo-p": "busy"})
    with pytest.raises(TeardownIncomplete) as caught:
        result.raise_if_failed("demo")
    assert str(caught.value).splitlines() == [
        "netns demo-node2: still mounted at /x", "netns demo-p: busy",
        "lab demo: 2 namespace(s) could not be removed: see above; `labnet down` tries again"]
    assert Removal(["a"]).raise_if_failed("demo") == ["a"]
