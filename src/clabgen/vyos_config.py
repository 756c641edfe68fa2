"""VyOS configuration trees: parse config.boot or `set` listings, print `show configuration commands`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import ClabgenError, Problem, Where


@dataclass
class CNode:
    """A node of the config tree; `tag` is the tag value (`ethernet eth1`), `value` a leaf's value."""

    name: str
    tag: str | None = None
    value: str | None = None
    leaf: bool = False
    children: list[CNode] = field(default_factory=list)
    line: int = 0

    def find(self, *path: str) -> list[CNode]:
        """Children matching a path of names (tag values are matched by name only)."""
        nodes = [self]
        for name in path:
            nodes = [c for n in nodes for c in n.children if c.name == name]
        return nodes

    def leaf_value(self, name: str) -> str | None:
        for c in self.children:
            if c.name == name and c.leaf:
                return c.value
        return None

    def leaf_values(self, name: str) -> list[str]:
        return [c.value for c in self.children if c.name == name and c.leaf and c.value is not None]

    def has_leaf(self, name: str) -> bool:
        return any(c.name == name and c.leaf for c in self.children)


_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')


def _tokens(line: str) -> list[tuple[str, bool]]:
    """Split a config.boot line into (token, was_quoted)."""
    return [(m.group(1), True) if m.group(1) is not None else (m.group(2), False) for m in _TOKEN.finditer(line)]


def parse_boot(text: str, file: str = "config.boot", allow_hash_comments: bool = False) -> CNode:
    """Parse config.boot (curly-brace) syntax into a tree; comments and the version footer are skipped."""
    root = CNode("")
    stack = [root]
    comment_from = 0                # line of an open /* comment
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if comment_from:
            if "*/" in line:
                comment_from = 0
            continue
        if not line or line.startswith("//"):
            continue
        if line.startswith("/*"):
            comment_from = 0 if "*/" in line[2:] else lineno
            continue
        if line.startswith("#"):
            if allow_hash_comments:
                continue
            raise ClabgenError(Problem(Where(file, lineno, 1), "`#` comments are not config.boot syntax"))
        if line == "}":
            if len(stack) == 1:
                raise ClabgenError(Problem(Where(file, lineno, 1), "unbalanced `}`"))
            stack.pop()
            continue
        toks = _tokens(line) if '"' in line else [(w, False) for w in line.split()]
        opens = toks[-1] == ("{", False)
        if opens:
            toks = toks[:-1]
        if not toks or len(toks) > 2:
            raise ClabgenError(Problem(Where(file, lineno, 1), f"cannot parse {line!r}"))
        name = toks[0][0]
        arg = toks[1][0] if len(toks) == 2 else None
        if opens:
            node = CNode(name, tag=arg, line=lineno)
            stack[-1].children.append(node)
            stack.append(node)
        else:
            stack[-1].children.append(CNode(name, value=arg, leaf=True, line=lineno))
    if comment_from:
        raise ClabgenError(Problem(Where(file, comment_from, 1), "unterminated `/*` comment: no `*/` follows"))
    if len(stack) != 1:
        # The innermost block left open is where the missing `}` belongs; the end of file says nothing.
        opener = stack[-1]
        head = " ".join(w for w in (opener.name, opener.tag) if w)
        raise ClabgenError(Problem(Where(file, opener.line, 1), f"unbalanced `{{`: `{head} {{` is never closed"))
    return root


def set_commands(tree: CNode) -> list[str]:
    """Flatten a tree the way `show configuration commands` prints it: one `set` line per leaf."""
    out: list[str] = []

    def walk(node: CNode, path: list[str]) -> None:
        for c in node.children:
            here = path + [c.name] + ([c.tag] if c.tag is not None else [])
            if c.leaf:
                line = " ".join(here)
                if c.value is not None:
                    line += " " + _quote(c.value)
                out.append("set " + line)
            elif c.children:
                walk(c, here)
            else:
                out.append("set " + " ".join(here))

    walk(tree, [])
    return out


def boot_to_set(text: str) -> list[str]:
    """`set_commands(parse_boot(text))` in one pass over the lines, without building the tree: a
    leaf is printed where it stands, an empty block where it closes (nothing is printed between
    its opening and its close, so the order is the same). For the configs render just wrote: a
    200-site lab's gateways hold 40 000 static routes. Anything unusual is left to the tree."""
    out: list[str] = []
    prefixes = ["set "]           # "set " and the words of the blocks we are in, each with a space
    empty: list[bool] = []        # nothing inside that block yet
    comment = False
    emit, push, pop, open_block, close_block = out.append, prefixes.append, prefixes.pop, empty.append, empty.pop
    for line in map(str.strip, text.splitlines()):
        if comment:
            comment = "*/" not in line
            continue
        if line == "}":
            if not empty:
                return set_commands(parse_boot(text))
            block = pop()
            if close_block():
                emit(block[:-1])
            continue
        if not line or line[0] in "/#":
            if line.startswith("//") or not line:
                continue
            if line.startswith("/*"):
                comment = "*/" not in line[2:]
                continue
            return set_commands(parse_boot(text))
        if '"' in line:           # a quoted value (`plaintext-password ""`): the tokenizer's words
            toks = _tokens(line)
            words = [w for w, _ in toks]
            opens = toks[-1] == ("{", False)
        else:
            words = line.split()
            opens = words[-1] == "{"
        if empty:
            empty[-1] = False
        if opens:
            if len(words) == 2:
                push(prefixes[-1] + words[0] + " ")
            elif len(words) == 3:
                push(prefixes[-1] + words[0] + " " + words[1] + " ")
            else:
                return set_commands(parse_boot(text))
            open_block(True)
        elif len(words) == 2:
            emit(prefixes[-1] + words[0] + " " + _quote(words[1]))
        elif len(words) == 1:
            emit(prefixes[-1] + words[0])
        else:
            return set_commands(parse_boot(text))
    if empty or comment:
        return set_commands(parse_boot(text))
    return out


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


_SET_TOKEN = re.compile(r"'((?:[^']|'\\'')*)'|(\S+)")


def parse_set(text: str) -> list[tuple[tuple[str, ...], str | None]]:
    """Parse a `set` listing into (path, value) pairs; a quoted last word is the leaf's value."""
    out: list[tuple[tuple[str, ...], str | None]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        toks = [(m.group(1).replace("'\\''", "'"), True) if m.group(1) is not None else (m.group(2), False)
                for m in _SET_TOKEN.finditer(line)]
        if toks[0] != ("set", False):
            raise ValueError(f"not a set command: {line!r}")
        words = toks[1:]
        if words and words[-1][1]:
            out.append((tuple(w for w, _ in words[:-1]), words[-1][0]))
        else:
            out.append((tuple(w for w, _ in words), None))
    return out


def same_tree(boot_text: str, set_text: str) -> list[str]:
    """Differences between a config.boot and a set listing (empty when they describe the same tree)."""
    from_boot = parse_set("\n".join(set_commands(parse_boot(boot_text))))
    from_set = parse_set(set_text)
    a, b = set(from_boot), set(from_set)
    return [f"only in config.boot: {p}" for p in from_boot if p not in b] + \
           [f"only in set listing: {p}" for p in from_set if p not in a]
