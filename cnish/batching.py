"""How consecutive commands for the same tool are merged into one process, and how a batch's
failure is traced back to the step that caused it.

The plan keeps one command per step (that is what the dry-run script shows and what an auditor
reads); the executor sends runs of them to the tool's own batch mode, because a process start
costs more than the kernel work of a typical command:

- `ip -batch -`: one line per command (the argv without the leading "ip"). Lines run in order
  and the batch stops at the first failure, reporting "Command failed -:N"; the lines before N
  are done. Only tokens without whitespace, quotes, '#' or backslashes can be batched safely
  (ip's line parser has no escapes), so other commands run on their own.
- `iptables-restore -w --noflush` (and ip6tables-): one line per rule command, applied as one
  atomic transaction: on failure ("line N failed") nothing was applied.
- `sysctl -q -w k=v k=v ...`: several settings in one call; idempotent, so a failed batch is
  simply retried one setting at a time to find the culprit.

Everything here is about tools, nothing about plugins.
"""

_IP_UNSAFE = frozenset(" \t\r\n\"'#\\")
_RESTORE_UNSAFE = frozenset("\r\n")


def kind(cmd) -> str | None:
    """The batch family of a command, or None if it must run on its own."""
    if cmd is None:
        return None
    args = cmd.args
    tool = args[0]
    if tool == "ip" and len(args) > 1 and not args[1].startswith("-"):
        if all(tok and not (set(tok) & _IP_UNSAFE) and tok.isprintable() for tok in args[1:]):
            return "ip"
        return None
    if tool in ("iptables", "ip6tables") and _restore_line(args) is not None:
        return tool
    if tool == "sysctl" and len(args) >= 4 and args[1:3] == ("-q", "-w"):
        return "sysctl"
    return None


def _restore_line(args):
    """iptables argv -> (table, restore line) or None when it cannot be expressed as one."""
    table = "filter"
    rest = []
    it = iter(args[1:])
    for tok in it:
        if tok in ("-w", "--wait"):
            continue
        if tok in ("-t", "--table"):
            table = next(it, None)
            if table is None:
                return None
            continue
        if set(tok) & _RESTORE_UNSAFE or tok == "":
            return None
        rest.append(tok)
    if not rest or rest[0] not in ("-A", "-D", "-I", "-N", "-F", "-X", "-R"):
        return None
    return table, " ".join(_restore_quote(t) for t in rest)


def _restore_quote(tok: str) -> str:
    if tok and not (set(tok) & set(" \t\"\\'#")):
        return tok
    return '"' + tok.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ip_batch(cmds):
    """argv and stdin of one `ip -batch -` for commands of kind "ip" with the same wrapper."""
    wrapper = cmds[0].wrapper
    lines = [" ".join(c.args[1:]) for c in cmds]
    return wrapper + ("ip", "-batch", "-"), "\n".join(lines) + "\n"


def ip_batch_failed_line(stderr: str) -> int | None:
    """1-based number of the line that failed, from ip's 'Command failed -:N'."""
    for line in reversed(stderr.splitlines()):
        if line.startswith("Command failed -:"):
            number = line[len("Command failed -:"):].strip()
            if number.isdigit():
                return int(number)
    return None


def strip_batch_marker(stderr: str) -> str:
    return "\n".join(l for l in stderr.splitlines() if not l.startswith("Command failed -:"))


def restore_batch(cmds):
    """argv, stdin and a line -> command index map for one iptables-restore transaction."""
    tool = cmds[0].args[0]
    wrapper = cmds[0].wrapper
    lines, owner, table = [], {}, None
    for index, cmd in enumerate(cmds):
        this_table, line = _restore_line(cmd.args)
        if this_table != table:
            if table is not None:
                lines.append("COMMIT")
            lines.append(f"*{this_table}")
            table = this_table
        lines.append(line)
        owner[len(lines)] = index
    lines.append("COMMIT")
    return wrapper + (f"{tool}-restore", "-w", "--noflush"), "\n".join(lines) + "\n", owner


def restore_failed_line(stderr: str) -> int | None:
    """Line number from 'iptables-restore: line N failed: ...'."""
    marker = "line "
    for line in stderr.splitlines():
        at = line.find(marker)
        if at >= 0 and " failed" in line[at:]:
            number = line[at + len(marker):].split(" ", 1)[0]
            if number.isdigit():
                return int(number)
    return None


def sysctl_batch(cmds):
    wrapper = cmds[0].wrapper
    settings = [arg for c in cmds for arg in c.args[3:]]
    return wrapper + ("sysctl", "-q", "-w", *settings)
