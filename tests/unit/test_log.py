"""The log file: cnish's own log directory is made on first use, no other directory is."""

import os
import stat
import sys

from cnish import log


def test_the_config_log_directory_is_made_on_first_use(tmp_path, monkeypatch):
    """A config's `logFile` in /var/log/cnish/ logged nothing when that directory did not exist
    yet, and said so only on the stderr runtimes discard (found by the README audit)."""
    directory = tmp_path / "cnish"
    monkeypatch.setattr(log, "CONFIG_LOG_DIR", str(directory))
    entry = log.Log(str(directory / "net.log"), "ADD net/c1/eth0")
    entry.write("hello")
    entry.close()
    assert "ADD net/c1/eth0: hello" in (directory / "net.log").read_text()
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700


def test_no_other_missing_directory_is_made(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(log, "CONFIG_LOG_DIR", str(tmp_path / "cnish"))
    entry = log.Log(str(tmp_path / "elsewhere" / "x.log"), "ADD net/c1/eth0", sys.stderr)
    entry.write("hello")
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "cnish").exists()
    assert "cannot open log file" in capsys.readouterr().err


def test_a_log_file_name_that_cannot_be_encoded_is_reported_not_raised(capsys):
    """The error handler logs the error: an exception there left the runtime without any
    answer on stdout (found by the safety audit)."""
    entry = log.Log("/var/log/cnish/\ud800", "ADD net/c1/eth0", sys.stderr)
    entry.error("something failed")
    entry.close()
    assert "cannot open log file" in capsys.readouterr().err
