"""Plan templates: rendered from recipes and templates with Jinja — or read from the cache.

Rendering is the expensive part of cnish (importing Jinja and compiling ~30 templates costs a
few hundred milliseconds), but a rendered plan depends only on the network config, the recipe
and templates, and the *shape* of the attachment (which IP families, how many addresses and
routes): per-container values are slots (templating.py). So the first container of a network
renders the plan and stores it; every later one binds its values into the stored copy, without
importing Jinja at all.

The cache lives in /run/cnish/plans (a tmpfs: gone at reboot), or CNISH_PLAN_CACHE ("off"
disables it). The key covers what the rendering depends on: cnish's version, where its recipes
and templates live, the size and modification time of the rendering code, the validated config,
the operator options and the attachment shape. Each entry also lists the recipe and template
files its render read (recorded as Jinja and the recipe loader open them, including templates
included by others) with their size and modification time, and is used only while all of them
are unchanged — so editing a template takes effect on the next call, at the cost of stat()ing
the twenty-odd files a plan uses rather than the whole tree. Because a plan is a list of
commands that will run as root, the cache is only used when its directory is owned by cnish's
user and writable by nobody else, files are read with O_NOFOLLOW, and writes are atomic. A
dry-run reads the cache but never writes it.
"""

import os
import stat

from cnish import __version__, jsonfast
from cnish.paths import stamp as _stamp

from cnish.names import sha512 as digest  # (names.py loads it anyway: one module fewer)

DEFAULT_DIR = "/run/cnish/plans"
MAX_ENTRIES = 512          # distinct (config, shape) pairs kept; the oldest go first
# A plan is ~3-20 KB. A config with tens of thousands of routes renders a plan of megabytes
# (an audit's 0.8 MB config gave 28 MB): not cached, so a config cannot fill /run (a tmpfs,
# memory) with MAX_ENTRIES of them; at most MAX_ENTRIES x MAX_ENTRY_BYTES = 128 MiB in all.
MAX_ENTRY_BYTES = 256 * 1024
_code_digest = None


def _renderer():
    from cnish.templating import renderer   # jinja2 is imported only here, only when rendering
    return renderer()


def _directory() -> str | None:
    path = os.environ.get("CNISH_PLAN_CACHE", DEFAULT_DIR)
    return None if path in ("", "off") else path


def _code_digest_now() -> str:
    """cnish's version, where its recipes and templates live, and size and mtime of the
    rendering code. (Which recipe and template files a plan was rendered from is stored with
    the plan and checked on every use: _fresh.)"""
    global _code_digest
    if _code_digest is None:
        from cnish.paths import plans_dir, templates_dir
        here = os.path.dirname(os.path.abspath(__file__))
        parts = [__version__, plans_dir(), templates_dir()]
        # (plan.py: its bind() reads the rendered steps' format, which a newer cnish may change)
        for name in ("templating.py", "recipes.py", "plancache.py", "templating_marks.py",
                     "plan.py"):
            st = os.stat(os.path.join(here, name))
            parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
        _code_digest = digest("\n".join(parts).encode()).hexdigest()
    return _code_digest


def _fresh(sources) -> bool:
    """Are the recipe and template files a plan was rendered from unchanged?"""
    try:
        return bool(sources) and all(_stamp(path) == [path, size, mtime]
                                     for path, size, mtime in sources)
    except (OSError, TypeError, ValueError):
        return False


def _conf_json(conf) -> object:
    return None if conf is None else _plain(conf.as_dict())


def _plain(value):
    """JSON-able form of config values (IPAM ranges are objects)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def _key(kind: str, op, extra) -> str:
    material = {"kind": kind, "code": _code_digest_now(), "type": op.type,
                "includes": op.includes(), "conf": _conf_json(op.conf),
                "ipam": _conf_json(op.ipam_conf), "net": [op.name, op.version],
                "opts": op.opts, "extra": extra}
    return digest(jsonfast.dumps(material).encode()).hexdigest()


refused = None      # why the cache directory was not used (the engine logs it), or None


def _trusted(directory: str) -> bool:
    """Only a directory no other user can swap an entry of (or itself) is read or written:
    an entry is commands root runs (trusteddirs.py)."""
    from cnish import trusteddirs
    global refused
    why = trusteddirs.refusal(directory)
    if why and os.path.lexists(directory):          # (a missing one is made when stored)
        refused = why
    return why is None


def _load(directory, key):
    try:
        # (O_NONBLOCK: a FIFO planted there must not hang ADD, which holds the store's lock)
        fd = os.open(os.path.join(directory, key + ".json"),
                     os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            return None                  # a directory, a FIFO, another user's: rendered
        return jsonfast.loads(os.read(fd, MAX_ENTRY_BYTES + 1))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def _store(directory, key, value) -> None:
    try:
        data = jsonfast.dumps(value).encode()
        if len(data) > MAX_ENTRY_BYTES:
            return                # rendered at every call instead: such configs are rare
        from cnish import trusteddirs
        why = trusteddirs.make(directory, 0o700)
        if why:
            global refused
            refused = why
            return
        final = os.path.join(directory, key + ".json")
        tmp = f"{final}.{os.getpid()}.tmp"
    except OSError:
        return                    # a read-only /run only costs the next call a render
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            written = 0
            while written < len(data):        # a full file system writes short, then fails
                written += os.write(fd, data[written:])
        finally:
            os.close(fd)
        os.rename(tmp, final)
    except OSError:
        _remove(tmp)              # a full /run: the entry is not stored (never a partial one)
    _evict(directory)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


STALE_TMP_SECONDS = 60     # a writer's temporary file older than this belongs to a dead process


def _evict(directory: str) -> None:
    """Keep at most MAX_ENTRIES plans, and remove temporary files that killed writers left
    (only runs after a render, never on the fast path)."""
    try:
        listing = os.listdir(directory)
    except OSError:
        return
    import time
    for name in listing:
        if name.endswith(".tmp"):
            path = os.path.join(directory, name)
            try:
                if os.lstat(path).st_mtime < time.time() - STALE_TMP_SECONDS:
                    _remove(path)
            except OSError:
                pass
    names = [n for n in listing if n.endswith(".json")]
    if len(names) <= MAX_ENTRIES:
        return
    def age(name):
        try:
            return os.stat(os.path.join(directory, name)).st_mtime_ns
        except OSError:
            return 0
    for name in sorted(names, key=age)[:len(names) - MAX_ENTRIES]:
        _remove(os.path.join(directory, name))


def _cached(kind: str, op, extra, render):
    directory = _directory()
    key = _key(kind, op, extra) if directory else None
    if key and _trusted(directory):
        entry = _load(directory, key)
        if isinstance(entry, dict) and _fresh(entry.get("sources")):
            return entry["value"]
    from cnish import paths
    paths.recording(True)
    try:
        value = render()
    finally:
        read = paths.recording(False)
    if key and not op.dry_run:
        try:
            sources = [_stamp(path) for path in sorted(read)]
        except OSError:
            return value            # a file vanished meanwhile: do not cache this render
        if sources != [read[path] for path in sorted(read)]:
            return value            # a file changed while it was rendered: nor this one
        _store(directory, key, {"sources": sources, "value": value})
    return value


def steps(op, section: str, att: dict) -> list:
    """The steps of `section` for this config and this attachment's shape (slots unfilled)."""
    from cnish.templating_marks import shape

    def render():
        from cnish import recipes
        from cnish.templating import skeleton
        recipe = recipes.load(op.type)
        targets = op.includes()

        def includes(name):
            """`include = "ipam"`: the IPAM plugin's recipe (if any); other names: fragments."""
            if name == "ipam":
                return recipes.load(targets["ipam"]) if "ipam" in targets else None
            return recipes.load(name)

        ctx = dict(op.context(), att=skeleton(att))
        return _renderer().render(recipe, section, ctx, includes)

    return _cached("steps", op, [section, shape(att)], render)


def fact(op, fact_id: str, identity: dict) -> dict:
    """The rendered command of a recipe's [[facts]] entry (reads made before planning);
    `identity` (container id, ifname, netns) is available to it as slots under att."""
    from cnish.templating_marks import shape

    def render():
        from cnish import recipes
        from cnish.templating import skeleton
        recipe = recipes.load(op.type)
        fragments = {s.include for section in recipe.sections.values() for s in section
                     if s.include and s.include != "ipam"}
        for source in [recipe] + [recipes.load(name) for name in sorted(fragments)]:
            for spec in source.sections["facts"]:
                if spec.id == fact_id:
                    return _renderer().render_one(spec, dict(op.context(),
                                                              att=skeleton(identity)))
        raise KeyError(f"recipe {op.type} has no fact {fact_id!r}")

    return _cached("fact", op, [fact_id, shape(identity)], render)
