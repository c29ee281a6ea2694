"""The launcher `cnish install` writes: a POSIX shell script that answers libcni's exact VERSION
requests itself (no interpreter start) and hands everything else to Python unchanged."""

import json
import os
import shutil
import subprocess

import pytest

from cnish.install import install, launcher_text, python_argv
from cnish.main import version_answer
from cnish.results import CURRENT_VERSION, SUPPORTED_VERSIONS

# What runtimes send (libcni: {"cniVersion":%q}), Python's json.dumps form, and everything a
# careless caller may send instead.
REQUESTS = ([f'{{"cniVersion":"{v}"}}'.encode() for v in SUPPORTED_VERSIONS]
            + [f'{{"cniVersion": "{v}"}}'.encode() for v in SUPPORTED_VERSIONS]
            + [b'{"cniVersion":"1.0.0"}\n', b'{"cniVersion":"0.4.0"}\n\n', b'{"cniVersion":\n"0.3.1"}',
               b' {"cniVersion":"1.0.0"}', b'{"cniVersion":"1.0.0"} ', b'{"cniVersion":"9.9.9"}',
               b'{"cniVersion":"1.0.0","name":"x"}', b'{"cniVersion":"1.0.0"}{}', b'', b'\n',
               b'garbage', b'[]', b'{"cniVersion":1}', b"{'cniVersion':'1.0.0'}",
               b'{"cniVersion":"1.0.0"}\x00', b'{"cniVersion":"0.2.0"}\nrest\nof it\n',
               b'{"cniVersion":"1.0.0\\u0000"}', b'{"cniVersion":"$(touch /tmp/x)"}',
               b'{"cniVersion":"' + b"1" * 100000 + b'"}', "{\"cniVersion\":\"é\"}".encode()])


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bin")
    path, link = install(str(directory), links=["bridge"])
    return path, link


def run(path, request, env=None, args=()):
    return subprocess.run([path, *args], input=request, capture_output=True,
                          env={"PATH": os.environ["PATH"], "CNI_COMMAND": "VERSION", **(env or {})})


@pytest.mark.parametrize("request_bytes", REQUESTS, ids=range(len(REQUESTS)))
def test_version_answer_is_pythons_for_every_request(launcher, request_bytes):
    proc = run(launcher[0], request_bytes)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == version_answer(request_bytes.replace(b"\0", b"")), request_bytes
    answer = json.loads(proc.stdout)
    assert answer["supportedVersions"] == list(SUPPORTED_VERSIONS)


def test_libcni_requests_are_answered_without_python(tmp_path):
    """The fast path really is the shell: with the interpreter swapped for one that cannot
    run, libcni's requests are still answered, anything else fails."""
    python = python_argv()[0]
    text = launcher_text().replace(f"python={python}\n", "python=/nonexistent/python\n", 1)
    assert "python=/nonexistent/python\n" in text
    path = tmp_path / "cnish"
    path.write_text(text)
    path.chmod(0o755)
    for v in SUPPORTED_VERSIONS:
        for request in (f'{{"cniVersion":"{v}"}}', f'{{"cniVersion": "{v}"}}'):
            proc = run(str(path), request.encode())
            assert proc.returncode == 0 and json.loads(proc.stdout)["cniVersion"] == v
    assert run(str(path), b'{"cniVersion":"9.9.9"}').returncode != 0
    assert run(str(path), b'{"cniVersion":"1.0.0"}\n').returncode != 0
    # anything else: a CNI error that says why (the interpreter has gone since the install)
    proc = run(str(path), b'{"cniVersion":"1.0.0","name":"n","type":"bridge"}',
               env={"CNI_COMMAND": "ADD"})
    assert proc.returncode == 1
    answer = json.loads(proc.stdout)
    assert answer["code"] == 999 and "interpreter" in answer["msg"], answer


def test_a_launcher_that_cannot_find_cnish_answers_with_a_cni_error(tmp_path):
    """A launcher names the directories cnish was installed in; when cnish has moved since
    (reinstalled elsewhere, removed), a runtime gets a CNI error object that says what to do,
    not a traceback and an empty stdout. Found by the concurrency audit."""
    from cnish.install import _package_dirs
    text = launcher_text()
    for directory in _package_dirs():
        text = text.replace(json.dumps(directory), json.dumps(str(tmp_path / "gone")))
    path = tmp_path / "cnish"
    path.write_text(text)
    path.chmod(0o755)
    proc = run(str(path), b'{"cniVersion":"0.4.0","name":"n","type":"bridge"}',
               env={"CNI_COMMAND": "ADD"})
    assert proc.returncode == 1, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["cniVersion"] == "0.4.0" and answer["code"] == 999
    assert "No module named 'cnish'" in answer["msg"] and "cnish install" in answer["msg"]


def test_closed_stdin_and_other_commands_go_to_python(launcher):
    proc = subprocess.run([launcher[0]], stdin=subprocess.DEVNULL, capture_output=True,
                          env={"PATH": os.environ["PATH"], "CNI_COMMAND": "VERSION"})
    assert json.loads(proc.stdout)["cniVersion"] == CURRENT_VERSION
    # VERSION with arguments is the operator CLI's business, not the protocol's.
    proc = run(launcher[0], b'{"cniVersion":"1.0.0"}', args=["--help"])
    assert proc.returncode == 0 and b"Usage: cnish" in proc.stdout
    # No CNI_COMMAND through a plugin-named link: the "about" text (skel's), from Python.
    proc = subprocess.run([launcher[1]], capture_output=True, env={"PATH": os.environ["PATH"]})
    assert proc.returncode == 0 and b"CNI cnish plugin version" in proc.stderr


@pytest.mark.parametrize("command", ["DEL", "STATUS", "GC"])
def test_a_closed_stdin_is_an_io_error(launcher, command):
    """Started with stdin closed (no config can be read), every command but VERSION answers
    with code 5 in the protocol, not with a traceback."""
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": "c1",
           "CNI_NETNS": "", "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni"}
    proc = subprocess.run(["sh", "-c", 'exec "$0" <&-', launcher[1]], capture_output=True,
                          env=env)
    assert proc.returncode == 1, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["code"] == 5 and "stdin is closed" in answer["details"], answer


def test_plugin_type_follows_the_name_it_is_execed_by(launcher):
    """Through the link `bridge` the plugin is bridge whatever the config's type says (the
    runtime chose the binary by type); through `cnish` the config's type decides."""
    conf = json.dumps({"cniVersion": "1.1.0", "name": "n", "type": "nosuchplugin"}).encode()
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": "STATUS", "CNI_PATH": "/usr/lib/cni"}
    assert subprocess.run([launcher[1]], input=conf, capture_output=True, env=env).returncode == 0
    proc = subprocess.run([launcher[0]], input=conf, capture_output=True, env=env)
    assert proc.returncode == 1 and "unknown plugin type" in json.loads(proc.stdout)["msg"]


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_launcher_passes_shellcheck(launcher):
    proc = subprocess.run(["shellcheck", "-s", "sh", launcher[0]], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_another_interpreter_of_the_same_version_can_run_the_launcher(tmp_path):
    import sys
    from cnish.install import InterpreterError, check_interpreter
    # The interpreter running the tests, reached through a symlink: accepted, resolved.
    link = tmp_path / "py"
    link.symlink_to(sys.executable)
    path, _ = install(str(tmp_path / "bin"), links=["bridge"], python=str(link))
    assert f"python={os.path.realpath(sys.executable)}\n" in open(path).read()
    proc = run(path, b'{"cniVersion":"9.9.9"}')             # answered by that Python
    assert json.loads(proc.stdout)["cniVersion"] == CURRENT_VERSION
    # One that is not Python X.Y, not absolute, or not runnable: refused, nothing written.
    fake = tmp_path / "python2"
    fake.write_text("#!/bin/sh\necho 'it is Python 2.7; cnish is installed for Python 3.11' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    for bad, reason in ((str(fake), "it is Python 2.7"), ("python3", "absolute path"),
                        (str(tmp_path / "missing"), "absolute path")):
        with pytest.raises(InterpreterError, match=reason):
            check_interpreter(bad)
        with pytest.raises(InterpreterError):
            install(str(tmp_path / "bin2"), python=bad)
    assert not (tmp_path / "bin2").exists()


@pytest.mark.parametrize("stdout", ["closed", "full"])
def test_an_answer_that_cannot_be_delivered_is_an_error(launcher, stdout):
    """Python leaves without its teardown (main._exit_now) but still flushes, and says so in
    the exit status when the answer could not be written."""
    redirect = {"closed": ">&-", "full": ">/dev/full"}[stdout]
    proc = subprocess.run(["/bin/sh", "-c", f'printf x | "$0" {redirect}', launcher[0]],
                          capture_output=True, env={"PATH": os.environ["PATH"],
                                                    "CNI_COMMAND": "VERSION"})
    assert proc.returncode == 1


def test_python_version_uses_the_streams_it_is_given():
    """cni.main serves every verb through the streams passed to it, VERSION too."""
    import io
    from cnish import cni
    out, err = io.StringIO(), io.StringIO()
    rc = cni.main({"CNI_COMMAND": "VERSION"}, io.BytesIO(b'{"cniVersion":"0.4.0"}'), out, err)
    assert rc == 0 and json.loads(out.getvalue())["cniVersion"] == "0.4.0"


def cni_call(env, conf):
    import io
    from cnish import cni
    out, err = io.StringIO(), io.StringIO()
    base = {"CNI_CONTAINERID": "ctr1", "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni",
            "CNI_NETNS": ""}
    rc = cni.main(dict(base, **env), io.BytesIO(json.dumps(conf).encode()), out, err)
    return rc, json.loads(out.getvalue()), err.getvalue()


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
def test_an_error_answers_in_the_requests_version(version):
    """The spec: an error object carries the cniVersion the request used (libcni of that
    version parses it), not cnish's newest."""
    conf = {"cniVersion": version, "name": "n", "type": "bridge", "ipMasq": "yes"}
    rc, out, _ = cni_call({"CNI_COMMAND": "DEL"}, conf)
    assert rc == 1 and out["code"] == 7 and out["cniVersion"] == version


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_an_error_in_the_environment_answers_in_the_requests_version(version):
    """A missing CNI_NETNS is found before the config is read; the config is read anyway for
    its cniVersion (the reference answers with its newest here)."""
    conf = {"cniVersion": version, "name": "n", "type": "bridge"}
    rc, out, _ = cni_call({"CNI_COMMAND": "ADD", "CNI_NETNS": None}, conf)
    assert rc == 1 and out["code"] == 4 and "CNI_NETNS" in out["msg"]
    assert out["cniVersion"] == version


def test_an_environment_error_does_not_wait_for_a_terminal(monkeypatch):
    """An operator who forgot a variable at a terminal gets the error at once."""
    import io
    from cnish import cni

    class Terminal(io.BytesIO):
        def isatty(self):
            return True

        def read(self, *args):
            raise AssertionError("read from a terminal")
    out, err = io.StringIO(), io.StringIO()
    rc = cni.main({"CNI_COMMAND": "ADD"}, Terminal(), out, err)
    assert rc == 1 and json.loads(out.getvalue())["code"] == 4


def test_a_bug_still_answers_in_the_protocol(monkeypatch):
    """An exception cnish does not expect: exit status 1 and an error object (code 999, the
    request's version) on stdout, the traceback on stderr (no log file here)."""
    from cnish import engine

    def broken(op):
        raise RuntimeError("boom")
    monkeypatch.setattr(engine, "execute", broken)
    conf = {"cniVersion": "0.4.0", "name": "n", "type": "bridge", "bridge": "cnbr0"}
    rc, out, err = cni_call({"CNI_COMMAND": "DEL"}, conf)
    assert rc == 1 and out["code"] == 999 and out["cniVersion"] == "0.4.0"
    assert "boom" in out["msg"] and "RuntimeError: boom" in err


def test_a_closed_stdout_changes_nothing(monkeypatch):
    """Started with stdout closed (Python's sys.stdout is then None), an ADD used to run its
    whole plan and crash only when it printed the result, which nobody could read: now it
    does nothing and says so on stderr."""
    import io
    from cnish import cni, engine

    def executed(op):
        raise AssertionError("the plan ran")
    monkeypatch.setattr(engine, "execute", executed)
    err = io.StringIO()
    conf = {"cniVersion": "1.0.0", "name": "n", "type": "bridge", "bridge": "cnbr0"}
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0",
           "CNI_PATH": "/opt/cni/bin", "CNI_NETNS": "/var/run/netns/x"}
    rc = cni.main(env, io.BytesIO(json.dumps(conf).encode()), None, err)
    assert rc == 1 and "stdout is closed" in err.getvalue()


def test_the_default_interpreter_is_the_distributions_when_it_can_run_cnish(tmp_path, monkeypatch):
    """`cnish install` without --python: the distribution's pythonX.Y if it passes the same
    check as --python (version, imports), else the interpreter running the install."""
    import sys
    from cnish import install as installer
    own = os.path.realpath(sys.executable)

    def default_with(system):
        monkeypatch.setattr(installer, "_default", [])
        monkeypatch.setattr(installer, "SYSTEM_PYTHON", str(system))
        return installer.default_python()

    works = tmp_path / "distro-python"       # another path to a working interpreter
    works.write_text(f'#!/bin/sh\nexec {own} "$@"\n')
    works.chmod(0o755)
    assert default_with(works) == str(works)
    [path] = install(str(tmp_path / "bin"))
    assert f"python={works}\n" in open(path).read()
    assert json.loads(run(path, b'{"cniVersion":"9.9.9"}').stdout)["cniVersion"] == CURRENT_VERSION

    broken = tmp_path / "old-python"          # cannot run this cnish: not taken
    broken.write_text("#!/bin/sh\necho 'it is Python 3.9' >&2\nexit 1\n")
    broken.chmod(0o755)
    assert default_with(broken) == own
    assert default_with(tmp_path / "missing") == own
    same = tmp_path / "same"
    same.symlink_to(own)
    assert default_with(same) == own


def test_cnish_install_says_which_interpreter_its_launcher_runs(tmp_path):
    import sys
    proc = subprocess.run([sys.executable, "-m", "cnish", "install", str(tmp_path / "bin")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(tmp_path / "bin" / "cnish")]
    written = next(line for line in open(tmp_path / "bin" / "cnish") if line.startswith("python="))
    assert proc.stderr == f"the launcher runs {written[len('python='):].strip()}\n"
