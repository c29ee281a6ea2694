"""What a runtime does around a plugin, for the operator CLI: find a network config, build
each plugin's request, cache results — the way libcni does it (containernetworking/cni, libcni),
so that files written by `cnish add` and by podman or cnitool are interchangeable.
"""

import base64
import errno
import json
import os
import stat

from cnish import jsonfast, results
from cnish.config import canonical_keys
from cnish.plugin_exec import failure
from cnish.errors import INTERNAL, INVALID_CONFIG, IO_FAILURE, CNIError

NAME_MAX = 255                  # bytes in a file name (Linux; the result cache's entries)

DEFAULT_CONF_DIR = "/etc/cni/net.d"
DEFAULT_CACHE_DIR = "/var/lib/cni"


def read_config(path: str) -> tuple[dict, bytes]:
    """A network config file: its JSON object and the bytes it was parsed from (read once, so
    that what is cached is what was run, also from a pipe)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        obj = jsonfast.loads(data)     # (as strict as the CNI path: no NaN, no 1e400)
    except (OSError, ValueError) as exc:
        raise CNIError(INVALID_CONFIG, f"cannot read network config {path}", str(exc)) from None
    if not isinstance(obj, dict):
        raise CNIError(INVALID_CONFIG, f"network config {path} is not a JSON object")
    return obj, data


def as_list(conf: dict, path: str, by_name: bool = True) -> dict:
    """A .conf (one plugin) becomes a one-element list carrying its name and cniVersion.
    Checked before anything runs, as libcni loads a list: a malformed plugin or field would
    otherwise fail half-way through the list."""
    # What a file holds goes by its name, as libcni reads it (ConfListFromFile needs
    # "plugins", ConfFromFile "type"; CRI-O and containerd skip such a file): a check with the
    # CLI must not pass a file the runtime will not load (a configs audit found both run).
    # Another name (a pipe: /dev/fd/N), or by_name False, goes by its content.
    if by_name and path.endswith(".conflist") and "plugins" not in conf:
        raise CNIError(INVALID_CONFIG, f"network config list {path} has no \"plugins\"",
                       "a .conflist holds a list of plugins, which libcni and the runtimes "
                       "read by that name; one plugin's config goes in a .conf file")
    if by_name and path.endswith((".conf", ".json")) and "type" not in conf:
        raise CNIError(INVALID_CONFIG, f"network config {path} has no \"type\"",
                       "a .conf or .json file holds one plugin's config, which libcni and the "
                       "runtimes read by that name; a list of plugins goes in a .conflist file")
    # (a file that is not a .conflist and has a "type" is one plugin, as libcni reads it)
    if "plugins" in conf and (path.endswith(".conflist") or "type" not in conf):
        plugins = conf["plugins"]
        if not isinstance(plugins, list) or not plugins:
            raise CNIError(INVALID_CONFIG, f"no plugins in list {path}")
        _check_list(conf, path)
        return conf
    conf = canonical_keys(conf)     # (libcni decodes one plugin's file as the plugins do)
    if "type" not in conf:
        raise CNIError(INVALID_CONFIG, f"network config {path} has neither \"plugins\" nor \"type\"")
    listed = {"cniVersion": conf.get("cniVersion"), "name": conf.get("name"), "plugins": [conf]}
    _check_list(listed, path)
    return listed


def _check_list(conflist: dict, path: str) -> None:
    def bad(field, why):
        return CNIError(INVALID_CONFIG, f"network config {path}: {field} {why}")
    for key in ("cniVersion", "name"):
        if conflist.get(key) is not None and not isinstance(conflist[key], str):
            raise bad(key, "must be a string")
    versions = conflist.get("cniVersions")
    if versions is not None and not (isinstance(versions, list)
                                     and all(isinstance(v, str) for v in versions)):
        raise bad("cniVersions", "must be a list of strings")
    for key in ("disableCheck", "disableGC"):
        if _boolean(conflist.get(key, False)) is None:
            raise bad(key, "must be true or false")
    for i, plugin in enumerate(conflist["plugins"]):
        if not isinstance(plugin, dict):
            raise bad(f"plugins[{i}]", "must be an object")
        if not isinstance(plugin.get("type"), str) or not plugin["type"]:
            raise bad(f"plugins[{i}].type", "must be a non-empty string")
        caps = plugin.get("capabilities")
        if caps is not None and not (isinstance(caps, dict)
                                     and all(isinstance(v, bool) for v in caps.values())):
            raise bad(f"plugins[{i}].capabilities", "must map capability names to true or false")


def _boolean(value) -> bool | None:
    """disableCheck, disableGC as libcni reads them: a JSON boolean, or "true" or "false" in
    any case; None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def flag(conflist: dict, key: str) -> bool:
    """Is disableCheck or disableGC set (a list as_list checked)?"""
    return bool(_boolean(conflist.get(key, False)))


def find(name: str, conf_dirs: list[str]) -> tuple[dict, str, bytes]:
    """The network `name`: *.conflist first, then *.conf / *.json, in lexical order per dir.
    Its config as read (as_list makes the list), its path and its bytes."""
    for directory in conf_dirs:
        try:
            files = sorted(os.listdir(directory))
        except OSError:
            continue
        for suffixes in ((".conflist",), (".conf", ".json")):
            for fname in files:
                path = os.path.join(directory, fname)
                if fname.endswith(suffixes) and not os.path.isdir(path):   # (as libcni)
                    conf, data = read_config(path)
                    if conf.get("name") == name:
                        return conf, path, data
    raise CNIError(INVALID_CONFIG, f"no network config named {name!r}",
                   "searched " + ", ".join(conf_dirs) + " (NETCONFPATH)")


def select_version(conflist: dict) -> str:
    """cniVersions (1.1.0): the highest version both the list and cnish support."""
    versions = [v for v in conflist.get("cniVersions") or [] if v in results.SUPPORTED_VERSIONS]
    if conflist.get("cniVersion") in results.SUPPORTED_VERSIONS:
        versions.append(conflist["cniVersion"])
    if not versions:
        return conflist.get("cniVersion") or "0.1.0"
    return max(versions, key=results.version_key)


def request(conflist: dict, index: int, version: str, cap_args: dict,
            prev_result: dict | None) -> dict:
    """The config piped to plugin `index`: the plugin object plus name, cniVersion,
    runtimeConfig (only enabled capabilities) and prevResult."""
    plugin = dict(conflist["plugins"][index])
    plugin["cniVersion"] = version
    plugin["name"] = conflist["name"]
    caps = plugin.get("capabilities") or {}
    runtime_config = {k: v for k, v in cap_args.items() if caps.get(k)}
    if runtime_config:
        plugin["runtimeConfig"] = runtime_config
    if prev_result is not None:
        plugin["prevResult"] = prev_result
    return plugin


def exec_plugin(runner, path: str, env: dict, config: dict) -> dict | None:
    """Run an external plugin like libcni: the error it prints becomes a CNIError, its
    result (if any) is returned as parsed JSON."""
    res = runner.run((path,), stdin=json.dumps(config), env=env)
    out = res.stdout.strip()
    if res.returncode != 0:
        name, command = os.path.basename(path), env["CNI_COMMAND"]
        raise failure(f"plugin {name}", command, res.returncode, out, res.stderr,
                      printed_label=f"plugin type=\"{name}\" failed ({command})")
    if not out:
        return None
    try:
        return json.loads(out)
    except ValueError as exc:
        raise CNIError(INTERNAL, f"plugin {os.path.basename(path)} printed something that is "
                       "not JSON", str(exc)) from None


def cached_attachments(cache_dir: str, network: str) -> list:
    """(containerID, ifname) of every cached result of `network` (libcni's
    GetCachedAttachments, restricted to one network). GC removes every attachment not listed,
    so a results directory that cannot be read, or that another user could forge or remove
    entries of, is an error (code 5), never an empty list."""
    out = []
    directory = os.path.join(cache_dir, "results")
    from cnish import trusteddirs
    why = trusteddirs.refusal(directory, missing_ok=True)
    if why:
        raise CNIError(IO_FAILURE, f"refusing to read the result cache {directory}", why)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return out                  # (none yet: no other user can make it, checked above)
    except OSError as exc:
        raise CNIError(IO_FAILURE, f"cannot read the result cache {directory}",
                       str(exc.strerror)) from None
    for name in names:
        if not name.startswith(network + "-"):
            continue
        try:
            entry = _read_entry(os.path.join(directory, name))
        except (OSError, ValueError):
            continue
        if isinstance(entry, dict) and entry.get("kind") == "cniCacheV1" \
                and entry.get("networkName") == network and entry.get("ifName"):
            out.append((entry.get("containerId"), entry["ifName"]))
    return sorted(out)


def _read_entry(path: str):
    """A cache entry's JSON; never through a symlink, never waiting on a FIFO."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd) as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path} is not a regular file")
        if st.st_uid not in (0, os.geteuid()):
            raise ValueError(f"{path} is another user's")
        return json.load(f)


def cache_path(cache_dir: str, network: str, cid: str, ifname: str) -> str:
    return os.path.join(cache_dir, "results", f"{network}-{cid}-{ifname}")


def cache_entry(conflist_bytes: bytes, network, cid, ifname, netns, cni_args, cap_args,
                result: dict) -> dict:
    """libcni's cache entry of an attachment (cniCacheV1)."""
    return {"kind": "cniCacheV1", "containerId": cid,
            "config": base64.b64encode(conflist_bytes).decode(),
            "ifName": ifname, "networkName": network, "netns": netns,
            "cniArgs": [[k, v] for k, v in cni_args.items()],
            "capabilityArgs": cap_args, "result": result}


def write_cache(cache_dir, conflist_bytes: bytes, network, cid, ifname, netns, cni_args,
                cap_args, result: dict) -> None:
    """Write the attachment's cache entry; CNIError (code 7 or 5) when it cannot be written."""
    directory = os.path.join(cache_dir, "results")
    path = cache_path(cache_dir, network, cid, ifname)
    # (a name of its own, not the entry's plus a suffix: that may be as long as a file name
    # can be; random and created exclusively, as the directory may be shared; cached_attachments
    # skips it, as it does not start with a network's name)
    tmp = os.path.join(directory, f".cnish-tmp-{os.urandom(8).hex()}")
    try:
        if os.path.islink(directory):
            raise CNIError(INVALID_CONFIG,
                           f"refusing to write the result cache: {directory} is a symlink")
        from cnish import trusteddirs
        why = trusteddirs.make(directory, 0o700)
        if why:
            raise CNIError(IO_FAILURE, f"refusing to write the result cache in {directory}",
                           why)
        entry = cache_entry(conflist_bytes, network, cid, ifname, netns, cni_args, cap_args,
                            result)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(entry, f)
            os.rename(tmp, path)
        except OSError:
            # (a full disk, say: nothing else would ever remove it, as nothing lists it)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError as exc:
        raise CNIError(IO_FAILURE, f"cannot write the result cache {path}", str(exc)) from None


def read_cache_entry(cache_dir, network, cid, ifname) -> dict | None:
    """The whole cache entry (result, cniArgs, capabilityArgs...), or None if there is none.
    An entry that cannot be read (not JSON, not an object, a symlink) raises ValueError: the
    caller ignores it, as libcni does, and says so."""
    path = cache_path(cache_dir, network, cid, ifname)
    from cnish import trusteddirs
    directory = os.path.dirname(path)
    why = trusteddirs.refusal(directory, missing_ok=True)
    if why:
        raise ValueError(f"{directory} is not used: {why}")
    try:
        entry = _read_entry(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:     # no entry can have that name (ADD refuses it)
            return None
        raise ValueError(f"{path}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if isinstance(entry, dict) and entry.get("kind") == "cniCacheV1":
        return entry
    if isinstance(entry, dict):
        return {"result": entry}               # old caches: the bare result
    raise ValueError(f"{path}: not a JSON object")


def remove_cache(cache_dir, network, cid, ifname) -> None:
    path = cache_path(cache_dir, network, cid, ifname)
    from cnish import trusteddirs
    why = trusteddirs.refusal(os.path.dirname(path), missing_ok=True)
    if why:                 # (another user could point the name at a file of their choosing)
        raise CNIError(IO_FAILURE, f"refusing to remove the result cache entry {path}", why)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:     # no entry can have that name (ADD refuses it)
            return
        raise CNIError(IO_FAILURE, f"cannot remove the result cache {path}", str(exc)) from None


def cache_name_problem(network: str, cid: str, ifname: str) -> str | None:
    """Why no cache entry can be written for the attachment (its file name, made of the
    network's name, the container id and the interface name, too long), or None."""
    size = len(os.fsencode(os.path.basename(cache_path("", network, cid, ifname))))
    if size > NAME_MAX:
        return (f"the result cache's file name <network>-<container id>-<ifname> would be "
                f"{size} bytes, more than a file name may have ({NAME_MAX})")
    return None
