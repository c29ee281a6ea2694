"""The plan cache: one render per config and attachment shape, safe to trust, never stale."""

import json
import os

import pytest

from cnish import engine, plancache
from lab import operation

RAW = {"cniVersion": "1.0.0", "name": "net1", "type": "bridge", "bridge": "br9", "ipMasq": True,
       "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.5.0.0/24"}]],
                "dataDir": "(the test's own: store_in_tmp)"}}


@pytest.fixture(autouse=True)
def store_in_tmp(tmp_path, monkeypatch):
    """A plan built for real (not a dry run) takes host-local's store lock, which makes the
    store's directory: the test's own, not a path on the machine (it made
    /nonexistent/cnish-cache-test/net1/lock there)."""
    monkeypatch.setitem(RAW["ipam"], "dataDir", str(tmp_path / "store"))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    directory = tmp_path / "plans"
    monkeypatch.setenv("CNISH_PLAN_CACHE", str(directory))
    renders = []
    real = plancache._renderer

    def counting():
        renders.append(1)
        return real()
    monkeypatch.setattr(plancache, "_renderer", counting)
    return directory, renders


def plan(raw=RAW, cid="ctr1", dry_run=False, **kw):
    op = operation(dict(raw), cid=cid, dry_run=dry_run, **kw)
    return engine.build_plan(op)[0], op


def test_second_container_reuses_the_rendered_plan(cache):
    directory, renders = cache
    first, _ = plan(cid="a")
    assert len(renders) == 1 and len(os.listdir(directory)) == 1
    second, _ = plan(cid="b")
    assert len(renders) == 1                      # no render: the cached plan was bound
    assert [s.id for s in first.steps] == [s.id for s in second.steps]
    veth = [s.id for s in first.steps].index("veth")
    assert first.steps[veth].run.argv != second.steps[veth].run.argv      # its own veth name


def test_config_and_shape_changes_render_again(cache):
    _, renders = cache
    plan()
    plan(dict(RAW, mtu=1400))
    assert len(renders) == 2
    plan(dict(RAW, runtimeConfig={"mac": "0a:00:00:00:00:07"}))   # same shape: a value only
    assert len(renders) == 2
    dual = dict(RAW, ipam=dict(RAW["ipam"], ranges=[[{"subnet": "10.5.0.0/24"}],
                                                     [{"subnet": "fd05::/64"}]]))
    plan(dual)
    assert len(renders) == 3


def test_dry_run_reads_but_never_writes(cache):
    directory, renders = cache
    plan(dry_run=True)
    assert not directory.exists()
    plan()
    plan(cid="other", dry_run=True)
    assert len(renders) == 2 and len(os.listdir(directory)) == 1


def test_the_operator_cli_shares_the_plan_a_runtime_cached(cache):
    """`cnish add NET NS --dry-run` names the namespace; only the steps that create or delete
    it use that name, so without them the CLI's plan is the runtime's cached one."""
    _, renders = cache
    plan(cid="runtime")
    plan(cid="operator", dry_run=True, opts={"create_netns": False, "netns_name": "ns1"})
    assert len(renders) == 1
    created, _ = plan(cid="operator", dry_run=True, opts={"create_netns": True, "netns_name": "ns1"})
    assert len(renders) == 2 and created.steps[0].run.argv[-1] == "ns1"


def test_an_untrusted_directory_is_ignored(cache):
    directory, renders = cache
    plan()
    os.chmod(directory, 0o777)
    plan(cid="b")
    assert len(renders) == 2


@pytest.fixture
def own_sources(tmp_path, monkeypatch):
    """A private copy of plans/ and templates/ that a test may edit, and a fresh renderer
    (Jinja and the recipe loader keep what they read for the life of the process)."""
    import shutil
    from cnish import paths, recipes, templating
    copies = {}
    for name, find in (("plans", paths.plans_dir), ("templates", paths.templates_dir)):
        copies[name] = str(tmp_path / "sources" / name)
        shutil.copytree(find(), copies[name])
    monkeypatch.setattr(paths, "plans_dir", lambda: copies["plans"])
    monkeypatch.setattr(paths, "templates_dir", lambda: copies["templates"])
    monkeypatch.setattr(recipes, "plans_dir", lambda: copies["plans"])
    monkeypatch.setattr(templating, "templates_dir", lambda: copies["templates"])
    monkeypatch.setattr(templating, "_renderer", None)
    monkeypatch.setattr(recipes, "_cache", {})
    monkeypatch.setattr(plancache, "_code_digest", None)
    return copies


def sources_of(directory):
    (entry,) = [json.loads((directory / n).read_text()) for n in os.listdir(directory)]
    return [path for path, _size, _mtime in entry["sources"]]


@pytest.mark.parametrize("edit", ["recipe", "template", "included template"])
def test_an_edited_recipe_or_template_renders_again(cache, own_sources, edit):
    directory, renders = cache
    plan()
    sources = sources_of(directory)
    assert os.path.join(own_sources["plans"], "bridge.toml") in sources
    assert os.path.join(own_sources["plans"], "host-local.toml") in sources
    # nsenter/net.j2 is only ever included by other templates (the container-side prefix)
    included = os.path.join(own_sources["templates"], "nsenter", "net.j2")
    assert included in sources
    plan(cid="b")
    assert len(renders) == 1                              # unchanged: the stored plan is used
    target = {"recipe": os.path.join(own_sources["plans"], "bridge.toml"),
              "template": next(p for p in sources if p.startswith(own_sources["templates"])
                               and p != included),
              "included template": included}[edit]
    with open(target, "a") as f:
        f.write("\n" if target.endswith(".toml") else "{# edited #}")
    plan(cid="c")
    assert len(renders) == 2
    plan(cid="d")
    assert len(renders) == 2                              # and the new render is stored


def test_a_file_edited_while_it_is_rendered_is_not_cached(cache, own_sources, monkeypatch):
    """A template replaced after the render read it, before the plan was stored: the plan
    holds the old text, so it must not be stored as matching the new file (it was: its
    stamps were taken when it was stored, found by an audit). A recipe edited between two
    renders of one process is read again (the process used to keep the first one)."""
    from cnish import paths, recipes
    directory, renders = cache
    target = os.path.join(own_sources["templates"], "ip", "link-set-up.j2")
    real = paths.recording

    def edit_when_done(active):
        if not active:                       # the render is over: the upgrade lands now
            with open(target, "a") as f:
                f.write("{# upgraded #}")
        return real(active)
    monkeypatch.setattr(paths, "recording", edit_when_done)
    plan()
    assert not directory.exists() or not os.listdir(directory)
    monkeypatch.setattr(paths, "recording", real)
    plan(cid="b")
    assert len(renders) == 2 and len(os.listdir(directory)) == 1
    # a long-lived process: the recipe edited between two renders
    recipe = os.path.join(own_sources["plans"], "bridge.toml")
    first = recipes.load("bridge")
    with open(recipe, "a") as f:
        f.write("\n")
    assert recipes.load("bridge") is not first


def test_an_entry_that_is_no_regular_file_is_rendered_around(cache):
    """A FIFO or a directory where an entry belongs: the plan is rendered (a FIFO used to
    hang ADD, which holds the store's lock while it plans; a directory failed every ADD)."""
    directory, renders = cache
    plan()
    (name,) = os.listdir(directory)
    os.unlink(directory / name)
    os.mkfifo(directory / name)
    plan(cid="b")
    os.unlink(directory / name)
    os.mkdir(directory / name)
    plan(cid="c")
    assert len(renders) == 3


def test_a_changed_rendering_code_renders_again(cache, monkeypatch):
    _, renders = cache
    plan()
    monkeypatch.setattr(plancache, "_code_digest", "rendering code edited")
    plan(cid="b")
    assert len(renders) == 2


def test_eviction_keeps_the_cache_bounded(cache, monkeypatch):
    directory, _ = cache
    monkeypatch.setattr(plancache, "MAX_ENTRIES", 3)
    for mtu in range(1400, 1406):
        plan(dict(RAW, mtu=mtu))
    assert len(os.listdir(directory)) == 3


def test_a_huge_plan_is_not_cached(cache):
    """A plan of megabytes (a config with thousands of routes) is rendered each time instead of
    cached, so configs cannot fill /run, a tmpfs, with up to MAX_ENTRIES of them (an audit's
    0.8 MB config left a 28 MB entry)."""
    directory, renders = cache
    routes = [{"dst": f"10.{i >> 8}.{i & 255}.0/24"} for i in range(6, 3000)]
    huge = dict(RAW, ipam=dict(RAW["ipam"], routes=routes))
    plan(huge)
    assert len(renders) == 1 and not (directory.exists() and os.listdir(directory))
    plan(huge, cid="b")
    assert len(renders) == 2                          # rendered again: nothing was cached
    plan()
    assert len(os.listdir(directory)) == 1            # an ordinary plan still is


def test_a_full_file_system_stores_nothing_partial_and_leaves_no_temporary_files(cache,
                                                                                 monkeypatch):
    """On a full /run the write comes back short, then fails: no truncated entry may be
    renamed into place and no temporary file may stay (each call left one); the temporary
    files of killed writers are removed when a plan is stored. Found by the concurrency audit."""
    import errno
    directory, renders = cache
    directory.mkdir(mode=0o700)
    old = directory / "dead.json.4242.tmp"
    old.write_text("{")
    os.utime(old, (0, 0))
    real_write = os.write

    def full(fd, data):
        if len(data) > 100:
            return real_write(fd, data[:100])
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "write", full)
    plan(cid="a")
    monkeypatch.setattr(os, "write", real_write)
    assert os.listdir(directory) == [] and len(renders) == 1
    plan(cid="b")                       # space again: stored, and found by the next call
    assert len(renders) == 2 and len(os.listdir(directory)) == 1
    plan(cid="c")
    assert len(renders) == 2


def test_a_directory_of_another_user_is_ignored(cache):
    """Plans are commands run as root: a cache directory another user owns (and so could fill
    with plans of its own) is neither read nor written, even with mode 0700."""
    directory, renders = cache
    plan()
    os.chown(directory, 65534, 65534)
    for name in os.listdir(directory):       # so that a write would show
        os.unlink(directory / name)
    plan(cid="b")
    plan(cid="c")
    assert len(renders) == 3 and os.listdir(directory) == []


def test_a_symlinked_entry_is_not_followed(cache, tmp_path):
    """An entry replaced by a symbolic link (to a plan written elsewhere) is not read."""
    directory, renders = cache
    plan()
    (name,) = os.listdir(directory)
    elsewhere = tmp_path / "elsewhere.json"
    os.rename(directory / name, elsewhere)
    os.symlink(elsewhere, directory / name)
    plan(cid="b")
    assert len(renders) == 2


def test_an_entry_without_sources_is_not_fresh(cache):
    """Freshness is proven by the files a plan was rendered from: an entry that names none
    proves nothing and is rendered again."""
    directory, renders = cache
    plan()
    (name,) = os.listdir(directory)
    entry = json.loads((directory / name).read_text())
    (directory / name).write_text(json.dumps(dict(entry, sources=[])))
    plan(cid="b")
    assert len(renders) == 2


def test_a_concurrent_writers_temporary_file_is_left_alone(cache):
    """Storing a plan sweeps the temporary files of killed writers (older than a minute), not
    the one a concurrent writer is filling right now."""
    directory, _ = cache
    directory.mkdir(mode=0o700)
    fresh = directory / "other.json.4243.tmp"
    fresh.write_text("{")
    plan()
    assert fresh.exists()


def test_the_code_digest_follows_the_rendering_code(monkeypatch, tmp_path):
    """Cached plans are keyed by the size and mtime of the code that renders them, so an
    upgrade of cnish invalidates them (checked on copies of those files)."""
    import shutil
    here = os.path.dirname(plancache.__file__)
    names = ("templating.py", "recipes.py", "plancache.py", "templating_marks.py", "plan.py")
    for name in names:
        shutil.copy2(os.path.join(here, name), tmp_path / name)
    monkeypatch.setattr(plancache, "__file__", str(tmp_path / "plancache.py"))
    monkeypatch.setattr(plancache, "_code_digest", None)
    before = plancache._code_digest_now()
    for name in names:
        monkeypatch.setattr(plancache, "_code_digest", None)
        with open(tmp_path / name, "a") as f:
            f.write("\n")
        after = plancache._code_digest_now()
        assert after != before, name
        before = after
