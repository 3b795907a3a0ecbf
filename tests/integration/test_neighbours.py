"""labnet beside other tools and other labs: iproute2's netns convention, names that never
become paths, `clean` that removes leftovers and not labs, state only root can read.

Most of these run in a sealed mount namespace (tests/integration/sealed.py): /run is a fresh
tmpfs there, so `clean`, `down --all` and `ip netns` reach only what the test made."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import textwrap

import pytest

from tests.fingerprint import fingerprint
from tests.integration.sealed import run_sealed, sealed

PRELUDE = textwrap.dedent("""
    import json, os, subprocess, sys
    from pathlib import Path
    from labnet.kernel import mounts
    from labnet.pytest_plugin import record_lab
    from tests.integration.leftovers import lab_inodes, leftovers
    from tests.manifests import bare_pods, lab_text

    def sh(*argv):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        return {"rc": r.returncode, "out": r.stdout, "err": r.stderr}

    def labnet(*args):
        return sh(sys.executable, "-m", "labnet", *args)

    def lab_file(name, pods=2):
        path = Path(f"/run/{name}.yaml")
        path.write_text(lab_text(bare_pods(pods), name=name))
        return str(path)

    def netns_mounts():
        # names, not mounts: under a shared /run (systemd's), iproute2's own convention makes a
        # peer copy of each mount below the self-bind; and only this /run/netns's, not the
        # copies of the machine's (a lab running outside) under the tmpfs
        return sorted(f"/run/netns/{name}" for name in mounts.mounts_in_dir("/run/netns"))
""")


def in_sealed(body: str, shared: bool = False) -> dict:
    return run_sealed(PRELUDE + textwrap.dedent(body), shared=shared)


def one_line(result: dict) -> bool:
    return len(result["err"].strip().splitlines()) == 1 and "Traceback" not in result["err"]


@pytest.mark.parametrize("shared", [False, True], ids=["private-run", "shared-run"])
@pytest.mark.parametrize("built_by", ["this-labnet", "older-labnet"])
def test_ip_netns_add_between_up_and_down_leaves_nothing(shared, built_by):
    """From a plain /run/netns (as after a boot): `labnet up; ip netns add other; labnet down`
    removes everything, and `other` still works. `older-labnet` builds the lab as labnet did
    before it followed iproute2 (nsfs mounts straight onto the plain directory), so the later
    self-bind of `ip netns add` covers them."""
    out = in_sealed(f"""
        name = record_lab(f"nb{{os.getpid() % 100000}}")
        path = lab_file(name)
        if {built_by == "older-labnet"!r}:
            code = ("from labnet.kernel import nsfs\\n"
                    "nsfs.share_netns_dir = lambda: None\\n"
                    "from labnet.lab import Lab\\n"
                    f"Lab.load({{path!r}}).up()\\n")
            up = sh(sys.executable, "-c", code)
        else:
            up = labnet("up", path)
        plain_before = not os.path.ismount("/run/netns")
        inodes = lab_inodes(name)
        other = sh("ip", "netns", "add", "other")
        stacked = sum(1 for m in mounts.mountinfo()
                      if m.mount_point.startswith(f"/run/netns/{{name}}-"))
        down = labnet("down", name)
        works = sh("ip", "netns", "exec", "other", "ip", "link", "show", "lo")
        left = leftovers(name, inodes)
        mounts_after = netns_mounts()
        sh("ip", "netns", "del", "other")
        print(json.dumps({{"up": up, "plain_before": plain_before, "inodes": len(inodes),
                          "other": other, "stacked": stacked, "down": down, "works": works,
                          "left": left, "mounts_after": mounts_after,
                          "final": netns_mounts()}}))
    """, shared=shared)
    assert out["up"]["rc"] == 0, out["up"]["err"]
    assert out["inodes"] == 7 and out["other"]["rc"] == 0
    if built_by == "older-labnet":
        assert out["plain_before"]  # nothing made /run/netns a mount point before `ip netns`
        assert out["stacked"] == 14  # its self-bind copied each mount and covered the originals
    elif not shared:
        assert out["stacked"] == 7  # labnet made the self-bind first: `ip netns` covers nothing
    assert out["down"]["rc"] == 0 and "7 namespaces removed" in out["down"]["out"], out["down"]
    assert out["left"] == []
    assert out["works"]["rc"] == 0 and "lo" in out["works"]["out"]
    # only `other` is mounted: nothing of the lab stacked or hidden anywhere
    assert out["mounts_after"] == ["/run/netns/other"]
    assert out["final"] == []


def test_names_that_are_not_lab_names_never_become_paths():
    out = in_sealed("""
        canary = Path("/run/canary")
        canary.mkdir()
        (canary / "keep").write_text("alive")
        Path("/run/labnet").mkdir(mode=0o700)
        os.symlink("/run/canary", "/run/labnet/evil")   # an entry that is not a directory
        # someone's namespace whose lo says it belongs to a lab named ../canary
        sh("ip", "netns", "add", "foreign")
        alias = sh("ip", "-n", "foreign", "link", "set", "lo", "alias", "labnet:../canary")
        results = {
            "down": labnet("down", "../x"),
            "down-dots": labnet("down", ".."),
            "status": labnet("status", "--lab", ".."),
            "exec": labnet("exec", "--lab", "../canary", "x", "--", "true"),
            "down-symlink": labnet("down", "evil"),
            "clean": labnet("clean"),
            "down-all": labnet("down", "--all"),
        }
        print(json.dumps({"alias": alias, "results": results,
                          "canary": (canary / "keep").read_text(),
                          "symlink": os.path.islink("/run/labnet/evil"),
                          "foreign": os.path.exists("/run/netns/foreign")}))
    """)
    assert out["alias"]["rc"] == 0
    results = out["results"]
    for key in ("down", "down-dots", "status", "exec"):
        assert results[key]["rc"] == 2, (key, results[key])
        assert one_line(results[key]) and "not a valid DNS-1123 label" in results[key]["err"]
    assert results["down-symlink"]["rc"] != 0 and one_line(results["down-symlink"])
    for key in ("clean", "down-all"):
        assert results[key]["rc"] == 0, (key, results[key])
        assert "owner mark 'labnet:../canary' names no valid lab: left alone" in \
            results[key]["err"]
        assert "Traceback" not in results[key]["err"]
    assert out["canary"] == "alive" and out["symlink"] and out["foreign"]


def test_clean_removes_leftovers_and_leaves_running_labs_alone():
    out = in_sealed("""
        import signal, time
        alive = record_lab(f"ca{os.getpid() % 100000}")
        dead = record_lab(f"cd{os.getpid() % 100000}")
        ups = [labnet("up", lab_file(alive)), labnet("up", lab_file(dead))]
        dead_inodes = lab_inodes(dead)
        # the dead lab's agent crashed, and so did its supervisor (else it would be back)
        for name in ("supervisor.pid", "agent.pid"):
            os.kill(int(Path(f"/run/labnet/{dead}/{name}").read_text()), signal.SIGKILL)
        time.sleep(0.5)
        clean = labnet("clean")
        status = labnet("status", "--lab", alive)
        left_dead = leftovers(dead, dead_inodes)
        alive_inodes = lab_inodes(alive)
        everything = labnet("clean", "--all")
        print(json.dumps({"ups": ups, "clean": clean, "status": status, "left_dead": left_dead,
                          "all": everything, "left_alive": leftovers(alive, alive_inodes),
                          "alive": alive, "dead": dead}))
    """)
    assert all(u["rc"] == 0 for u in out["ups"]), out["ups"]
    alive, dead = out["alive"], out["dead"]
    assert out["clean"]["rc"] == 0, out["clean"]
    assert f"lab {dead}: removed (7 namespaces)" in out["clean"]["out"]
    assert f"lab {alive}: left alone: running (pod agent pid" in out["clean"]["out"]
    assert out["left_dead"] == []
    assert out["status"]["rc"] == 0 and "healthy" in out["status"]["out"]
    assert f"lab {alive}: removed (7 namespaces)" in out["all"]["out"]
    assert out["left_alive"] == []


def test_down_says_what_it_cannot_remove_and_finishes_later():
    """A copy of a lab's namespace mounted elsewhere (another tool's) keeps it alive: `down`
    names it, one line per namespace, exits non-zero, keeps the state, and finishes once the
    copy is gone."""
    out = in_sealed("""
        name = record_lab(f"dn{os.getpid() % 100000}")
        up = labnet("up", lab_file(name))
        Path("/run/held").write_text("")
        held = sh("mount", "--bind", f"/run/netns/{name}-node1", "/run/held")
        inodes = lab_inodes(name)
        first = labnet("down", name)
        state_kept = Path(f"/run/labnet/{name}/plan.json").exists()
        sh("umount", "/run/held")
        second = labnet("down", name)
        print(json.dumps({"up": up, "held": held, "first": first, "state_kept": state_kept,
                          "second": second, "left": leftovers(name, inodes)}))
    """)
    assert out["up"]["rc"] == 0 and out["held"]["rc"] == 0
    first = out["first"]
    assert first["rc"] == 3 and "Traceback" not in first["err"]
    lines = first["err"].strip().splitlines()
    assert lines[0].startswith("labnet: netns ") and "still mounted at /run/held" in lines[0]
    assert len(lines) == 2 and "1 namespace(s) could not be removed" in lines[1]
    assert out["state_kept"]
    assert out["second"]["rc"] == 0, out["second"]
    assert out["left"] == []


def test_mounts_stacked_on_one_name_are_all_removed():
    out = in_sealed("""
        name = record_lab(f"st{os.getpid() % 100000}")
        up = labnet("up", lab_file(name))
        node = f"/run/netns/{name}-node1"
        binds = [sh("mount", "--bind", node, node) for _ in range(2)]
        stacked = sum(1 for m in mounts.mountinfo() if m.mount_point == node)
        inodes = lab_inodes(name)
        down = labnet("down", name)
        print(json.dumps({"up": up, "binds": binds, "stacked": stacked, "down": down,
                          "left": leftovers(name, inodes)}))
    """)
    assert out["up"]["rc"] == 0 and all(b["rc"] == 0 for b in out["binds"])
    assert out["stacked"] >= 3  # (propagation within the shared /run/netns may add copies)
    assert out["down"]["rc"] == 0, out["down"]
    assert out["left"] == []


def test_state_and_etc_files_are_root_only(labnet_lab):
    lab = labnet_lab()
    mode = lambda p: stat.S_IMODE(os.lstat(p).st_mode)  # noqa: E731
    root = lab.state.root
    assert mode(root.parent) == 0o700 and mode(root) == 0o700
    for name in ("plan.json", "desired.json", "host", "agent.pid", "lock"):
        assert mode(root / name) == 0o600, name
    assert stat.S_ISSOCK(os.lstat(root / "agent.sock").st_mode)
    assert mode(root / "agent.sock") == 0o600
    assert mode(root / "logs") == 0o700 and mode(root / "logs" / "agent.log") == 0o600
    client = lab.pod("client").netns
    assert mode(f"/etc/netns/{client}") == 0o755
    assert mode(f"/etc/netns/{client}/resolv.conf") == 0o644
    assert os.stat(f"/etc/netns/{client}/resolv.conf").st_uid == 0


def test_a_lab_of_the_same_name_in_another_mount_namespace_is_not_touched(labnet_lab, tmp_path):
    """A container-like mount namespace with its own /run/netns (a tmpfs over it) sees, under
    that tmpfs, copies of the outer lab's mounts at the very same paths. A lab of the same name
    built and taken down in there must not kill, unmount or remove anything of the outer one."""
    outer = labnet_lab()
    before = fingerprint(outer.name)
    made_etc = not os.path.exists("/etc/netns")
    os.makedirs("/etc/netns", mode=0o755, exist_ok=True)
    script = (f"{sys.executable} -m labnet up {outer.path} >/dev/null && "
              f"{sys.executable} -m labnet down {outer.name} && ls /run/netns")
    try:
        result = sealed(["sh", "-c", script], fresh_run=False,
                        env={"LABNET_RUN_DIR": str(tmp_path / "run")})
    finally:
        if made_etc:
            with contextlib.suppress(OSError):
                os.rmdir("/etc/netns")
    assert result.returncode == 0, result.stderr
    assert f"lab {outer.name} is down (8 namespaces removed)" in result.stdout
    assert result.stdout.strip().endswith("removed)")  # and /run/netns in there is empty
    assert fingerprint(outer.name) == before
    assert outer.status().healthy
