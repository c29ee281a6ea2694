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


def test_a_fifo_or_device_is_refused_without_blocking(tmp_path, capsys):
    """CNISH_LOG_FILE naming a FIFO nobody reads blocked the ADD in open(), with the IPAM
    store's lock held, so every ADD of the network stalled (found by the bad-input audit).
    Only a regular file is a log: a FIFO fails at once, a device is refused too."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/null"):
        entry = log.Log(path, "ADD net/c1/eth0", sys.stderr)
        entry.write("hello")                    # (returns: the test would hang otherwise)
        entry.close()
        assert "cannot open log file" in capsys.readouterr().err
        assert not entry


def test_control_characters_never_reach_the_log_raw(tmp_path, capsys):
    """A network name is logged as given, before it is validated: a CR or a terminal escape
    in it would forge lines or act on the terminal of whoever tails the log."""
    path = tmp_path / "cnish.log"
    entry = log.Log(str(path), "ADD x\r\x1b[2Jfake/c1/eth0", sys.stderr)
    entry.error("refused")
    entry.close()
    written = path.read_text() + capsys.readouterr().err
    assert "\r" not in written and "\x1b" not in written
    assert "x\\x0d\\x1b[2Jfake" in written
