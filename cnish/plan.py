"""The Plan: an ordered list of Steps, shared by the bash printer, the JSON printer and the
executor, so that what is printed is what runs.

A plan template (rendered from a recipe, possibly cached) still carries slot markers in its
argv tokens; `bind()` fills them with one attachment's values and numbers the steps. Binding is
plain string work: no Jinja, no shell, no subprocess.
"""

from cnish.templating_marks import MARK_CLOSE, MARK_OPEN

PLAN_FORMAT = "cnish-plan/1"


class Command:
    """An argv tuple; the first `prefix` elements enter the container's namespace (nsenter)."""

    __slots__ = ("argv", "prefix")

    def __init__(self, argv, prefix: int = 0):
        self.argv = tuple(argv)
        self.prefix = prefix

    @property
    def wrapper(self) -> tuple:
        return self.argv[:self.prefix]

    @property
    def args(self) -> tuple:
        return self.argv[self.prefix:]

    def to_json(self) -> list:
        return list(self.argv)


class Step:
    __slots__ = ("number", "id", "description", "why", "netns", "run", "undo", "check", "expect",
                 "skip_if", "skip_if_unbatched", "on_exists", "on_missing", "shared", "undone_by",
                 "hint", "concurrent", "guards_addresses", "attachment", "ipam")

    def keeps_addresses_of(self, ipam_step) -> bool:
        """This step guards addresses and did not succeed: whether `ipam_step` must keep its
        addresses reserved. Both name their attachment ("cid/ifname") in GC; when either does
        not (DEL's steps, a veth whose label does not say, a delegated IPAM's one GC), every
        IPAM step is held back. A reservation without an interface name (a legacy one) is held
        back by any interface of its container."""
        mine, theirs = self.attachment, ipam_step.attachment
        if not mine or not theirs:
            return True
        return theirs in (mine, mine.partition("/")[0] + "/")

    def expected_texts(self) -> list:
        """What the check's output must hold, every one of them (`expect = { contains }` or
        `{ line }`: one text, or a list of them)."""
        (wanted,) = self.expect.values()
        return wanted if isinstance(wanted, list) else [wanted]

    def expects_one_line(self) -> bool:
        """`expect = { line }`: one line of the check's output holds every expected text."""
        return "line" in self.expect

    def lacking(self, output: str) -> str | None:
        """What the check's `output` lacks of its expected texts, said for a person; None when
        nothing."""
        texts = self.expected_texts()
        if self.expects_one_line():
            if any(all(t in line for t in texts) for line in output.splitlines()):
                return None
            return "line with " + " and ".join(repr(t) for t in texts)
        return next((repr(t) for t in texts if t not in output), None)

    def to_json(self) -> dict:
        out = {"n": self.number, "id": self.id, "description": self.description}
        if self.why:
            out["why"] = self.why
        out["netns"] = self.netns
        out["argv"] = self.run.to_json() if self.run else None
        out["undo"] = self.undo.to_json() if self.undo else None
        if self.undone_by:
            out["undoneBy"] = self.undone_by
        if self.shared:
            out["shared"] = True
        if self.concurrent:
            out["concurrent"] = True
        if self.guards_addresses:
            out["guardsAddresses"] = True
        if self.attachment:
            out["attachment"] = self.attachment
        if self.ipam:
            out["ipam"] = True
        if self.check:
            out["check"] = self.check.to_json()
            if self.expect:
                out["expect"] = self.expect
        if self.skip_if:
            out["skipIf"] = self.skip_if.to_json()
        if self.skip_if_unbatched:
            out["skipIfUnbatched"] = self.skip_if_unbatched.to_json()
        if self.on_exists:
            out["onExists"] = self.on_exists
        if self.on_missing:
            out["onMissing"] = self.on_missing
        if self.hint:
            out["hint"] = self.hint
        return out


class Plan:
    """Steps plus what produced them (shown in the script header and the JSON plan)."""

    __slots__ = ("command", "plugin", "network", "cni_version", "container_id", "netns", "ifname",
                 "steps", "result", "notes", "invocation", "cache")

    def __init__(self, command, plugin, network, cni_version, container_id, netns, ifname, steps):
        self.command = command
        self.cni_version = cni_version
        self.plugin = plugin
        self.network = network
        self.container_id = container_id
        self.netns = netns
        self.ifname = ifname
        self.steps = steps
        self.result = None      # the CNI result an ADD will print (dry-run shows it)
        self.notes = []         # lines for the script header (e.g. "address previewed, not reserved")
        self.invocation = {}    # CNI_ARGS, CNI_PATH and the config, for delegated plugins
        # the operator CLI's result cache: {"path", "entry"} to write after an ADD,
        # {"path"} to remove after a DEL (None: a runtime's plan, or nothing to record)
        self.cache = None

    def to_json(self, version: str) -> dict:
        out = {"format": PLAN_FORMAT, "cnish": version, "command": self.command,
               "plugin": self.plugin, "network": self.network, "cniVersion": self.cni_version,
               "containerId": self.container_id, "netns": self.netns, "ifname": self.ifname,
               "steps": [s.to_json() for s in self.steps]}
        if self.notes:
            out["notes"] = list(self.notes)
        if self.result is not None:
            out["result"] = self.result
        if self.cache is not None:
            out["resultCache"] = ({"write": self.cache["path"], "entry": self.cache["entry"]}
                                  if "entry" in self.cache else {"remove": self.cache["path"]})
        return out


def _lookup(values: dict, path: str) -> str:
    node = values
    for part in path.split(".")[1:]:          # the first part is "att"
        node = node[int(part)] if isinstance(node, list) else node[part]
    if not isinstance(node, str):
        raise TypeError(f"slot {path} is not a string")
    return node


def fill(token: str, values: dict) -> str:
    """Replace the slot markers in one token by the attachment's values."""
    if MARK_OPEN not in token:
        return token
    out = []
    rest = token
    while MARK_OPEN in rest:
        head, _, tail = rest.partition(MARK_OPEN)
        path, _, rest = tail.partition(MARK_CLOSE)
        out.append(head)
        out.append(_lookup(values, path))
    out.append(rest)
    return "".join(out)


def _command(raw, values) -> Command | None:
    if raw is None:
        return None
    return Command([fill(t, values) for t in raw["argv"]], raw["prefix"])


def bind(template_steps: list, att: dict, first: int = 1) -> list:
    """Plan-template steps + one attachment's values -> numbered concrete Steps."""
    steps = []
    for number, raw in enumerate(template_steps, start=first):
        step = Step()
        step.number = number
        step.id = raw["id"]
        step.description = fill(raw["description"], att)
        step.why = fill(raw.get("why", ""), att)
        step.netns = raw["netns"]
        step.run = _command(raw["run"], att)
        step.undo = _command(raw["undo"], att)
        step.check = _command(raw["check"], att)
        expect = raw.get("expect")
        if isinstance(expect, dict):
            (kind, wanted), = expect.items()          # contains, or line
            expect = {kind: [fill(t, att) for t in wanted] if isinstance(wanted, list)
                      else fill(wanted, att)}
        step.expect = expect
        step.skip_if = _command(raw["skip_if"], att)
        step.skip_if_unbatched = _command(raw.get("skip_if_unbatched"), att)
        step.on_exists = raw["on_exists"]
        step.on_missing = raw["on_missing"]
        step.shared = raw["shared"]
        step.concurrent = raw.get("concurrent", False)
        step.guards_addresses = raw.get("guards_addresses", False)
        step.attachment = fill(raw["attachment"], att) if raw.get("attachment") else None
        step.ipam = raw.get("ipam", False)
        step.undone_by = fill(raw["undone_by"], att) if raw["undone_by"] else None
        step.hint = fill(raw.get("hint", ""), att)
        steps.append(step)
    return steps
